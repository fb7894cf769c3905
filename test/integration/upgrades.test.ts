// Only a WebSocket handshake is relayed: any other upgrade token is refused before a
// byte is forwarded, a handshake carrying a body is refused (its length would reach
// the tool without its bytes), and a request that names Upgrade without
// `Connection: upgrade` is an ordinary request whose Upgrade header is never forwarded.
import t from 'tap';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { buildBundle, rawExchange, startTollgate, type TestLike } from '../helpers/processes.ts';

const ALLOW_ALL = `package tollgate.authz
decision := {"allowed": true, "reasons": []}
`;

/** An upstream counting ordinary requests and upgrade requests; it accepts any upgrade with 101. */
async function startCountingUpstream(
  t: TestLike,
): Promise<{ port: number; requests: IncomingMessage[]; upgrades: IncomingMessage[] }> {
  const requests: IncomingMessage[] = [];
  const upgrades: IncomingMessage[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    requests.push(req);
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
    upgrades.push(req);
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    socket.on('data', (c: Buffer) => socket.write(c));
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return { port: (server.address() as AddressInfo).port, requests, upgrades };
}

t.test('upgrades through the proxy', async (t) => {
  const upstream = await startCountingUpstream(t);
  const bundle = await buildBundle({ 'policy.rego': ALLOW_ALL }, ['tollgate/authz/decision']);
  const tg = await startTollgate(t, {
    agent: { id: 'support-bot', role: 'support' },
    pdp: { bundle },
    proxy: { resolve: { 'api.test:80': `127.0.0.1:${upstream.port}` } },
  });
  const handshake = (upgrade: string, extra = '') =>
    `GET http://api.test/ws HTTP/1.1\r\nHost: api.test\r\nConnection: Upgrade\r\nUpgrade: ${upgrade}\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`;

  t.test('refuses every upgrade token but a single websocket with TG_ERR_PROTOCOL_REFUSED', async (t) => {
    for (const token of ['h2c', 'TLS/1.0', 'foo', 'websocket, h2c', 'h2c, websocket', 'websocket/13']) {
      const answer = await rawExchange(
        tg.proxyPort,
        handshake(token, token === 'h2c' ? 'HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n' : ''),
      );
      t.match(answer, /^HTTP\/1\.1 400 /, `Upgrade: ${token}`);
      t.match(answer, /TG_ERR_PROTOCOL_REFUSED/);
    }
    t.equal(upstream.upgrades.length + upstream.requests.length, 0, 'nothing reached the upstream');
  });

  t.test('refuses a WebSocket handshake that carries a body, forwarding nothing', async (t) => {
    const smuggled = 'GET /admin HTTP/1.1\r\nHost: api.test\r\n\r\n';
    for (const framing of [`Content-Length: ${smuggled.length}\r\n`, 'Transfer-Encoding: chunked\r\n']) {
      const body = framing.startsWith('Content')
        ? smuggled
        : `${smuggled.length.toString(16)}\r\n${smuggled}\r\n0\r\n\r\n`;
      const answer = await rawExchange(tg.proxyPort, handshake('websocket', framing) + body);
      t.match(answer, /^HTTP\/1\.1 400 /, framing.trim());
      t.match(answer, /TG_ERR_PROTOCOL_REFUSED/);
    }
    t.equal(upstream.upgrades.length + upstream.requests.length, 0, 'nothing reached the upstream');
  });

  t.test('relays a WebSocket handshake, whatever the case of its token (control)', async (t) => {
    for (const token of ['websocket', 'WebSocket']) {
      const answer = await rawExchange(tg.proxyPort, handshake(token), /\r\n\r\n/);
      t.match(answer, /^HTTP\/1\.1 101 /, `Upgrade: ${token}`);
    }
    t.equal(upstream.upgrades.length, 2);
  });

  t.test('never forwards an Upgrade header on an ordinary request', async (t) => {
    const before = upstream.requests.length;
    const answer = await rawExchange(
      tg.proxyPort,
      'GET http://api.test/plain HTTP/1.1\r\nHost: api.test\r\nUpgrade: h2c\r\nConnection: close\r\n\r\n',
    );
    t.match(answer, /^HTTP\/1\.1 200 /);
    t.equal(upstream.requests.length, before + 1);
    const seen = upstream.requests.at(-1)!;
    t.equal(seen.headers.upgrade, undefined, 'no upgrade header reached the tool');
    t.equal(seen.url, '/plain');
  });
});
