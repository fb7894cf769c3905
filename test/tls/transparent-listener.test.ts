// The transparent listener on loopback without iptables (the redirected path is in
// test/e2e/transparent.test.ts): without SO_ORIGINAL_DST the policy sees the listener
// address; plain HTTP is decided on Host; garbage, truncated or SNI-less TLS and other
// protocols are decided as an L4 destination (denied by the seed policy) or dropped.
import t from 'tap';
import { createServer, connect, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { rawExchange, startTollgate, startUpstream } from '../helpers/processes.ts';
import { captureClientHello, closed, tollgateCa } from './fixtures.ts';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

t.test('transparent listener', async (t) => {
  const ca = await tollgateCa();
  const upstream = await startUpstream(t);
  const port = await freePort();
  await startTollgate(t, {
    agent: { id: 'support-bot', role: 'support' },
    proxy: { resolve: { 'payments.internal:80': `127.0.0.1:${upstream.port}` } },
    transparent: { enabled: true, listen: `127.0.0.1:${port}` },
    connect: { peekTimeoutMs: 300 },
    tls: { caCertFile: ca.certFile, caKeyFile: ca.keyFile, handshakeTimeoutMs: 500 },
  });
  const open = (): Promise<Socket> =>
    new Promise((resolve) => {
      const s = connect(port, '127.0.0.1', () => resolve(s));
      s.on('error', () => undefined);
    });

  t.test('decides plain HTTP on its Host', async (t) => {
    const ok = await rawExchange(
      port,
      'GET /v1/refunds/r-1 HTTP/1.1\r\nHost: payments.internal\r\nConnection: close\r\n\r\n',
    );
    t.match(ok, /^HTTP\/1\.1 200 /);
    const denied = await rawExchange(
      port,
      'GET /v1/employees HTTP/1.1\r\nHost: hr.internal\r\nConnection: close\r\n\r\n',
    );
    t.match(denied, /^HTTP\/1\.1 403 /);
    t.match(denied, /role support may not reach hr\.internal/);
  });

  t.test('drops garbage, truncated ClientHellos, SNI-less TLS and silent clients', async (t) => {
    const garbage = await open();
    garbage.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x03, 0xde, 0xad, 0xbe]));
    await closed(garbage);
    const other = await open();
    other.write('SSH-2.0-OpenSSH_9.6\r\n');
    await closed(other);
    const truncated = await open();
    truncated.write((await captureClientHello({ servername: 'payments.internal' })).subarray(0, 40));
    await closed(truncated);
    const noSni = await open();
    noSni.write(await captureClientHello({}));
    await closed(noSni);
    const silent = await open();
    await closed(silent);
    t.pass('every connection was closed by Tollgate');
  });

  t.test('intercepts TLS whose SNI the policy allows', async (t) => {
    const s = tlsConnect({
      host: '127.0.0.1',
      port,
      servername: 'payments.internal',
      ca: readFileSync(ca.certFile, 'utf8'),
    });
    await new Promise<void>((resolve, reject) => {
      s.once('secureConnect', () => resolve());
      s.once('error', reject);
    });
    t.equal(s.getPeerX509Certificate()?.checkHost('payments.internal'), 'payments.internal');
    s.destroy();
    const denied = tlsConnect({
      host: '127.0.0.1',
      port,
      servername: 'hr.internal',
      ca: readFileSync(ca.certFile, 'utf8'),
    });
    await t.rejects(
      new Promise((resolve, reject) => {
        denied.once('secureConnect', resolve);
        denied.once('error', reject);
        denied.once('close', () => reject(new Error('closed')));
      }),
      'hr.internal is refused before any certificate is issued',
    );
  });

  t.test('still serves after the bad input', async (t) => {
    t.match(
      await rawExchange(port, 'GET /again HTTP/1.1\r\nHost: payments.internal\r\nConnection: close\r\n\r\n'),
      /^HTTP\/1\.1 200 /,
    );
  });
});
