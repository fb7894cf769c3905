// bundle.source as a .tar.gz file or a directory: read at start, re-read when it changes,
// a broken replacement rejected while the previous revision keeps enforcing.
import t from 'tap';
import { execFile } from 'node:child_process';
import { copyFile, writeFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { tempDir } from '../helpers/processes.ts';
import { DEFAULT_BUNDLE_FOR_TESTS } from './paths.ts';
import { buildSigned, requestInput, until, startLifecycle } from './fixtures.ts';

const run = promisify(execFile);

function lifecycle(t: { teardown(fn: () => unknown): void }, doc: Record<string, unknown>, rejected: string[] = []) {
  return startLifecycle(t, doc, {
    onReject: (e) => rejected.push(e.reason),
    onSourceError: (e) => rejected.push(e.message),
  });
}

t.test('a .tar.gz source is re-read when the file is replaced; a truncated file is refused', async (t) => {
  const dir = await tempDir('tollgate-filesrc-');
  const file = join(dir, 'bundle.tar.gz');
  await copyFile(await buildSigned({ revision: 'file-1' }), file);
  const rejected: string[] = [];
  const lc = await lifecycle(t, { bundle: { source: file, minDelayMs: 20, maxDelayMs: 20 } }, rejected);
  t.equal((await lc.start()).revision, 'file-1');
  const next = await buildSigned({ revision: 'file-2' });
  await copyFile(next, `${file}.tmp`);
  await run('mv', ['-f', `${file}.tmp`, file]);
  await until(() => lc.pdp.info()?.revision === 'file-2', 5000, 'file-2');
  await writeFile(file, (await import('node:fs')).readFileSync(next).subarray(0, 100));
  await until(() => rejected.some((m) => /truncated/.test(m)), 5000, 'truncated rejected');
  t.equal(lc.pdp.info()?.revision, 'file-2');
  await rm(file);
  await until(() => rejected.some((m) => /ENOENT/.test(m)), 5000, 'missing file reported');
  t.equal((await lc.pdp.decide(requestInput('GET', 'http://api.example/'), 'x')).revision, 'file-2');
});

t.test('a directory source is re-read when a file in it changes', async (t) => {
  const dir = await tempDir('tollgate-dirsrc-');
  await run('tar', ['-xzf', await buildSigned({ revision: 'dir-1' }), '-C', dir]);
  const lc = await lifecycle(t, { bundle: { source: dir, minDelayMs: 20, maxDelayMs: 20 } });
  t.equal((await lc.start()).revision, 'dir-1');
  await writeFile(join(dir, '.manifest'), JSON.stringify({ revision: 'dir-2', roots: [''] }));
  await until(() => lc.pdp.info()?.revision === 'dir-2', 5000, 'dir-2');
  t.equal((await lc.pdp.decide(requestInput('GET', 'http://api.example/'), 'x')).revision, 'dir-2');
});

t.test('without bundle.source the static pdp.bundle (or the seed) is loaded once', async (t) => {
  const lc = await lifecycle(t, {});
  t.match((await lc.start()).revision, /^seed-/);
  t.equal(lc.status().source, DEFAULT_BUNDLE_FOR_TESTS);
});
