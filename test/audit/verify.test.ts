/**
 * Tamper detection: an intact log verifies; editing, deleting, reordering or inserting
 * records (in one file or across a rotated set) is each reported at the right line.
 * Also the `tollgate audit verify` handler's output and exit codes.
 */
import t from 'tap';
import { readFile, writeFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createDecisionLog } from '../../src/audit/log.ts';
import { sealRecord } from '../../src/audit/chain.ts';
import { verifyDecisionLog } from '../../src/audit/verify.ts';
import { auditVerify } from '../../src/cli/audit.ts';
import { ROOT, tempDir } from '../helpers/processes.ts';
import { rotatedFiles } from '../../src/audit/file-sink.ts';
import { spawnSync } from 'node:child_process';

/** A log of `n` decisions; line 1 is the genesis, line k+1 is decision d-k. */
async function makeLog(n: number, file: { maxBytes?: number } = {}): Promise<string> {
  const path = join(await tempDir('tollgate-audit-'), 'decisions.log');
  const log = await createDecisionLog({ file: { path, maxFiles: 0, ...file } });
  for (let i = 1; i <= n; i++) {
    log.write({
      decisionId: `d-${i}`,
      path: 'tollgate/authz/decision',
      input: { n: i },
      result: { allowed: i % 3 !== 0 },
      revision: 'rev-1',
      evalNanos: i,
    });
  }
  await log.close();
  return path;
}

async function readLines(path: string): Promise<string[]> {
  return (await readFile(path, 'utf8')).split('\n').filter((l) => l !== '');
}

async function writeLines(path: string, lines: string[]): Promise<void> {
  await writeFile(path, `${lines.join('\n')}\n`);
}

t.test('an intact log verifies', async (t) => {
  const path = await makeLog(10);
  const report = await verifyDecisionLog(path);
  t.ok(report.ok);
  t.equal(report.records, 11);
  t.equal(report.decisions, 10);
  t.same(report.problems, []);
  t.match(report.head, /^[0-9a-f]{64}$/);
});

t.test('an edited record is reported at its line', async (t) => {
  const path = await makeLog(10);
  const lines = await readLines(path);
  lines[4] = lines[4]!.replace('"allowed":true', '"allowed":false');
  await writeLines(path, lines);
  const report = await verifyDecisionLog(path);
  t.notOk(report.ok);
  t.match(report.problems, [{ line: 5, kind: 'edited' }]);
  t.equal(report.problems.length, 1, 'no cascade after the edit');
});

t.test('an edited record with a recomputed hash is caught by the next record', async (t) => {
  const path = await makeLog(10);
  const lines = await readLines(path);
  const { hash: _old, ...record } = JSON.parse(lines[4]!) as Record<string, unknown>;
  (record.result as { allowed: boolean }).allowed = !(record.result as { allowed: boolean }).allowed;
  lines[4] = sealRecord(record).line;
  await writeLines(path, lines);
  const report = await verifyDecisionLog(path);
  t.match(report.problems, [{ line: 6, kind: 'broken-link' }]);
  t.equal(report.problems.length, 1);
});

t.test('a deleted record is reported at the line that now follows the hole', async (t) => {
  const path = await makeLog(10);
  const lines = await readLines(path);
  lines.splice(4, 1);
  await writeLines(path, lines);
  const report = await verifyDecisionLog(path);
  t.match(report.problems, [{ line: 5, kind: 'removed', message: /1 record\(s\) removed/ }]);
  t.equal(report.problems.length, 1);
});

t.test('two deleted records in a row are one problem saying two are missing', async (t) => {
  const path = await makeLog(10);
  const lines = await readLines(path);
  lines.splice(4, 2);
  await writeLines(path, lines);
  t.match((await verifyDecisionLog(path)).problems, [{ line: 5, kind: 'removed', message: /2 record\(s\) removed/ }]);
});

t.test('reordered records are reported at the first line out of place', async (t) => {
  const path = await makeLog(10);
  const lines = await readLines(path);
  [lines[4], lines[5]] = [lines[5]!, lines[4]!];
  await writeLines(path, lines);
  const report = await verifyDecisionLog(path);
  t.match(report.problems[0], { line: 5, kind: 'reordered' });
  t.ok(
    report.problems.every((p) => p.kind === 'reordered' && (p.line === 5 || p.line === 6)),
    JSON.stringify(report.problems),
  );
});

t.test('an inserted copy of an earlier record is reported at its line', async (t) => {
  const path = await makeLog(10);
  const lines = await readLines(path);
  lines.splice(6, 0, lines[2]!);
  await writeLines(path, lines);
  const report = await verifyDecisionLog(path);
  t.match(report.problems, [{ line: 7, kind: 'inserted', message: /already appeared at .*:3/ }]);
  t.equal(report.problems.length, 1, 'the records after it still verify');
});

