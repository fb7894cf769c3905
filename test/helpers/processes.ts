/**
 * Test helpers that run real things: the tollgate CLI as a child process, real
 * HTTP upstreams on 127.0.0.1 port 0, the real opa CLI to build bundles. Every
 * resource is torn down with t.teardown; readiness is awaited, never slept for.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
  type IncomingHttpHeaders,
} from 'node:http';
import { connect } from 'node:net';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { AddressInfo } from 'node:net';

/** The tap Test surface these helpers use. */
export interface TestLike {
  teardown(fn: () => unknown): void;
}

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const OPA = join(ROOT, '.tools/bin/opa');
export const CLI = join(ROOT, 'src/cli/main.ts');
const run = promisify(execFile);

/** A running tollgate process. */
export interface Tollgate {
  /** The proxy listener's port; 0 when proxy.enabled is false. */
  readonly proxyPort: number;
  readonly adminPort: number;
  readonly child: ChildProcess;
  output(): string;
  stop(): Promise<number | null>;
}

/** Writes a temporary directory and returns its path. */
export async function tempDir(prefix = 'tollgate-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Starts `tollgate run` with a config object and waits until it listens. */
export async function startTollgate(
  t: TestLike,
  config: Record<string, unknown>,
  env: Record<string, string> = {},
): Promise<Tollgate> {
  const dir = await tempDir();
  const file = join(dir, 'tollgate.yaml');
  const doc = {
    logLevel: 'warn',
    ...config,
    proxy: { listen: '127.0.0.1:0', ...(config.proxy as object) },
    admin: { listen: '127.0.0.1:0', ...(config.admin as object) },
    extAuthz: { listen: '127.0.0.1:0', ...(config.extAuthz as object) },
  };
  await writeFile(file, JSON.stringify(doc));
  const child = spawn(process.execPath, [CLI, 'run', '--config', file], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (c: string) => (out += c));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const ports = await new Promise<{ proxy: number; admin: number }>((resolve, reject) => {
    child.stdout!.on('data', (c: string) => {
      out += c;
      const m = /listening: (?:proxy https?:\/\/[^:]+:(\d+)\s+)?admin http:\/\/[^:]+:(\d+)/.exec(out);
      if (m) resolve({ proxy: Number(m[1] ?? 0), admin: Number(m[2]) });
    });
    void exited.then((code) => reject(new Error(`tollgate exited with ${code} before listening:\n${out}`)));
  });
  let stopped = false;
  const stop = async (): Promise<number | null> => {
    if (!stopped) {
      stopped = true;
      if (child.exitCode === null) child.kill('SIGTERM');
    }
    return exited;
  };
  t.teardown(stop);
  return { proxyPort: ports.proxy, adminPort: ports.admin, child, output: () => out, stop };
}

/** A request an upstream received. */
export interface Received {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly rawHeaders: string[];
  readonly body: string;
}

/** A real upstream HTTP server that records what reaches it. */
export interface Upstream {
  readonly port: number;
  readonly received: Received[];
  close(): Promise<void>;
}

/** Starts an upstream; the default handler answers 200 JSON echoing the request. */
export async function startUpstream(
  t: TestLike,
  handler?: (req: IncomingMessage, res: ServerResponse, body: string) => void,
): Promise<Upstream> {
  const received: Received[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      received.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body,
      });
      if (handler) return handler(req, res, body);
      const out = JSON.stringify({ ok: true, method: req.method, url: req.url, bytes: Buffer.byteLength(body) });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
      res.end(out);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const close = (): Promise<void> =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  t.teardown(close);
  return { port: (server.address() as AddressInfo).port, received, close };
}

/** A response as a test sees it. */
export interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** Sends one request through the proxy (absolute-form unless `originForm`). */
export function viaProxy(
  proxyPort: number,
  options: {
    method?: string;
    url: string;
    headers?: Record<string, string | string[]>;
    body?: string | Buffer;
    originForm?: boolean;
  },
): Promise<Reply> {
  const url = new URL(options.url);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port: proxyPort,
        method: options.method ?? 'GET',
        path: options.originForm ? `${url.pathname}${url.search}` : options.url,
        headers: { host: url.host, ...options.headers },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Writes raw bytes to the proxy and returns everything it answers until it closes or `until` matches. */
export function rawExchange(port: number, payload: string | Buffer, until?: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (c: string) => {
      data += c;
      if (until?.test(data)) socket.destroy();
    });
    socket.on('close', () => resolve(data));
    socket.on('error', (err) => (data ? resolve(data) : reject(err)));
    socket.write(payload);
  });
}

/** Builds a WASM bundle with the real opa CLI from Rego sources (and optional data). */
export async function buildBundle(
  files: Record<string, string>,
  entrypoints: string[],
  revision = 'test',
): Promise<string> {
  const dir = await tempDir('tollgate-policy-');
  const src = join(dir, 'src');
  await run('mkdir', ['-p', src]);
  for (const [name, text] of Object.entries(files)) await writeFile(join(src, name), text);
  const out = join(dir, 'bundle.tar.gz');
  await run(OPA, [
    'build',
    '-t',
    'wasm',
    ...entrypoints.flatMap((e) => ['-e', e]),
    '--revision',
    revision,
    '-o',
    out,
    src,
  ]);
  return out;
}
