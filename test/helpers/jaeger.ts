/**
 * The real Jaeger v2 (all-in-one, in-memory storage) for tests: every port bound to a
 * free 127.0.0.1 port, torn down with the test; its HTTP query API polled with a deadline.
 */
import { spawn } from 'node:child_process';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ROOT, tempDir, type TestLike } from './processes.ts';
import { pollPause } from './poll.ts';

/** The Jaeger binary installed by scripts/install-tools.sh jaeger. */
export const JAEGER = join(ROOT, '.tools/bin/jaeger');

export async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Polls `probe` until it returns a value or the deadline passes. */
export async function until<T>(what: string, probe: () => Promise<T | undefined>, deadlineMs = 20_000): Promise<T> {
  const end = Date.now() + deadlineMs;
  let lastError: unknown;
  while (Date.now() < end) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    await pollPause();
  }
  throw new Error(`timed out waiting for ${what}${lastError !== undefined ? `: ${String(lastError)}` : ''}`);
}

export interface JaegerTag {
  key: string;
  value: unknown;
}
export interface JaegerSpan {
  traceID: string;
  spanID: string;
  operationName: string;
  references: { refType: string; traceID: string; spanID: string }[];
  tags: JaegerTag[];
  processID: string;
}
export interface JaegerTrace {
  traceID: string;
  spans: JaegerSpan[];
  processes: Record<string, { serviceName: string; tags: JaegerTag[] }>;
}

export const tag = (tags: JaegerTag[], key: string): unknown => tags.find((x) => x.key === key)?.value;

export async function startJaeger(t: TestLike): Promise<{ grpc: number; http: number; query: number }> {
  const [grpc, http, query, queryGrpc] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const dir = await tempDir('tollgate-jaeger-');
  const config = join(dir, 'jaeger.yaml');
  await writeFile(
    config,
    `service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:${query}
    grpc:
      endpoint: 127.0.0.1:${queryGrpc}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:${grpc}
      http:
        endpoint: 127.0.0.1:${http}
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`,
  );
  const child = spawn(JAEGER, ['--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  t.teardown(async () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
  });
  await until(`jaeger query API (output so far: ${output})`, async () => {
    if (child.exitCode !== null) throw new Error(`jaeger exited ${child.exitCode}: ${output}`);
    const res = await fetch(`http://127.0.0.1:${query}/api/services`);
    return res.ok ? true : undefined;
  });
  return { grpc, http, query };
}

export async function getTrace(query: number, traceId: string, minSpans: number): Promise<JaegerTrace> {
  return until(`trace ${traceId} with ${minSpans} spans in jaeger`, async () => {
    const res = await fetch(`http://127.0.0.1:${query}/api/traces/${traceId}`);
    if (!res.ok) return undefined;
    const body = (await res.json()) as { data?: JaegerTrace[] };
    const trace = body.data?.[0];
    return trace !== undefined && trace.spans.length >= minSpans ? trace : undefined;
  });
}

export async function searchTraceIds(query: number, service: string, tags: Record<string, string>): Promise<string[]> {
  const url = `http://127.0.0.1:${query}/api/traces?service=${encodeURIComponent(service)}&tags=${encodeURIComponent(JSON.stringify(tags))}&lookback=1h&limit=100`;
  const res = await fetch(url);
  const body = (await res.json()) as { data?: JaegerTrace[] };
  return (body.data ?? []).map((tr) => tr.traceID);
}