t.test('an inserted forged record (fresh content, no valid hash) is reported at its line', async (t) => {
  const path = await makeLog(10);
  const lines = await readLines(path);
  lines.splice(
    6,
    0,
    JSON.stringify({ decision_id: 'forged', seq: 6, prev_hash: 'x'.repeat(64), hash: 'y'.repeat(64) }),
  );
  await writeLines(path, lines);
  const report = await verifyDecisionLog(path);
  t.match(report.problems[0], { line: 7, kind: 'edited' });
});

t.test('a truncated line and a removed genesis are reported', async (t) => {
  const path = await makeLog(5);
  const lines = await readLines(path);
  lines[3] = lines[3]!.slice(0, 40);
  lines.shift();
  await writeLines(path, lines);
  const report = await verifyDecisionLog(path);
  t.match(report.problems, [
    { line: 1, kind: 'genesis' },
    { line: 3, kind: 'malformed' },
  ]);
});

t.test("across rotated files: a removed last record of one file breaks the next file's genesis link", async (t) => {
  const path = await makeLog(20, { maxBytes: 1200 });
  t.ok((await verifyDecisionLog(path)).ok, 'the rotated set verifies');
  const first = `${path}.1`;
  const lines = await readLines(first);
  lines.pop();
  await writeLines(first, lines);
  const report = await verifyDecisionLog(path);
  t.match(report.problems, [{ file: `${path}.2`, line: 1, kind: 'file-link' }]);
});

t.test('across rotated files: a removed middle file is reported', async (t) => {
  const path = await makeLog(20, { maxBytes: 1200 });
  await rm(`${path}.2`);
  const report = await verifyDecisionLog(path);
  t.match(report.problems, [{ file: `${path}.3`, line: 1, kind: 'file-link' }]);
});

t.test('a rotated log verifies with the standard library alone (scripts/verify-decision-log.py)', async (t) => {
  const path = join(await tempDir('tollgate-audit-'), 'decisions.log');
  const log = await createDecisionLog({ file: { path, maxBytes: 1500, maxFiles: 0 } });
  for (let i = 1; i <= 12; i++) {
    log.write({
      decisionId: `d-${i}`,
      path: 'tollgate/authz/decision',
      // Member names and text JSON.stringify writes as they are: non-ASCII, escapes, a lone surrogate.
      input: { 'café €': `😀 ${i}`, z: [1.5e300, -0, '\u0007"\\'], lone: '\ud800', n: i },
      result: { allowed: i % 3 !== 0 },
      revision: 'rev-1',
      evalNanos: i,
    });
  }
  await log.close();
  const files = [...(await rotatedFiles(path)).map((r) => r.path), path];
  t.ok(files.length >= 3, `rotated into ${files.length} files`);
  const python = (args: string[]) =>
    spawnSync('python3', [join(ROOT, 'scripts/verify-decision-log.py'), ...args], { encoding: 'utf8' });
  const intact = python(files);
  t.equal(intact.status, 0, intact.stderr);
  t.equal(intact.stdout.trim(), `ok: chain intact; head ${(await verifyDecisionLog(path)).head}`);

  const lines = await readLines(files[1]!);
  lines[2] = lines[2]!.replace('\\ud800', '\\ud801');
  await writeLines(files[1]!, lines);
  const edited = python(files);
  t.equal(edited.status, 1);
  t.equal(edited.stderr.trim(), `${files[1]}:3: the record does not match its hash: it was edited`);
  t.match((await verifyDecisionLog(path)).problems, [{ file: files[1], line: 3, kind: 'edited' }]);
});

t.test('audit verify prints ok and exits 0 for an intact log', async (t) => {
  const path = await makeLog(3);
  let out = '';
  const code = await auditVerify(path, { write: (s: string) => (out += s) });
  t.equal(code, 0);
  t.match(out, /^ok: .*decisions\.log: 4 records \(3 decisions\), chain intact; head [0-9a-f]{64}\n$/);
});

t.test('audit verify names file, line and kind for each problem and exits 2', async (t) => {
  const path = await makeLog(5);
  const lines = await readLines(path);
  lines.splice(2, 1);
  await writeLines(path, lines);
  let out = '';
  const code = await auditVerify(path, { write: (s: string) => (out += s) });
  t.equal(code, 2);
  t.match(out, `${path}:3: removed: seq jumps from 1 to 3`);
  t.match(out, /FAILED: .*: 1 problem\(s\) in 5 records/);
});

t.test('audit verify exits 1 when the log cannot be read', async (t) => {
  let out = '';
  const code = await auditVerify('/nonexistent/decisions.log', { write: (s: string) => (out += s) });
  t.equal(code, 1);
  t.match(out, /cannot read .* \(ENOENT\)/);
});
