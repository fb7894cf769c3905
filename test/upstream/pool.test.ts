/**
 * Per-origin upstream pools against real HTTP servers: idle pools are closed (the
 * server sees their sockets close), a pool with a request in flight never is, the
 * least recently used idle pool makes room past the cap, and a request after an
 * eviction works on a new pool.
 */
import t from 'tap';
import { request, type Dispatcher } from 'undici';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { createUpstreams, type Upstreams } from '../../src/upstream/pool.ts';
import { pollPause } from '../helpers/poll.ts';
import { startTollgate, viaProxy } from '../helpers/processes.ts';

t.setTimeout(60_000);

/** A real upstream that counts its open sockets and can hold a response open. */
interface Origin {
  readonly port: number;
  open(): number;
  /** Responses held open by requests to /hold, released by release(). */
  held(): number;
  release(): void;
}

async function startOrigin(t: { teardown(fn: () => unknown): void }): Promise<Origin> {
  const sockets = new Set<Socket>();
  const holding: ServerResponse[] = [];
  const server = createServer((req, res) => {
    req.resume();
    if (req.url === '/hold') {
      // Headers now, body later: the request stays "in flight" for the pool.
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first part\n');
      holding.push(res);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '3' });
    res.end('ok\n');
  });
  // A keep-alive hint of 10 minutes: undici keeps idle sockets that long, so a socket that
  // closes sooner was closed by the eviction, not by keep-alive expiry.
  server.keepAliveTimeout = 600_000;
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return {
    port: (server.address() as AddressInfo).port,
    open: () => sockets.size,
    held: () => holding.length,
    release: () => {
      for (const res of holding.splice(0)) res.end('last part\n');
    },
  };
}

/** Polls a condition until it holds or the deadline passes. */
async function until(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await pollPause();
  }
}

/** A GET on the pool upstreams.pool() gives for 127.0.0.1:port (undici's request, on that pool). */
function send(upstreams: Upstreams, port: number, path: string): Promise<Dispatcher.ResponseData> {
  const dispatcher = upstreams.pool('http', '127.0.0.1', port) as unknown as Dispatcher;
  return request(`http://127.0.0.1:${port}${path}`, { dispatcher });
}

async function get(upstreams: Upstreams, port: number, path = '/'): Promise<string> {
  const res = await send(upstreams, port, path);
  return res.body.text();
}

t.test('idle pools are closed, their sockets with them, and the next request opens a new pool', async (t) => {
  const origins = [await startOrigin(t), await startOrigin(t), await startOrigin(t)];
  const upstreams = createUpstreams({ resolve: {}, headersTimeoutMs: 5000, connectTimeoutMs: 5000, idleMs: 200 });
  t.teardown(() => upstreams.close());
  for (const o of origins) t.equal(await get(upstreams, o.port), 'ok\n');
  t.equal(upstreams.size(), 3, 'one pool per origin');
  t.same(
    origins.map((o) => o.open()),
    [1, 1, 1],
    'each keeps a keep-alive socket',
  );

  await until('the idle pools to be evicted', () => upstreams.size() === 0);
  await until('the servers to see the sockets close', () => origins.every((o) => o.open() === 0));
  t.equal(upstreams.evicted(), 3);

  t.equal(await get(upstreams, origins[0]!.port), 'ok\n', 'a request after the eviction works');
  t.equal(upstreams.size(), 1);
  t.equal(origins[0]!.open(), 1);
});

t.test('a pool with a request in flight is never evicted; it is once the response ends', async (t) => {
  const busy = await startOrigin(t);
  const idle = await startOrigin(t);
  const upstreams = createUpstreams({ resolve: {}, headersTimeoutMs: 5000, connectTimeoutMs: 5000, idleMs: 100 });
  t.teardown(() => upstreams.close());
  const res = await send(upstreams, busy.port, '/hold');
  t.equal(res.statusCode, 200);
  await until('the held response', () => busy.held() === 1);
  // Used after the busy pool: its eviction means every sweep that evicted it had passed the
  // older, busy pool first (the sweep walks pools from least to most recently used).
  t.equal(await get(upstreams, idle.port), 'ok\n');
  await until('the idle pool to be evicted', () => idle.open() === 0 && upstreams.size() === 1);
  upstreams.sweep();
  t.equal(upstreams.size(), 1, 'the busy pool is kept');
  t.equal(busy.open(), 1, 'its socket is open');

  busy.release();
  t.equal(await res.body.text(), 'first part\nlast part\n', 'the response completes on the kept pool');
  await until('the now idle pool to be evicted', () => upstreams.size() === 0 && busy.open() === 0);
  t.equal(upstreams.evicted(), 2);
});

/** Pools that never idle out, at most two kept. */
function twoPools(): Upstreams {
  return createUpstreams({ resolve: {}, headersTimeoutMs: 5000, connectTimeoutMs: 5000, idleMs: 600_000, maxPools: 2 });
}

