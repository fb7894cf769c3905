// WebSocket through Tollgate: the policy decides on the upgrade request; an allowed
// upgrade is relayed both ways to a real `ws` echo server; a denied one never
// reaches it. Plain ws:// on the listener (origin-form, as a transparent or
// Host-routed agent sends it), ws:// inside a CONNECT tunnel, and wss:// inside an
// intercepted TLS tunnel (undici's WebSocket with a ProxyAgent).
import t from 'tap';
import { connect } from 'node:net';
import { createServer as createHttpsServer } from 'node:https';
import { createSecureContext } from 'node:tls';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { WebSocket as WsClient, WebSocketServer } from 'ws';
import { ProxyAgent, WebSocket as UndiciWebSocket } from 'undici';
import { startTollgate, type TestLike } from '../helpers/processes.ts';
import { generateCa, generateLeafKey, issueLeaf, loadCa } from '../../src/tls/ca.ts';
import { tollgateCa } from '../tls/fixtures.ts';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../helpers/processes.ts';

interface Echo {
  readonly port: number;
  readonly tlsPort: number;
  readonly caFile: string;
  readonly upgrades: string[];
}

async function startEcho(t: TestLike): Promise<Echo> {
  const upgrades: string[] = [];
  const echo = (wss: WebSocketServer) =>
    wss.on('connection', (socket, req) => {
      upgrades.push(`${req.headers.host} ${req.url} agent=${req.headers['x-tollgate-agent'] ?? ''}`);
      socket.on('message', (data, isBinary) =>
        socket.send(isBinary ? data : `echo:${data.toString()}`, { binary: isBinary }),
      );
    });
  const plain = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  echo(plain);
  await new Promise<void>((resolve) => plain.on('listening', () => resolve()));
  const pair = generateCa({ commonName: 'ws upstream CA' });
  const ca = loadCa(pair.certPem, pair.keyPem);
  const key = generateLeafKey();
  const dir = await tempDir();
  const caFile = join(dir, 'ws-ca.crt');
  await writeFile(caFile, pair.certPem);
  const https = createHttpsServer({
    SNICallback: (name, cb) =>
      cb(null, createSecureContext({ cert: issueLeaf(ca, name, key.key).certPem, key: key.keyPem })),
  });
  const secure = new WebSocketServer({ server: https });
  echo(secure);
  await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve));
  t.teardown(async () => {
    for (const c of plain.clients) c.terminate();
    for (const c of secure.clients) c.terminate();
    await new Promise((r) => plain.close(r));
    await new Promise((r) => secure.close(r));
    https.closeAllConnections();
    await new Promise((r) => https.close(r));
  });
  return {
    port: (plain.address() as AddressInfo).port,
    tlsPort: (https.address() as AddressInfo).port,
    caFile,
    upgrades,
  };
}

/** Sends one message and waits for its echo, over any WebSocket-like client. */
function roundTrip(ws: WsClient, message: string): Promise<string> {
  return new Promise((resolve, reject) => {
    ws.once('message', (data) => resolve(data.toString()));
    ws.once('error', reject);
    ws.send(message);
  });
}

t.test('WebSocket upgrades through the proxy', async (t) => {
  const echo = await startEcho(t);
  const ca = await tollgateCa();
  const resolve: Record<string, string> = {
    'payments.internal:80': `127.0.0.1:${echo.port}`,
    'hr.internal:80': `127.0.0.1:${echo.port}`,
    'payments.internal:443': `127.0.0.1:${echo.tlsPort}`,
    'hr.internal:443': `127.0.0.1:${echo.tlsPort}`,
  };
  const tg = await startTollgate(t, {
    agent: { id: 'support-bot', role: 'support' },
    proxy: { resolve },
    tls: { caCertFile: ca.certFile, caKeyFile: ca.keyFile, upstreamCaFiles: [echo.caFile] },
  });

  t.test('relays an allowed ws:// upgrade both ways (ws client, Host-routed)', async (t) => {
    const ws = new WsClient('ws://payments.internal/v1/stream', {
      createConnection: () => connect(tg.proxyPort, '127.0.0.1'),
    });
    t.teardown(() => ws.terminate());
    const opened = await new Promise<{ decision?: string }>((resolve, reject) => {
      ws.once('upgrade', (res) => resolve({ decision: res.headers['x-tollgate-decision-id'] as string }));
      ws.once('error', reject);
    });
    t.match(opened.decision, /^[0-9a-f-]{36}$/, 'the 101 carries the decision id');
    await new Promise((r) => (ws.readyState === ws.OPEN ? r(undefined) : ws.once('open', r)));
    t.equal(await roundTrip(ws, 'hello'), 'echo:hello');
    t.equal(await roundTrip(ws, 'x'.repeat(100_000)), `echo:${'x'.repeat(100_000)}`, 'large frames flow');
    t.match(
      echo.upgrades.at(-1),
      /^payments\.internal \/v1\/stream agent=support-bot$/,
      'the policy header was applied to the upgrade',
    );
  });

  t.test('refuses a denied upgrade before it reaches the server', async (t) => {
    const before = echo.upgrades.length;
    const ws = new WsClient('ws://hr.internal/v1/stream', {
      createConnection: () => connect(tg.proxyPort, '127.0.0.1'),
    });
    const status = await new Promise<number>((resolve) => {
      ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.once('error', () => resolve(-1));
    });
    t.equal(status, 403);
    t.equal(echo.upgrades.length, before, 'the echo server saw no upgrade');
  });

  t.test('relays ws:// and wss:// inside CONNECT tunnels (undici WebSocket + ProxyAgent)', async (t) => {
    const dispatcher = new ProxyAgent({
      uri: `http://127.0.0.1:${tg.proxyPort}`,
      requestTls: { ca: readFileSync(ca.certFile, 'utf8') },
    });
    t.teardown(() => dispatcher.close());
    for (const url of ['ws://payments.internal/tunnel', 'wss://payments.internal/secure']) {
      const before = echo.upgrades.length;
      const ws = new UndiciWebSocket(url, { dispatcher });
      const reply = await new Promise<string>((resolve, reject) => {
        ws.addEventListener('open', () => ws.send('ping'));
        ws.addEventListener('message', (e) => resolve(String(e.data)));
        ws.addEventListener('error', (e) =>
          reject(new Error(`${url}: ${(e as Event & { message?: string }).message}`)),
        );
      });
      ws.close();
      t.equal(reply, 'echo:ping', url);
      t.equal(echo.upgrades.length, before + 1);
      t.match(echo.upgrades.at(-1), /agent=support-bot$/, `${url} was decided at L7`);
    }
    const denied = new UndiciWebSocket('wss://hr.internal/secure', { dispatcher });
    const outcome = await new Promise<string>((resolve) => {
      denied.addEventListener('open', () => resolve('open'));
      denied.addEventListener('error', () => resolve('error'));
    });
    t.equal(outcome, 'error', 'wss:// to a denied host fails');
  });
});
