/**
 * Real peers for the policy lifecycle tests: bundles built (and signed) by the real
 * opa CLI, signing keys made with node:crypto, and a real HTTP bundle server serving a
 * directory with content-hash ETags, If-None-Match/304, optional bearer token, long
 * polling (Prefer: wait=N) and injectable faults (500, slow, garbage).
 */
import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync, randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { OPA, tempDir, type TestLike } from '../helpers/processes.ts';
import { normalizeRequest } from '../../src/http/normalize.ts';
import { parseConfig } from '../../src/config/load.ts';
import {
  createPolicyLifecycle,
  type PolicyLifecycle,
  type PolicyLifecycleOptions,
} from '../../src/bundle/lifecycle.ts';
import { DEFAULT_BUNDLE_FOR_TESTS } from './paths.ts';
import { buildInput, type PolicyInput } from '../../src/input/build.ts';

const run = promisify(execFile);

/** A silent logger for components under test. */
export const quietLogger = pino({ level: 'silent' });

/** The test policy: allows GETs to hosts in data.tollgate.hosts, denies with a reason naming the revision's rule. */
export function policy(rule: string): string {
  return `package tollgate.authz

import rego.v1

host := input.attributes.request.http.host

default allowed := false

allowed if {
  some h in data.tollgate.hosts
  h == host
  not deny_reason
}

deny_reason := "${rule}" if input.attributes.request.http.method == "DELETE"

reasons := [deny_reason] if deny_reason
reasons := [sprintf("host %s is not listed", [host])] if {
  not deny_reason
  not allowed
}
reasons := [] if allowed

decision := {"allowed": allowed, "reasons": reasons}
`;
}

/** Signing keys written as PEM files. */
export interface Keys {
  readonly dir: string;
  readonly rsaPrivate: string;
  readonly rsaPublic: string;
  readonly ecPrivate: string;
  readonly ecPublic: string;
  readonly otherRsaPrivate: string;
  readonly rsaPublicPem: string;
  readonly ecPublicPem: string;
}

/** Generates RSA 2048 and P-256 key pairs (and a second RSA key: an untrusted signer). */
export async function makeKeys(): Promise<Keys> {
  const dir = await tempDir('tollgate-keys-');
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const files = {
    rsaPrivate: rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    rsaPublic: rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string,
    ecPrivate: ec.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    ecPublic: ec.publicKey.export({ type: 'spki', format: 'pem' }) as string,
    otherRsaPrivate: other.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
  };
  for (const [name, pem] of Object.entries(files)) await writeFile(join(dir, `${name}.pem`), pem);
  return {
    dir,
    rsaPrivate: join(dir, 'rsaPrivate.pem'),
    rsaPublic: join(dir, 'rsaPublic.pem'),
    ecPrivate: join(dir, 'ecPrivate.pem'),
    ecPublic: join(dir, 'ecPublic.pem'),
    otherRsaPrivate: join(dir, 'otherRsaPrivate.pem'),
    rsaPublicPem: files.rsaPublic,
    ecPublicPem: files.ecPublic,
  };
}

/** Options of buildSigned. */
export interface BuildOptions {
  readonly revision: string;
  readonly rule?: string;
  readonly hosts?: readonly string[];
  readonly signingKey?: string;
  readonly alg?: 'RS256' | 'ES256';
  readonly rego?: string;
  readonly data?: unknown;
  readonly out?: string;
}

/** Builds a WASM bundle with the real opa CLI (`opa build -b -t wasm`), signed when a key is given. */
export async function buildSigned(options: BuildOptions): Promise<string> {
  const dir = await tempDir('tollgate-bundle-');
  const src = join(dir, 'src');
  await mkdir(src);
  await writeFile(join(src, 'policy.rego'), options.rego ?? policy(options.rule ?? `rule-${options.revision}`));
  await writeFile(
    join(src, 'data.json'),
    JSON.stringify(options.data ?? { tollgate: { hosts: options.hosts ?? ['api.example'] } }, null, 2),
  );
  const out = options.out ?? join(dir, 'bundle.tar.gz');
  const sign =
    options.signingKey === undefined
      ? []
      : ['--signing-key', options.signingKey, '--signing-alg', options.alg ?? 'RS256'];
  await run(OPA, [
    'build',
    '-b',
    '-t',
    'wasm',
    '-e',
    'tollgate/authz/decision',
    '--revision',
    options.revision,
    ...sign,
    '-o',
    out,
    src,
  ]);
  return out;
}

/** A request the bundle server received. */
export interface ServedRequest {
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly status: number;
}

/** Faults the bundle server can inject. */
export type Fault = 'none' | 'error500' | 'slow' | 'garbage' | 'truncated';

/** A real bundle server over a directory. */
export interface BundleServer {
  readonly url: string;
  readonly dir: string;
  readonly requests: ServedRequest[];
  fault: Fault;
  /** Publishes a bundle file as `name` (atomic replace); wakes long-polling clients. */
  publish(bundlePath: string, name?: string): Promise<void>;
  close(): Promise<void>;
}

