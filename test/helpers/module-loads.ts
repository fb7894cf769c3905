/**
 * Which modules a child process loads: a `--import` hook that records the URL of every module
 * it loads (ESM and require) and writes them, one per line, to $LOADED_FILE at exit.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Writes the hook into `dir`; returns the environment a child needs for it and a reader of its list. */
export async function moduleLoadRecorder(
  dir: string,
  name = 'loaded',
): Promise<{ env: Record<string, string>; loaded: () => Promise<string[]> }> {
  const hook = join(dir, 'record-loads.mjs');
  const file = join(dir, `${name}.txt`);
  await writeFile(
    hook,
    `import { registerHooks } from 'node:module';
import { writeFileSync } from 'node:fs';
const urls = [];
registerHooks({ load(url, context, next) { urls.push(url); return next(url, context); } });
process.on('exit', () => writeFileSync(process.env.LOADED_FILE, urls.join('\\n')));
`,
  );
  return {
    env: { NODE_OPTIONS: `--import=${hook}`, LOADED_FILE: file },
    loaded: async () => (await readFile(file, 'utf8')).split('\n'),
  };
}
