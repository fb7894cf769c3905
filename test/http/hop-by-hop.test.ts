/**
 * Hop-by-hop response headers (RFC 9110 §7.6.1): the fixed set and every header the
 * Connection header names are not relayed, whatever the Connection value's shape.
 */
import t from 'tap';
import { connectionTokens, stripHopByHopResponse } from '../../src/http/hop-by-hop.ts';

t.test('Connection values name the headers to drop', async (t) => {
  t.same([...connectionTokens(undefined)], []);
  t.same([...connectionTokens('')], []);
  t.same([...connectionTokens('keep-alive')], ['keep-alive']);
  t.same([...connectionTokens('Keep-Alive, X-Trace ,,close')], ['keep-alive', 'x-trace', 'close']);
});

t.test('response headers lose the hop-by-hop ones and those Connection names', async (t) => {
  const base = {
    'content-type': 'text/plain',
    'x-trace': '1',
    'keep-alive': 'timeout=5',
    'transfer-encoding': 'chunked',
  };
  t.same(stripHopByHopResponse({ ...base, connection: 'keep-alive' }), {
    'content-type': 'text/plain',
    'x-trace': '1',
  });
  t.same(stripHopByHopResponse({ ...base }), { 'content-type': 'text/plain', 'x-trace': '1' });
  t.same(stripHopByHopResponse({ ...base, connection: 'keep-alive, X-Trace' }), { 'content-type': 'text/plain' });
  t.same(stripHopByHopResponse({ ...base, connection: ['close', 'x-trace'] }), { 'content-type': 'text/plain' });
  // The shared sets behind the common values are not changed by a call.
  t.same([...connectionTokens('keep-alive')], ['keep-alive']);
  t.same([...connectionTokens(undefined)], []);
});
