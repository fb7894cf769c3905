// Which addresses reach Tollgate's own listeners, and which Via values name this process.
import t from 'tap';
import {
  appendVia,
  isOwnListener,
  ownLiteralTarget,
  registerOwnListener,
  unregisterOwnListener,
  viaLoops,
  VIA_ENTRY,
} from '../../src/upstream/loop-guard.ts';

t.test('matches own listeners by port and local address, the any-address included', async (t) => {
  const loopback = { address: '127.0.0.1', port: 41001 };
  const any = { address: '::', port: 41002 };
  const remote = { address: '10.255.255.1', port: 41003 };
  registerOwnListener(loopback);
  registerOwnListener(any);
  registerOwnListener(remote);
  t.teardown(() => [loopback, any, remote].forEach(unregisterOwnListener));
  for (const address of ['127.0.0.1', '127.0.0.2', '::1', '[::1]', '::ffff:127.0.0.1', '0.0.0.0'])
    t.ok(isOwnListener(address, 41001), `${address} reaches a loopback listener`);
  t.notOk(isOwnListener('127.0.0.1', 41004), 'another port is a tool');
  for (const address of ['127.0.0.1', '::1', '0.0.0.0'])
    t.ok(isOwnListener(address, 41002), `${address} reaches an any-address listener`);
  t.notOk(isOwnListener('192.0.2.1', 41002), 'a remote address does not');
  t.ok(isOwnListener('10.255.255.1', 41003));
  t.notOk(isOwnListener('10.255.255.2', 41003));
  t.equal(ownLiteralTarget('[::1]', 41001)?.code, 'TG_ERR_UNSUPPORTED');
  t.equal(ownLiteralTarget('localhost', 41001), undefined, 'names are checked after DNS, by the lookup');
  unregisterOwnListener(loopback);
  t.notOk(isOwnListener('127.0.0.1', 41001), 'a closed listener is forgotten');
});

t.test('names this process in Via and only this process', async (t) => {
  t.equal(appendVia(undefined), VIA_ENTRY);
  t.equal(appendVia('1.0 fred'), `1.0 fred, ${VIA_ENTRY}`);
  t.ok(viaLoops(`1.0 fred, ${VIA_ENTRY}`));
  t.ok(viaLoops(VIA_ENTRY.toUpperCase()));
  t.notOk(viaLoops('1.1 tollgate-00000000, 1.0 fred'));
  t.notOk(viaLoops(undefined));
});
