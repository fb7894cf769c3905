/**
 * Reads a Tollgate decision log (JSON Lines of OPA decision-log records: decision_id,
 * timestamp, path, input, result, bundles{name: {revision}}, metrics, plus the hash
 * chain's prev_hash/hash) one record at a time. Records without `input` (the chain's
 * genesis record, data-change entries) are skipped and counted; lines that are not
 * JSON objects are counted as unreadable, never fatal.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { TollgateError } from '../errors.ts';
import type { PolicyInput } from '../input/build.ts';
import { parseJson } from '../input/exact-json.ts';

/** A recorded decision, as replay needs it. */
export interface RecordedDecision {
  readonly line: number;
  readonly decisionId: string;
  readonly timestamp: string;
  readonly input: PolicyInput;
  /** The decision path's value as recorded; undefined when the record carries an error instead. */
  readonly result: unknown;
  /** The recorded error (evaluation failed; the request failed closed unless a failure mode allowed it). */
  readonly error?: string;
  /** Revisions of the bundles that decided (bundles.<name>.revision). */
  readonly revisions: readonly string[];
  /** The decision path recorded (a response decision's is not the request's). */
  readonly path?: string;
  /** The failure mode applied when no decision was made (error.failureMode). */
  readonly failureMode?: 'allow' | 'deny';
}

/** Counters of what was not replayed. */
export interface LogCounters {
  lines: number;
  skippedNoInput: number;
  unreadable: number;
}

function failureModeOf(error: unknown): 'allow' | 'deny' | undefined {
  const mode =
    typeof error === 'object' && error !== null ? (error as { failureMode?: unknown }).failureMode : undefined;
  return mode === 'allow' || mode === 'deny' ? mode : undefined;
}

/**
 * Iterates the replayable records of a decision log; `counters` fills in as it goes.
 * `others` sees every record without input (genesis, gap, data-change, approval events).
 */
export async function* readDecisionLog(
  path: string,
  counters: LogCounters,
  others?: (record: Readonly<Record<string, unknown>>, line: number) => void,
): AsyncGenerator<RecordedDecision> {
  const stream = createReadStream(path, { encoding: 'utf8' });
  const opened = new Promise<void>((resolve, reject) => {
    stream.once('open', () => resolve());
    stream.once('error', (cause) =>
      reject(
        new TollgateError(
          'TG_ERR_INPUT_INVALID',
          `${path}: cannot read the decision log (${(cause as NodeJS.ErrnoException).code ?? cause.message})`,
          { cause },
        ),
      ),
    );
  });
  await opened;
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  for await (const text of lines) {
    counters.lines += 1;
    if (text.trim() === '') continue;
    let record: Record<string, unknown>;
    try {
      const parsed = parseJson(text);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
      record = parsed as Record<string, unknown>;
    } catch {
      counters.unreadable += 1;
      continue;
    }
    const input = record.input;
    if (typeof input !== 'object' || input === null || Array.isArray(input)) {
      counters.skippedNoInput += 1;
      others?.(record, counters.lines);
      continue;
    }
    const bundles = record.bundles;
    const revisions =
      typeof bundles === 'object' && bundles !== null
        ? Object.values(bundles as Record<string, { revision?: unknown }>)
            .map((b) => b?.revision)
            .filter((r): r is string => typeof r === 'string')
        : [];
    const failureMode = failureModeOf(record.error);
    const error =
      record.error === undefined
        ? undefined
        : typeof record.error === 'string'
          ? record.error
          : JSON.stringify(record.error);
    yield {
      line: counters.lines,
      decisionId: typeof record.decision_id === 'string' ? record.decision_id : `line-${counters.lines}`,
      timestamp: typeof record.timestamp === 'string' ? record.timestamp : '',
      input: input as PolicyInput,
      result: record.result,
      ...(error === undefined ? {} : { error }),
      revisions,
      ...(typeof record.path === 'string' && record.path !== '' ? { path: record.path } : {}),
      ...(failureMode === undefined ? {} : { failureMode }),
    };
  }
}
