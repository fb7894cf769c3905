/**
 * Renders a replay report for people (text) or CI (JSON: the ReplayReport object,
 * stable keys in snake_case at the top level for jq).
 */
import type { FlipGroup, ReplayReport } from './replay.ts';

function table(title: string, groups: readonly FlipGroup[], limit: number): string[] {
  if (groups.length === 0) return [];
  const lines = [`${title}:`];
  const width = Math.min(48, Math.max(...groups.slice(0, limit).map((g) => g.key.length)));
  for (const g of groups.slice(0, limit)) {
    lines.push(
      `  ${g.key.padEnd(width)}  allow→deny ${String(g.allowToDeny).padStart(5)}  deny→allow ${String(g.denyToAllow).padStart(5)}  e.g. ${g.examples.join(', ')}`,
    );
  }
  if (groups.length > limit) lines.push(`  … ${groups.length - limit} more`);
  return lines;
}

/** The human-readable report. */
export function formatText(report: ReplayReport, maxFlips: number | undefined): string {
  const t = report.totals;
  const revs =
    Object.entries(report.recordedRevisions)
      .map(([r, n]) => `${r} (${n})`)
      .join(', ') || 'unknown';
  const lines = [
    `replay of ${report.log} against ${report.candidate.source} (revision ${report.candidate.revision || '(none)'})`,
    `recorded decisions by revision: ${revs}`,
    `replayed ${t.replayed} decisions in ${report.durationMs.toFixed(0)} ms (${report.decisionsPerSecond} decisions/s); skipped ${t.skippedNoInput} records without input, ${t.unreadable} unreadable lines`,
    `unchanged ${t.unchanged}   allow→deny ${t.allowToDeny}   deny→allow ${t.denyToAllow}   candidate errors ${t.candidateErrors}`,
  ];
  if (t.flips > 0) {
    lines.push(
      '',
      ...table('by agent', report.byAgent, 10),
      '',
      ...table('by destination', report.byDestination, 10),
      '',
      ...table('by rule', report.byRule, 10),
      '',
      'examples:',
    );
    for (const f of report.examples.slice(0, 10)) {
      const cand =
        f.candidate.error ?? (f.candidate.reasons.join('; ') || (f.candidate.allowed ? 'allowed' : 'denied'));
      const rec = f.recorded.error ?? (f.recorded.reasons.join('; ') || (f.recorded.allowed ? 'allowed' : 'denied'));
      lines.push(
        `  ${f.direction === 'allow_to_deny' ? 'allow→deny' : 'deny→allow'}  ${f.decisionId}  ${f.agent}  ${f.method} ${f.destination}${f.path}`,
      );
      lines.push(`      recorded: ${rec}`);
      lines.push(`      candidate: ${cand}`);
    }
  }
  if (maxFlips !== undefined)
    lines.push(
      '',
      t.flips > maxFlips
        ? `FAIL: ${t.flips} flips exceed --max-flips ${maxFlips}`
        : `ok: ${t.flips} flips within --max-flips ${maxFlips}`,
    );
  return `${lines.join('\n')}\n`;
}

/** The machine-readable report. */
export function formatJson(report: ReplayReport, maxFlips: number | undefined): string {
  return `${JSON.stringify({ ...report, max_flips: maxFlips ?? null, passed: maxFlips === undefined || report.totals.flips <= maxFlips }, null, 2)}\n`;
}
