/**
 * `tollgate report --log decisions.jsonl [--since T] [--until T] [--bundle B] [--format
 * text|json|html] [--out F]`: the compliance report of a decision log (see
 * src/audit/compliance.ts). Exit status: 0 report written and the chain intact, 2 report
 * written but the hash chain is broken, 1 error (log or bundle unreadable, bad usage).
 */
import { writeFile } from 'node:fs/promises';
import { loadBundle } from '../bundle/load.ts';
import { TollgateError } from '../errors.ts';
import { buildComplianceReport } from '../audit/compliance.ts';
import { formatReportHtml, formatReportJson, formatReportText } from '../audit/compliance-render.ts';
import { parseCommandArgs } from './args.ts';

/** Help text of `tollgate report`. */
export const REPORT_HELP = `Usage: tollgate report --log decisions.jsonl [options]

The compliance report of a decision log: decisions per agent, rule, destination,
policy revision and day; denials (overrides), fail-closed and fail-open decisions;
approval events; the hash-chain check (as "tollgate audit verify"); and, with --bundle,
the policy's deny rules that never fired.

  -l, --log F        decision log (JSON Lines, as decisionLog.file writes it)
      --since T      only decisions at or after T (ISO 8601, e.g. 2026-11-01 or 2026-11-01T00:00:00Z)
      --until T      only decisions before T
  -b, --bundle F     the policy bundle (.tar.gz or directory) whose rules are listed
  -f, --format F     text (default), json, or html (one self-contained page with charts)
  -o, --out F        write the report to F instead of standard output
Exit status: 0 ok, 2 the hash chain is broken, 1 error.
`;

/** Parsed options of `tollgate report`. */
export interface ReportCommandOptions {
  readonly log: string;
  readonly since?: Date;
  readonly until?: Date;
  readonly bundle?: string;
  readonly format: 'text' | 'json' | 'html';
  readonly outFile?: string;
}

function instant(flag: string, value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const at = Date.parse(value);
  if (Number.isNaN(at))
    throw new TollgateError(
      'TG_ERR_INPUT_INVALID',
      `report: ${flag} must be an ISO 8601 date or time (e.g. 2026-11-01T00:00:00Z), not "${value}"`,
    );
  return new Date(at);
}

/** Parses `tollgate report` arguments; throws TG_ERR_INPUT_INVALID on bad usage. */
export function parseReportArgs(args: readonly string[]): ReportCommandOptions {
  const { values } = parseCommandArgs('report', {
    args: [...args],
    options: {
      log: { type: 'string', short: 'l' },
      since: { type: 'string' },
      until: { type: 'string' },
      bundle: { type: 'string', short: 'b' },
      format: { type: 'string', short: 'f', default: 'text' },
      out: { type: 'string', short: 'o' },
    },
  });
  if (values.log === undefined) throw new TollgateError('TG_ERR_INPUT_INVALID', 'report needs --log <decisions.jsonl>');
  const format = values.format;
  if (format !== 'text' && format !== 'json' && format !== 'html')
    throw new TollgateError('TG_ERR_INPUT_INVALID', `report: --format must be text, json or html, not "${format}"`);
  const since = instant('--since', values.since);
  const until = instant('--until', values.until);
  if (since !== undefined && until !== undefined && since >= until)
    throw new TollgateError('TG_ERR_INPUT_INVALID', 'report: --since must be before --until');
  return {
    log: values.log,
    format,
    ...(since === undefined ? {} : { since }),
    ...(until === undefined ? {} : { until }),
    ...(values.bundle === undefined ? {} : { bundle: values.bundle }),
    ...(values.out === undefined ? {} : { outFile: values.out }),
  };
}

/** Builds and writes the report; resolves to the exit code. */
export async function runReport(
  options: ReportCommandOptions & { readonly out: (text: string) => void; readonly err: (text: string) => void },
): Promise<number> {
  try {
    const bundle = options.bundle === undefined ? undefined : await loadBundle(options.bundle);
    const report = await buildComplianceReport({
      log: options.log,
      ...(options.since === undefined ? {} : { since: options.since }),
      ...(options.until === undefined ? {} : { until: options.until }),
      ...(bundle === undefined ? {} : { bundle }),
    });
    const text =
      options.format === 'json'
        ? formatReportJson(report)
        : options.format === 'html'
          ? formatReportHtml(report)
          : formatReportText(report);
    if (options.outFile === undefined) options.out(text);
    else await writeFile(options.outFile, text);
    if (!report.integrity.ok) options.err(`tollgate report: the hash chain of ${options.log} is broken\n`);
    return report.integrity.ok ? 0 : 2;
  } catch (err) {
    options.err(`tollgate: ${err instanceof TollgateError ? `${err.code}: ` : ''}${(err as Error).message}\n`);
    return 1;
  }
}
