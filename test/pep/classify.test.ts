// The first bytes of a non-TLS tunnel: an HTTP/1.x request line is decided request by
// request, anything else is the "opaque" phase; and the upgrade gate (one websocket
// token, no body).
import t from 'tap';
import type { IncomingMessage } from 'node:http';
import { classifyPlain } from '../../src/pep/tunnel.ts';
import { upgradeRefusal } from '../../src/pep/upgrade.ts';

t.test('classifies the first bytes of a non-TLS stream', async (t) => {
  for (const text of [
    'GET / HTTP/1.1\r\n',
    'POST /v1/refunds HTTP/1.1',
    'VERSION-CONTROL /x HTTP/1.1',
    'PRI * HTTP/2.0',
    'get / HTTP/1.1',
    'M-SEARCH * HTTP/1.1',
  ])
    t.equal(classifyPlain(Buffer.from(text)), 'http', text);
  for (const text of ['SSH-2.0-OpenSSH_9.6\r\n', ' GET /', 'EHLO\r\n', '\x00\xff\x13\x37', '\r\n GET /'])
    t.equal(classifyPlain(Buffer.from(text, 'latin1')), 'opaque', JSON.stringify(text));
  for (const text of ['', 'G', 'POS', 'A'.repeat(20), '\r\n', '\r\nGE'])
    t.equal(classifyPlain(Buffer.from(text)), 'need-more', JSON.stringify(text));
});

t.test('skips empty lines before a request line, as servers do (RFC 9112 §2.2)', async (t) => {
  for (const text of [
    '\r\nGET /admin HTTP/1.1',
    '\nGET /admin HTTP/1.1',
    '\r\n\r\nGET /admin HTTP/1.1',
    '\rGET / HTTP/1.1',
  ])
    t.equal(classifyPlain(Buffer.from(text)), 'http', JSON.stringify(text));
});

t.test('reads a method token of any length up to the limit as HTTP', async (t) => {
  t.equal(classifyPlain(Buffer.from('ABCDEFGHIJKLMNOPQRSTU /admin HTTP/1.1')), 'http');
  t.equal(classifyPlain(Buffer.from(`${'A'.repeat(4000)} / HTTP/1.1`)), 'http');
  t.equal(classifyPlain(Buffer.from('A'.repeat(100)), 64), 'opaque', 'past the limit a token is not a request line');
  t.equal(classifyPlain(Buffer.from('\r\n'.repeat(40)), 64), 'opaque', 'nor are endless empty lines');
});

t.test('lets through only a single websocket token without a body', async (t) => {
  const req = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;
  t.equal(upgradeRefusal(req({ upgrade: 'websocket' })), undefined);
  t.equal(upgradeRefusal(req({ upgrade: ' WebSocket ', 'content-length': '0' })), undefined);
  for (const upgrade of ['h2c', 'TLS/1.0', 'foo', 'websocket, h2c', 'websocket,websocket', ''])
    t.equal(upgradeRefusal(req({ upgrade }))?.code, 'TG_ERR_PROTOCOL_REFUSED', upgrade);
  t.equal(upgradeRefusal(req({ upgrade: 'websocket', 'content-length': '5' }))?.code, 'TG_ERR_PROTOCOL_REFUSED');
  t.equal(
    upgradeRefusal(req({ upgrade: 'websocket', 'transfer-encoding': 'chunked' }))?.code,
    'TG_ERR_PROTOCOL_REFUSED',
  );
  t.equal(upgradeRefusal(req({}))?.code, 'TG_ERR_BAD_REQUEST');
});