t.test('past the cap the least recently used idle pool is closed, never a busy one', async (t) => {
  const [a, b, c, d] = [await startOrigin(t), await startOrigin(t), await startOrigin(t), await startOrigin(t)];
  const upstreams = twoPools();
  t.teardown(async () => {
    a!.release();
    await upstreams.close();
  });
  t.equal(await get(upstreams, a!.port), 'ok\n');
  t.equal(await get(upstreams, b!.port), 'ok\n');
  t.equal(await get(upstreams, a!.port), 'ok\n', 'a is now more recently used than b');
  t.equal(await get(upstreams, c!.port), 'ok\n');
  t.equal(upstreams.size(), 2);
  await until('b, the least recently used, to be closed', () => b!.open() === 0);
  t.equal(a!.open(), 1, 'a is kept');

  // a busy, c idle and older than d's arrival: c makes room, a stays.
  const held = await send(upstreams, a!.port, '/hold');
  await until('the held response', () => a!.held() === 1);
  t.equal(await get(upstreams, c!.port), 'ok\n', 'c is now more recently used than a');
  t.equal(await get(upstreams, d!.port), 'ok\n');
  await until('c, the least recently used idle pool, to be closed', () => c!.open() === 0);
  t.equal(a!.open(), 1, 'the busy pool is kept although it is the least recently used');
  t.equal(upstreams.size(), 2);

  // Every pool busy: the cap yields rather than cut a request.
  const heldD = send(upstreams, d!.port, '/hold');
  await until('the second held response', () => d!.held() === 1);
  t.equal(await get(upstreams, b!.port), 'ok\n');
  t.equal(upstreams.size(), 3, 'over the cap while the others are busy');
  a!.release();
  d!.release();
  t.equal(await held.body.text(), 'first part\nlast part\n');
  t.equal(await (await heldD).body.text(), 'first part\nlast part\n');
  t.equal(upstreams.evicted(), 2);
});

t.test('repeated calls to the most recent origin keep the recency order', async (t) => {
  const [a, b, c] = [await startOrigin(t), await startOrigin(t), await startOrigin(t)];
  const upstreams = twoPools();
  t.teardown(() => upstreams.close());
  for (const origin of [a, a, b, b, a, a]) t.equal(await get(upstreams, origin!.port), 'ok\n');
  t.equal(await get(upstreams, c!.port), 'ok\n');
  await until('b, the least recently used, to be closed', () => b!.open() === 0);
  t.ok(a!.open() > 0, 'a, used last before c, is kept');
  // b, closed above, asked for twice: a new pool, after which a is the least recently used.
  t.equal(await get(upstreams, b!.port), 'ok\n');
  t.equal(await get(upstreams, b!.port), 'ok\n');
  await until('a to be closed', () => a!.open() === 0);
  t.equal(upstreams.evicted(), 2);
  t.equal(await get(upstreams, a!.port), 'ok\n', 'a reopened');
  t.equal(await get(upstreams, a!.port), 'ok\n');
  t.ok(a!.open() > 0);
  t.equal(upstreams.size(), 2);
});

t.test('the sidecar closes an idle upstream pool and reconnects on the next request', async (t) => {
  const origin = await startOrigin(t);
  const tg = await startTollgate(t, {
    agent: { id: 'support-bot', role: 'support' },
    proxy: { resolve: { 'payments.internal:80': `127.0.0.1:${origin.port}` }, upstreamPoolIdleMs: 200 },
  });
  const first = await viaProxy(tg.proxyPort, { url: 'http://payments.internal/v1/refunds/r-1' });
  t.equal(first.status, 200);
  t.equal(first.body, 'ok\n');
  await until('the upstream to see the pool socket close', () => origin.open() === 0);
  const metrics = await (await fetch(`http://127.0.0.1:${tg.adminPort}/metrics`)).text();
  t.match(metrics, /^tollgate_upstream_pools 0$/m, 'no pool kept');
  t.match(metrics, /^tollgate_upstream_pools_evicted_total 1$/m, 'one pool evicted');
  const second = await viaProxy(tg.proxyPort, { url: 'http://payments.internal/v1/refunds/r-1' });
  t.equal(second.status, 200, 'a request after the eviction works');
  t.equal(origin.open(), 1);
});

t.test("undici's Pool and connector are loaded by their own modules, not the package index", async (t) => {
  const require = createRequire(import.meta.url);
  // The modules pool.ts imports are the values undici's index exports (an undici upgrade that
  // moves them fails here, not in production).
  const index = require('undici') as typeof import('undici');
  t.equal(require('undici/lib/dispatcher/pool.js'), index.Pool);
  t.equal(require('undici/lib/core/connect.js'), index.buildConnector);
  // A process that loads the upstream layer does not load the index (fetch, web streams,
  // WebSocket, the cache, mocks).
  const poolModule = fileURLToPath(new URL('../../src/upstream/pool.ts', import.meta.url));
  const script = `
    await import(${JSON.stringify(poolModule)});
    const loaded = Object.keys((await import('node:module')).createRequire(import.meta.url).cache);
    console.log(JSON.stringify({
      pool: loaded.some((file) => file.endsWith('/undici/lib/dispatcher/pool.js')),
      index: loaded.some((file) => file.endsWith('/undici/index.js')),
      modules: loaded.filter((file) => file.includes('/undici/')).length,
    }));`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  const seen = JSON.parse(out) as { pool: boolean; index: boolean; modules: number };
  t.equal(seen.pool, true, 'the Pool module is loaded');
  t.equal(seen.index, false, "undici's index is not loaded");
  t.ok(seen.modules < 40, `${seen.modules} undici modules loaded`);
});
