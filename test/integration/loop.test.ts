// A request whose destination is one of Tollgate's own listeners is refused before any
// connection is opened (no proxy loop, no admin API through the proxy), and a request
// that already carries this Tollgate's Via entry is refused as a loop (RFC 9110 §7.6.3).
// Real sidecar, an allow-everything policy, real upstream.
import t from 'tap';
import { buildBundle, rawExchange, startTollgate, startUpstream, viaProxy } from '../helpers/processes.ts';
import { closed, openTunnel } from '../tls/fixtures.ts';
import { createServer, type AddressInfo } from 'node:net';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const ALLOW_ALL = `package tollgate.authz
decision := {"allowed": true, "reasons": []}
`;

t.test('refuses destinations that are its own listeners and requests that loop back', async (t) => {
  const bundle = await buildBundle({ 'policy.rego': ALLOW_ALL }, ['tollgate/authz/decision'], 'allow-1');
  const upstream = await startUpstream(t);
  const adminPort = await freePort();
  const tg = await startTollgate(t, {
    agent: { id: 'support-bot', role: 'support' },
    pdp: { bundle },
    admin: { listen: `0.0.0.0:${adminPort}` },
    proxy: {
      resolve: { 'admin.internal:80': `127.0.0.1:${adminPort}`, 'tool.internal:80': `127.0.0.1:${upstream.port}` },
    },
  });
  const refused = (r: { status: number; body: string }, what: string) => {
    t.equal(r.status, 501, what);
    t.equal(JSON.parse(r.body).error?.code ?? JSON.parse(r.body).code, 'TG_ERR_UNSUPPORTED', what);
  };

  t.test('refuses a request to its own proxy port instead of looping', async (t) => {
    const r = await viaProxy(tg.proxyPort, { url: `http://127.0.0.1:${tg.proxyPort}/loop` });
    refused(r, 'the proxy itself');
    t.match(r.body, /own listeners/);
  });

  t.test('refuses the admin listener (on the any-address) through the proxy, by any local name', async (t) => {
    for (const host of ['127.0.0.1', '127.0.0.2', 'localhost', '[::ffff:127.0.0.1]'])
      refused(await viaProxy(tg.proxyPort, { url: `http://${host}:${tg.adminPort}/metrics` }), host);
    refused(await viaProxy(tg.proxyPort, { url: 'http://admin.internal/metrics' }), 'a resolve override to it');
  });

  t.test('refuses a CONNECT tunnel to its own listener', async (t) => {
    const tunnel = await openTunnel(tg.proxyPort, `127.0.0.1:${tg.adminPort}`);
    t.equal(tunnel.status, 501);
    t.match(tunnel.head, /TG_ERR_UNSUPPORTED/);
    await closed(tunnel.socket);
  });

  t.test('adds its Via entry to forwarded requests and refuses a request carrying it', async (t) => {
    const ok = await viaProxy(tg.proxyPort, {
      url: 'http://tool.internal/x',
      headers: { via: '1.1 agent-gateway' },
    });
    t.equal(ok.status, 200);
    const via = String(upstream.received.at(-1)!.headers.via);
    t.match(via, /^1\.1 agent-gateway, 1\.1 tollgate-[0-9a-f]{8}$/);
    const before = upstream.received.length;
    const loop = await viaProxy(tg.proxyPort, { url: 'http://tool.internal/x', headers: { via } });
    refused(loop, 'a request that already passed through this proxy');
    t.equal(upstream.received.length, before);
    const other = await viaProxy(tg.proxyPort, {
      url: 'http://tool.internal/x',
      headers: { via: '1.1 tollgate-00000000' },
    });
    t.equal(other.status, 200, 'another Tollgate in the chain is no loop');
  });

  t.test('still answers on the proxy itself (control)', async (t) => {
    const answer = await rawExchange(
      tg.proxyPort,
      'GET http://tool.internal/y HTTP/1.1\r\nHost: tool.internal\r\nConnection: close\r\n\r\n',
    );
    t.match(answer, /^HTTP\/1\.1 200 /);
  });
});
