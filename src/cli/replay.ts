/**
 * `tollgate replay --log decisions.jsonl --bundle candidate.tar.gz [--format text|json]
 * [--max-flips N] [--decision-path P]`: what a candidate policy would have decided on
 * recorded traffic. Exit status: 0 report printed (flips within --max-flips, or no
 * threshold), 2 flips exceed --max-flips, 1 error (log or bundle unreadable).
 */
import { loadBundle } from '../bundle/load.ts';
import { TollgateError } from '../errors.ts';
import { replayDecisionLog } from '../replay/replay.ts';
import { formatJson, formatText } from '../replay/report.ts';
import { parseCommandArgs } from './args.ts';

/** Help text of `tollgate replay`. */
export const REPLAY_HELP = `Usage: tollgate replay --log decisions.jsonl --bundle candidate.tar.gz [options]

Evaluates every recorded input of a decision log against a candidate bundle and reports
the decisions that would flip (allow→deny, deny→allow) by agent, destination and rule.

  -l, --log F            decision log (JSON Lines, OPA decision-log records)
  -b, --bundle F         candidate bundle (.tar.gz or directory from opa build -t wasm)
  -f, --format F         text (default) or json
      --max-flips N      exit 2 when more than N decisions flip (a CI gate)
      --decision-path P  entrypoint to evaluate (default tollgate/authz/decision)
Exit status: 0 ok, 2 flips over --max-flips, 1 error.
`;

/** Parsed options of `tollgate replay`. */
export interface ReplayCommandOptions {
  readonly log: string;
  readonly bundle: string;
  readonly format: 'text' | 'json';
  readonly maxFlips?: number;
  readonly decisionPath: string;
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

/** Parses `tollgate replay` arguments; throws TG_ERR_INPUT_INVALID on bad usage. */
export function parseReplayArgs(args: readonly string[]): Omit<ReplayCommandOptions, 'out' | 'err'> {
  const { values } = parseCommandArgs('replay', {
    args: [...args],
    options: {
      log: { type: 'string', short: 'l' },
      bundle: { type: 'string', short: 'b' },
      format: { type: 'string', short: 'f', default: 'text' },
      'max-flips': { type: 'string' },
      'decision-path': { type: 'string', default: 'tollgate/authz/decision' },
    },
  });
  if (values.log === undefined || values.bundle === undefined)
    throw new TollgateError(
      'TG_ERR_INPUT_INVALID',
      'replay needs --log <decisions.jsonl> and --bundle <candidate.tar.gz>',
    );
  if (values.format !== 'text' && values.format !== 'json')
    throw new TollgateError('TG_ERR_INPUT_INVALID', `replay: --format must be text or json, not "${values.format}"`);
  let maxFlips: number | undefined;
  if (values['max-flips'] !== undefined) {
    maxFlips = Number(values['max-flips']);
    if (!Number.isInteger(maxFlips) || maxFlips < 0)
      throw new TollgateError(
        'TG_ERR_INPUT_INVALID',
        `replay: --max-flips must be a non-negative integer, not "${values['max-flips']}"`,
      );
  }
  return {
    log: values.log,
    bundle: values.bundle,
    format: values.format,
    decisionPath: values['decision-path'] ?? 'tollgate/authz/decision',
    ...(maxFlips === undefined ? {} : { maxFlips }),
  };
}

/** Runs the replay and prints the report; resolves to the exit code. */
export async function runReplay(options: ReplayCommandOptions): Promise<number> {
  try {
    const bundle = await loadBundle(options.bundle);
    const report = await replayDecisionLog({ log: options.log, bundle, decisionPath: options.decisionPath });
    options.out(
      options.format === 'json' ? formatJson(report, options.maxFlips) : formatText(report, options.maxFlips),
    );
    return options.maxFlips !== undefined && report.totals.flips > options.maxFlips ? 2 : 0;
  } catch (err) {
    options.err(`tollgate: ${err instanceof TollgateError ? `${err.code}: ` : ''}${(err as Error).message}\n`);
    return 1;
  }
}

// Standalone use until `tollgate replay` is wired into main.ts: node src/cli/replay.ts --log ... --bundle ...
if (import.meta.main) {
  const io = { out: (s: string) => process.stdout.write(s), err: (s: string) => process.stderr.write(s) };
  try {
    process.exitCode = await runReplay({ ...parseReplayArgs(process.argv.slice(2)), ...io });
  } catch (err) {
    io.err(`tollgate: ${(err as Error).message}\n${REPLAY_HELP}`);
    process.exitCode = 1;
  }
}
