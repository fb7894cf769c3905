/**
 * One forwarded exchange on a real undici Pool between two real HTTP servers (the agent
 * side and the upstream): a large answer reaches an agent that reads slowly intact (the
 * upstream is paused while the agent's socket is full), the agent going away stops the
 * upstream request, and an upstream that cannot be reached is reported once as a 502.
 */
import t from 'tap';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Writable } from 'node:stream';
import { Pool } from 'undici';
import { Exchange, type ExchangeHooks } from '../../src/upstream/exchange.ts';
import type { TollgateError } from '../../src/errors.ts';
import { pollPause } from '../helpers/poll.ts';

t.setTimeout(60_000);

async function listen(t: { teardown(fn: () => unknown): void }, server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(() => resolve(undefined)));
  });
  return (server.address() as AddressInfo).port;
}

/** An agent-side server that forwards every request through an Exchange to `pool`. */
async function startFront(
  t: { teardown(fn: () => unknown): void },
  pool: Pool,
  errors: TollgateError[],
): Promise<number> {
  const hooks: ExchangeHooks = {
    onHead(exchange, statusCode, headers) {
      exchange.res.writeHead(statusCode, { 'content-type': String(headers['content-type'] ?? 'text/plain') });
      return exchange.res as unknown as Writable;
    },
    onError(exchange, error) {
      errors.push(error);
      exchange.res.writeHead(error.status).end(error.code);
    },
  };
  const front = createServer((req: IncomingMessage, res: ServerResponse) => {
    const exchange = new Exchange(hooks, res, undefined);
    res.on('close', () => {
      if (!res.writableFinished) exchange.abort();
    });
    exchange.send(pool, { path: req.url ?? '/', method: 'GET', headers: {}, body: null });
  });
  return listen(t, front);
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await pollPause();
  }
}

t.test('relays a large answer intact to an agent that reads slowly', async (t) => {
  const size = 16 * 1024 * 1024;
  const payload = Buffer.alloc(size, 'x');
  payload.write('end', size - 3);
  const upstream = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(size) });
    res.end(payload);
  });
  const upstreamPort = await listen(t, upstream);
  const pool = new Pool(`http://127.0.0.1:${upstreamPort}`);
  t.teardown(() => pool.destroy());
  const errors: TollgateError[] = [];
  const frontPort = await startFront(t, pool, errors);

  const body = await new Promise<Buffer>((resolve, reject) => {
    request({ host: '127.0.0.1', port: frontPort, path: '/big' }, (res) => {
      const chunks: Buffer[] = [];
      // Read in spurts so the agent's socket fills and the upstream must wait.
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        res.pause();
        setTimeout(() => res.resume(), 1);
      });
      res.on('end', () => resolve(Buffer.concat(chunks)));
      res.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
  t.equal(body.length, size, 'every byte arrives');
  t.equal(body.subarray(size - 3).toString(), 'end', 'in order, to the last byte');
  t.same(errors, []);
});

t.test('stops the upstream request when the agent goes away', async (t) => {
  let upstreamClosed = false;
  let upstreamStarted = false;
  const upstream = createServer((_req, res) => {
    upstreamStarted = true;
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const timer = setInterval(() => res.write('data: tick\n\n'), 10);
    res.on('close', () => {
      clearInterval(timer);
      upstreamClosed = true;
    });
  });
  const upstreamPort = await listen(t, upstream);
  const pool = new Pool(`http://127.0.0.1:${upstreamPort}`);
  t.teardown(() => pool.destroy());
  const errors: TollgateError[] = [];
  const frontPort = await startFront(t, pool, errors);

  await new Promise<void>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: frontPort, path: '/events' }, (res) => {
      res.once('data', () => {
        req.destroy();
        resolve();
      });
    });
    req.on('error', () => undefined);
    req.on('close', () => (upstreamStarted ? resolve() : reject(new Error('closed before any event'))));
    req.end();
  });
  await until(() => upstreamClosed, 'the upstream request to be closed');
  t.ok(upstreamClosed, 'the upstream saw its request end');
  t.same(errors, [], 'an agent going away is not reported as an upstream failure');
});

t.test('reports an upstream that cannot be reached once, as a 502', async (t) => {
  const closed = createServer();
  const port = await listen(t, closed);
  await new Promise((resolve) => closed.close(resolve));
  const pool = new Pool(`http://127.0.0.1:${port}`);
  t.teardown(() => pool.destroy());
  const errors: TollgateError[] = [];
  const frontPort = await startFront(t, pool, errors);

  const status = await new Promise<number>((resolve, reject) => {
    request({ host: '127.0.0.1', port: frontPort, path: '/' }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    })
      .on('error', reject)
      .end();
  });
  t.equal(status, 502);
  t.equal(errors.length, 1);
  t.equal(errors[0]?.code, 'TG_ERR_UPSTREAM');
});
