/**
 * STYLE.md: only src/telemetry/setup.ts imports OpenTelemetry SDK packages; everything
 * else uses @opentelemetry/api (and the semantic-conventions constants).
 */
import t from 'tap';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { ROOT } from '../helpers/processes.ts';

const ALLOWED_EVERYWHERE = new Set(['@opentelemetry/api', '@opentelemetry/semantic-conventions']);

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await sources(path)));
    else if (entry.name.endsWith('.ts')) out.push(path);
  }
  return out;
}

t.test('only telemetry/setup.ts imports OpenTelemetry SDK packages', async (t) => {
  const offenders: string[] = [];
  for (const file of await sources(join(ROOT, 'src'))) {
    const rel = relative(ROOT, file);
    if (rel === 'src/telemetry/setup.ts') continue;
    const text = await readFile(file, 'utf8');
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*['"](@opentelemetry\/[^'"/]+)/g)) {
      if (!ALLOWED_EVERYWHERE.has(m[1]!)) offenders.push(`${rel}: ${m[1]}`);
    }
  }
  t.same(offenders, []);
});
