/**
 * A real redis-server for tests: started on a free loopback port with persistence off
 * (--save '' --appendonly no; DEBUG allowed from loopback, so a test can make it hang), awaited until it answers PING, stopped in teardown. It
 * can be killed and started again on the same port (outage tests).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, createServer, type AddressInfo } from 'node:net';
import { pollPause } from './poll.ts';
import type { TestLike } from './processes.ts';

/** The redis-server binary (Debian package redis-server). */
export const REDIS_SERVER = process.env.REDIS_SERVER ?? 'redis-server';

/** A running (or stopped) redis-server. */
export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** Kills it (SIGKILL: an outage, not a shutdown) and waits for the exit. */
  kill(): Promise<void>;
  /** Starts it again on the same port and waits until it answers. */
  start(): Promise<void>;
  /** Sends one inline command and returns the raw reply. */
  command(line: string): Promise<string>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** One inline command over a fresh connection; rejects on a connection error. */
export function redisCommand(port: number, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`${line}\r\n`));
    socket.on('data', (chunk: string) => {
      data += chunk;
      if (data.endsWith('\r\n')) {
        socket.end();
        resolve(data);
      }
    });
    socket.on('error', reject);
  });
}

/** Starts redis-server on a free port; stopped in t.teardown. */
export async function startRedis(t: TestLike): Promise<RedisServer> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  async function start(): Promise<void> {
    const proc = spawn(
      REDIS_SERVER,
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--loglevel',
        'warning',
        '--enable-debug-command',
        'local',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    child = proc;
    let err = '';
    proc.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    const spawnError = new Promise<never>((_, reject) =>
      proc.once('error', (e) =>
        reject(new Error(`redis-server did not start (${e.message}); install the redis-server package`)),
      ),
    );
    const deadline = Date.now() + 10_000;
    for (;;) {
      const ok = await Promise.race([
        redisCommand(port, 'PING').then(
          (r) => r.startsWith('+PONG'),
          () => false,
        ),
        spawnError,
      ]);
      if (ok) return;
      if (proc.exitCode !== null) throw new Error(`redis-server exited with ${proc.exitCode}: ${err}`);
      if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer PING within 10 s`);
      await pollPause();
    }
  }

  async function kill(): Promise<void> {
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  }

  await start();
  t.teardown(kill);
  return { port, url: `redis://127.0.0.1:${port}`, kill, start, command: (line) => redisCommand(port, line) };
}
