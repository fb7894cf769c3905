/**
 * STYLE.md: only the SDK setup imports OpenTelemetry SDK packages — setup.ts and the
 * export pipeline it builds (otlp-export.ts: batching and OTLP transports;
 * otlp-protobuf.ts: the span encoder). Everything else, the span code included
 * (spans.ts), uses @opentelemetry/api (and the semantic-conventions constants).
 */
import t from 'tap';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { ROOT } from '../helpers/processes.ts';

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
