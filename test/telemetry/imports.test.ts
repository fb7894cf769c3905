/**
 * STYLE.md: only the SDK setup imports OpenTelemetry SDK packages — setup.ts and the
 * export pipeline it builds (otlp-export.ts: batching and OTLP transports;
 * otlp-protobuf.ts: the span encoder). Everything else, the span code included
 * (spans.ts), uses @opentelemetry/api (and the semantic-conventions constants).
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { ROOT, tempDir } from '../helpers/processes.ts';
import { moduleLoadRecorder } from '../helpers/module-loads.ts';

const ALLOWED_EVERYWHERE = new Set(['@opentelemetry/api', '@opentelemetry/semantic-conventions']);
const SDK_SETUP = new Set([
  'src/telemetry/setup.ts',
  'src/telemetry/off.ts',
  'src/telemetry/otlp-export.ts',
  'src/telemetry/otlp-protobuf.ts',
]);

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await sources(path)));
    else if (entry.name.endsWith('.ts')) out.push(path);
  }
  return out;
}

t.test('only the SDK setup (setup.ts and its export pipeline) imports OpenTelemetry SDK packages', async (t) => {
  const offenders: string[] = [];
  for (const file of await sources(join(ROOT, 'src'))) {
    const rel = relative(ROOT, file);
    if (SDK_SETUP.has(rel)) continue;
    const text = await readFile(file, 'utf8');
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*['"](@opentelemetry\/[^'"/]+)/g)) {
      if (!ALLOWED_EVERYWHERE.has(m[1]!)) offenders.push(`${rel}: ${m[1]}`);
    }
  }
  t.same(offenders, []);
});

t.test(
  'tracing over gRPC or HTTP/protobuf loads neither otlp-transformer nor the metrics SDK; HTTP/JSON does',
  async (t) => {
    // A child process sets tracing up for one protocol; a module hook lists what it loaded.
    const dir = await tempDir();
    const script = join(dir, 'setup-tracing.mjs');
    await writeFile(
      script,
      `const { setupTelemetry } = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'src/telemetry/setup.ts')).href)});
const telemetry = setupTelemetry({ enabled: true, protocol: process.argv[2], endpoint: 'http://127.0.0.1:9', registerGlobal: false });
const span = telemetry.tracer.startSpan('one');
span.end();
await telemetry.shutdown();
`,
    );
    const loaded = async (protocol: string): Promise<string[]> => {
      const recorder = await moduleLoadRecorder(dir, protocol.replace('/', '-'));
      await promisify(execFile)(process.execPath, [script, protocol], {
        cwd: ROOT,
        env: { ...process.env, ...recorder.env },
      });
      return recorder.loaded();
    };
    const heavy = (urls: string[]): string[] =>
      urls.filter((url) =>
        /\/node_modules\/@opentelemetry\/(otlp-transformer|sdk-metrics|exporter-trace-otlp-http)\//.test(url),
      );
    for (const protocol of ['grpc', 'http/protobuf']) {
      const urls = await loaded(protocol);
      t.ok(
        urls.some((url) => url.includes('/@opentelemetry/sdk-trace/')),
        `${protocol}: the hook saw the SDK load`,
      );
      t.same(heavy(urls), [], `${protocol}: otlp-transformer, the metrics SDK and the JSON exporter are not loaded`);
    }
    t.ok(heavy(await loaded('http/json')).length > 10, 'http/json: they are (the check above can fail)');
  },
);
