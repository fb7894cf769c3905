/**
 * `tollgate audit verify <file>`: checks a decision log's hash chain (and its rotated
 * predecessors) and prints where it breaks. Exit status: 0 intact, 2 tampered or
 * damaged, 1 the log could not be read.
 */
import { verifyDecisionLog } from '../audit/verify.ts';

/** Where the report goes (process.stdout). */
export interface Output {
  write(text: string): unknown;
}

/** Verifies the log at `path`, prints a report to `out`, returns the exit code. */
export async function auditVerify(path: string, out: Output): Promise<number> {
  let report;
  try {
    report = await verifyDecisionLog(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    out.write(`tollgate audit verify: cannot read ${path}${code !== undefined ? ` (${code})` : ''}\n`);
    return 1;
  }
  for (const note of report.notes) out.write(`note: ${note}\n`);
  for (const gap of report.gaps)
    out.write(
      `gap: ${gap.file}:${gap.line}: ${gap.dropped} decision(s) dropped under back-pressure (recorded in the chain)\n`,
    );
  for (const p of report.problems) out.write(`${p.file}:${p.line}: ${p.kind}: ${p.message}\n`);
  const files = report.files.length === 1 ? report.files[0] : `${report.files.length} files`;
  if (report.ok) {
    out.write(
      `ok: ${files}: ${report.records} records (${report.decisions} decisions), chain intact; head ${report.head ?? '(empty)'}\n`,
    );
    return 0;
  }
  out.write(`FAILED: ${files}: ${report.problems.length} problem(s) in ${report.records} records\n`);
  return 2;
}
