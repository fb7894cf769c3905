/**
 * Helpers for the ext_authz tests: the real opa-envoy-plugin as a process, Tollgate's
 * ext_authz listener (via the CLI), a gRPC client for Check, and condition polling
 * with a deadline (never a fixed sleep).
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { AUTHORIZATION_SERVICE, checkMethod, type Message } from '../../src/proto/ext-authz.ts';
import { ROOT, OPA, startTollgate, tempDir, type TestLike, type Tollgate } from '../helpers/processes.ts';

export const OPA_ENVOY = join(ROOT, '.tools/bin/opa-envoy-plugin');
const run = promisify(execFile);

/** A port free right now on 127.0.0.1 (for peers that cannot report a port-0 bind). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Polls `condition` until it holds or the deadline passes. */
export async function waitFor(
  condition: () => Promise<boolean> | boolean,
  what: string,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The outcome of one Check call: a response, or a gRPC error code. */
export type CheckOutcome =
  { readonly response: Message } | { readonly error: { readonly code: number; readonly details: string } };

/** A Check client over one channel. */
export interface CheckClient {
  check(request: Message | Buffer, timeoutMs?: number): Promise<CheckOutcome>;
  close(): void;
}

/** Creates a Check client for 127.0.0.1:port; a Buffer request is sent as raw bytes. */
export function checkClient(port: number): CheckClient {
  const method = checkMethod();
  const Client = grpc.makeGenericClientConstructor({}, AUTHORIZATION_SERVICE);
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
    'grpc.max_send_message_length': 64 * 1024 * 1024,
    'grpc.initial_reconnect_backoff_ms': 50,
    'grpc.max_reconnect_backoff_ms': 200,
  });
  return {
    check(request, timeoutMs = 5000) {
      const wire = Buffer.isBuffer(request) ? request : method.requestSerialize(request);
      return new Promise((resolve) => {
        client.makeUnaryRequest<Buffer, Message>(
          `/${AUTHORIZATION_SERVICE}/Check`,
          (b) => b,
          method.responseDeserialize,
          wire,
          { deadline: new Date(Date.now() + timeoutMs) },
          (err, response) =>
            resolve(err ? { error: { code: err.code, details: err.details } } : { response: response! }),
        );
      });
    },
    close: () => client.close(),
  };
}

/** A running opa-envoy-plugin. */
export interface OpaEnvoy {
  readonly grpcPort: number;
  readonly child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/**
 * Starts the real opa-envoy-plugin serving `path` from Rego/data `paths`, and waits
 * until its ext_authz listener answers a Check.
 */
export async function startOpaEnvoy(
  t: TestLike,
  options: { path: string; paths: string[]; grpcPort?: number; dryRun?: boolean },
): Promise<OpaEnvoy> {
  const grpcPort = options.grpcPort ?? (await freePort());
  const args = [
    'run',
    '--server',
    '--addr=127.0.0.1:0',
    '--log-level=error',
    `--set=plugins.envoy_ext_authz_grpc.addr=127.0.0.1:${grpcPort}`,
    `--set=plugins.envoy_ext_authz_grpc.path=${options.path}`,
    ...(options.dryRun ? ['--set=plugins.envoy_ext_authz_grpc.dry-run=true'] : []),
    '--set=decision_logs.console=false',
    '--ignore=*_test.rego',
    ...options.paths,
  ];
  const child = spawn(OPA_ENVOY, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  t.teardown(stop);
  const probe = checkClient(grpcPort);
  try {
    await waitFor(async () => {
      if (child.exitCode !== null) throw new Error(`opa-envoy-plugin exited:\n${out}`);
      const outcome = await probe.check({}, 1000);
      return !('error' in outcome) || outcome.error.code !== grpc.status.UNAVAILABLE;
    }, 'opa-envoy-plugin to serve ext_authz');
  } finally {
    probe.close();
  }
  return { grpcPort, child, output: () => out, stop };
}

/** A Tollgate process with its ext_authz listener. */
export interface TollgateExtAuthz {
  readonly tollgate: Tollgate;
  readonly extAuthzPort: number;
}

/** Starts `tollgate run` with the ext_authz server on a free port and returns that port. */
export async function startTollgateExtAuthz(
  t: TestLike,
  config: Record<string, unknown>,
  env: Record<string, string> = {},
): Promise<TollgateExtAuthz> {
  const tollgate = await startTollgate(
    t,
    {
      ...config,
      extAuthz: { listen: '127.0.0.1:0', ...(config.extAuthz as object) },
    },
    env,
  );
  const m = /ext_authz [^\s:]+:(\d+)/.exec(tollgate.output());
  if (!m) throw new Error(`tollgate did not print its ext_authz address:\n${tollgate.output()}`);
  return { tollgate, extAuthzPort: Number(m[1]) };
}

/** Builds a WASM bundle with the real opa from Rego/data paths. */
export async function buildWasmBundle(entrypoint: string, paths: string[]): Promise<string> {
  const out = join(await tempDir('tollgate-extauthz-'), 'bundle.tar.gz');
  await run(OPA, ['build', '-t', 'wasm', '-e', entrypoint, '--ignore', '*_test.rego', '-o', out, ...paths], {
    cwd: ROOT,
  });
  return out;
}

/** Builds test/fixtures/envoy-stub-client (Envoy's generated Go stubs) with the real Go toolchain. */
export async function buildStubClient(): Promise<string> {
  const bin = join(await tempDir('tollgate-stub-'), 'envoy-stub-client');
  await run('go', ['build', '-o', bin, '.'], {
    cwd: join(ROOT, 'test/fixtures/envoy-stub-client'),
    env: { ...process.env, GOFLAGS: '-mod=readonly' },
  });
  return bin;
}