/** Starts the bundle server on 127.0.0.1:0. */
export async function startBundleServer(
  t: TestLike,
  options: { token?: string; longPolling?: boolean; etags?: boolean } = {},
): Promise<BundleServer> {
  const dir = await tempDir('tollgate-bundle-server-');
  const requests: ServedRequest[] = [];
  const waiters = new Set<() => void>();
  const state = { fault: 'none' as Fault, generation: 0, closed: false };
  const etagOf = (bytes: Buffer): string => `"${createHash('sha256').update(bytes).digest('hex').slice(0, 32)}"`;
  const server: Server = createServer((req, res) => {
    const reply = (status: number, headers: Record<string, string | number>, body?: Buffer | string): void => {
      requests.push({ url: req.url ?? '', headers: req.headers, status });
      res.writeHead(status, headers);
      res.end(body);
    };
    if (options.token !== undefined && req.headers.authorization !== `Bearer ${options.token}`)
      return reply(401, { 'content-type': 'text/plain' }, 'unauthorized');
    if (state.fault === 'error500') return reply(500, { 'content-type': 'text/plain' }, 'internal error');
    if (state.fault === 'slow') {
      res.writeHead(200, { 'content-type': 'application/gzip' });
      res.write(Buffer.from([0x1f, 0x8b]));
      return; // never finishes: the client's timeout must fire
    }
    if (state.fault === 'garbage')
      return reply(200, { 'content-type': 'application/gzip' }, Buffer.from('<html>this is not a bundle</html>'));
    const file = join(dir, (req.url ?? '/').replace(/^\/+/, '').replace(/\.\./g, ''));
    const serve = async (waited: boolean): Promise<void> => {
      const generation = state.generation;
      let bytes: Buffer;
      try {
        bytes = await readFile(file);
      } catch {
        return reply(404, { 'content-type': 'text/plain' }, 'not found');
      }
      if (state.fault === 'truncated') bytes = bytes.subarray(0, Math.floor(bytes.length / 2));
      const etag = etagOf(bytes);
      const type =
        options.longPolling && req.headers.prefer !== undefined
          ? 'application/vnd.openpolicyagent.bundles'
          : 'application/gzip';
      if (options.etags === false)
        return reply(200, { 'content-type': 'application/gzip', 'content-length': bytes.length }, bytes);
      if (req.headers['if-none-match'] === etag) {
        const wait = /wait=(\d+)/.exec(String(req.headers.prefer ?? ''));
        if (options.longPolling && wait && !waited) {
          // A publish between reading the file and parking here must not be missed.
          if (state.generation !== generation) return serve(false);
          if (state.closed) return reply(304, { etag, 'content-type': type });
          // Long polling: hold the request until a publish or the wait runs out.
          await new Promise<void>((resolve) => {
            const timer = setTimeout(done, Number(wait[1]) * 1000);
            timer.unref();
            function done(): void {
              clearTimeout(timer);
              waiters.delete(done);
              resolve();
            }
            waiters.add(done);
          });
          return serve(true);
        }
        return reply(304, { etag, 'content-type': type });
      }
      reply(200, { etag, 'content-type': type, 'content-length': bytes.length }, bytes);
    };
    void serve(false);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const close = (): Promise<void> =>
    new Promise((resolve) => {
      state.closed = true;
      for (const w of [...waiters]) w();
      server.closeAllConnections();
      server.close(() => resolve());
    });
  t.teardown(close);
  return {
    url: `http://127.0.0.1:${port}`,
    dir,
    requests,
    get fault() {
      return state.fault;
    },
    set fault(f: Fault) {
      state.fault = f;
    },
    async publish(bundlePath, name = 'bundle.tar.gz') {
      const tmp = join(dir, `.${name}.tmp`);
      await writeFile(tmp, await readFile(bundlePath));
      await run('mv', ['-f', tmp, join(dir, name)]);
      state.generation += 1;
      for (const w of [...waiters]) w();
    },
    close,
  };
}

/** A policy input for a request, built as the proxy builds it: normaliser, then the input builder. */
export function requestInput(
  method: string,
  url: string,
  agent: { id: string; role?: string } = { id: 'support-bot', role: 'support' },
  body = '',
): PolicyInput {
  const u = new URL(url);
  const rawHeaders = [
    'host',
    u.host,
    ...(body === '' ? [] : ['content-type', 'application/json', 'content-length', String(Buffer.byteLength(body))]),
  ];
  const request = normalizeRequest({
    id: randomUUID(),
    method,
    target: url,
    rawHeaders,
    httpVersion: '1.1',
    scheme: u.protocol === 'https:' ? 'https' : 'http',
    source: { address: '127.0.0.1', port: 40000 },
    destination: { address: '127.0.0.1', port: 80 },
  });
  return buildInput(
    request,
    { bytes: Buffer.from(body), truncated: false },
    { id: agent.id, role: agent.role ?? '', labels: {} },
  );
}

/** Polls a condition until it holds or the deadline passes (no fixed sleeps). */
export async function until(
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 10000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Builds a policy lifecycle from a config literal through the real config loader; closed with the test. */
export async function startLifecycle(
  t: TestLike,
  doc: Record<string, unknown>,
  hooks: PolicyLifecycleOptions['hooks'] = {},
): Promise<PolicyLifecycle> {
  const config = parseConfig(doc);
  if (config.pdp.type !== 'wasm') throw new Error('wasm pdp expected');
  const lc = await createPolicyLifecycle({
    pdp: config.pdp,
    bundle: config.bundle,
    shadow: config.shadow,
    data: config.data,
    defaultBundle: DEFAULT_BUNDLE_FOR_TESTS,
    logger: quietLogger,
    hooks,
  });
  t.teardown(() => lc.close());
  return lc;
}
