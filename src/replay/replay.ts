/**
 * Replay impact analysis: every recorded input of a decision log is evaluated against a
 * candidate bundle and compared with what was recorded. A flip is a change of the
 * effective outcome — allowed vs not allowed, where a policy error counts as a deny
 * (Tollgate fails closed). Flips are grouped by agent (input.agent.id), destination
 * (input.attributes.request.http.host) and rule (the deny reasons: the candidate's for
 * allow→deny, the recorded ones for deny→allow), each group with example decision ids.
 */
import type { Bundle } from '../bundle/load.ts';
import { createWasmEvaluator } from '../pdp/wasm.ts';
import { readDecisionLog, type LogCounters, type RecordedDecision } from './read-log.ts';

/** One side of a replayed decision. */
export interface Outcome {
  readonly allowed: boolean;
  readonly reasons: readonly string[];
  readonly error?: string;
}

/** A decision whose outcome would change. */
export interface Flip {
  readonly decisionId: string;
  readonly timestamp: string;
  readonly line: number;
  readonly direction: 'allow_to_deny' | 'deny_to_allow';
  readonly agent: string;
  readonly destination: string;
  readonly method: string;
  readonly path: string;
  readonly recorded: Outcome;
  readonly candidate: Outcome;
}

/** Flips sharing an agent, a destination or a rule. */
export interface FlipGroup {
  readonly key: string;
  allowToDeny: number;
  denyToAllow: number;
  readonly examples: string[];
}

/** The replay report (`--format json` prints it as is). */
export interface ReplayReport {
  readonly log: string;
  readonly candidate: { readonly source: string; readonly revision: string };
  readonly recordedRevisions: Record<string, number>;
  readonly totals: {
    lines: number;
    replayed: number;
    skippedNoInput: number;
    unreadable: number;
    unchanged: number;
    allowToDeny: number;
    denyToAllow: number;
    flips: number;
    candidateErrors: number;
    recordedErrors: number;
  };
  readonly byAgent: FlipGroup[];
  readonly byDestination: FlipGroup[];
  readonly byRule: FlipGroup[];
  readonly examples: Flip[];
  readonly durationMs: number;
  readonly decisionsPerSecond: number;
}

/** Options of replayDecisionLog. */
export interface ReplayOptions {
  readonly log: string;
  readonly bundle: Bundle;
  readonly decisionPath: string;
  /** Data merged over the candidate's data.json (the sidecar's pdp.data). */
  readonly data?: Readonly<Record<string, unknown>>;
  /** Example flips kept per group and overall. */
  readonly examplesPerGroup?: number;
  readonly maxExamples?: number;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The recorded outcome: boolean result, result.allowed, or an error (fails closed). */
export function recordedOutcome(record: RecordedDecision): Outcome {
  const r = record.result;
  if (typeof r === 'boolean') return { allowed: r, reasons: [] };
  if (isObject(r) && typeof r.allowed === 'boolean') {
    const reasons = Array.isArray(r.reasons) ? r.reasons.filter((x): x is string => typeof x === 'string') : [];
    return { allowed: r.allowed, reasons };
  }
  return { allowed: false, reasons: [], error: record.error ?? 'no usable result recorded' };
}

function group(map: Map<string, FlipGroup>, key: string, flip: Flip, perGroup: number): void {
  let g = map.get(key);
  if (g === undefined) {
    g = { key, allowToDeny: 0, denyToAllow: 0, examples: [] };
    map.set(key, g);
  }
  if (flip.direction === 'allow_to_deny') g.allowToDeny += 1;
  else g.denyToAllow += 1;
  if (g.examples.length < perGroup) g.examples.push(flip.decisionId);
}

const sorted = (map: Map<string, FlipGroup>): FlipGroup[] =>
  [...map.values()].sort(
    (a, b) => b.allowToDeny + b.denyToAllow - (a.allowToDeny + a.denyToAllow) || a.key.localeCompare(b.key),
  );

/** Replays a decision log against a candidate bundle. Throws TG_ERR_BUNDLE_INVALID when the bundle does not load. */
export async function replayDecisionLog(options: ReplayOptions): Promise<ReplayReport> {
  // A generous deadline: replay measures policy outcomes, not latency.
  const evaluator = await createWasmEvaluator({
    bundle: options.bundle,
    decisionPath: options.decisionPath,
    timeoutMs: 60_000,
    ...(options.data === undefined ? {} : { data: options.data }),
  });
  const perGroup = options.examplesPerGroup ?? 3;
  const maxExamples = options.maxExamples ?? 20;
  const counters: LogCounters = { lines: 0, skippedNoInput: 0, unreadable: 0 };
  const totals = {
    lines: 0,
    replayed: 0,
    skippedNoInput: 0,
    unreadable: 0,
    unchanged: 0,
    allowToDeny: 0,
    denyToAllow: 0,
    flips: 0,
    candidateErrors: 0,
    recordedErrors: 0,
  };
  const byAgent = new Map<string, FlipGroup>();
  const byDestination = new Map<string, FlipGroup>();
  const byRule = new Map<string, FlipGroup>();
  const recordedRevisions: Record<string, number> = {};
  const examples: Flip[] = [];
  const started = process.hrtime.bigint();

  for await (const record of readDecisionLog(options.log, counters)) {
    totals.replayed += 1;
    for (const rev of record.revisions) recordedRevisions[rev] = (recordedRevisions[rev] ?? 0) + 1;
    const recorded = recordedOutcome(record);
    if (recorded.error !== undefined) totals.recordedErrors += 1;
    let candidate: Outcome;
    try {
      // A response decision is replayed against its own entrypoint, not the request's.
      const path = record.path !== undefined && record.path !== options.decisionPath ? record.path : undefined;
      const d = evaluator.decideSync(record.input, record.decisionId, path);
      candidate = { allowed: d.allowed, reasons: d.reasons };
    } catch (err) {
      totals.candidateErrors += 1;
      candidate = {
        allowed: false,
        reasons: [],
        error: `${(err as { code?: string }).code ?? 'error'}: ${(err as Error).message}`,
      };
    }
    if (recorded.allowed === candidate.allowed) {
      totals.unchanged += 1;
      continue;
    }
    const http = record.input.attributes?.request?.http;
    const flip: Flip = {
      decisionId: record.decisionId,
      timestamp: record.timestamp,
      line: record.line,
      direction: recorded.allowed ? 'allow_to_deny' : 'deny_to_allow',
      agent: record.input.agent?.id || '(unknown agent)',
      destination: http?.host || '(no host)',
      method: http?.method ?? '',
      path: http?.path ?? '',
      recorded,
      candidate,
    };
    if (flip.direction === 'allow_to_deny') totals.allowToDeny += 1;
    else totals.denyToAllow += 1;
    group(byAgent, flip.agent, flip, perGroup);
    group(byDestination, flip.destination, flip, perGroup);
    const denying = flip.direction === 'allow_to_deny' ? candidate : recorded;
    const rules =
      denying.error !== undefined
        ? [`(policy error) ${denying.error.split(':')[0]}`]
        : denying.reasons.length > 0
          ? denying.reasons
          : ['(no reason given)'];
    for (const rule of new Set(rules)) group(byRule, rule, flip, perGroup);
    if (examples.length < maxExamples) examples.push(flip);
  }
  const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
  totals.lines = counters.lines;
  totals.skippedNoInput = counters.skippedNoInput;
  totals.unreadable = counters.unreadable;
  totals.flips = totals.allowToDeny + totals.denyToAllow;
  return {
    log: options.log,
    candidate: { source: options.bundle.source, revision: options.bundle.manifest.revision },
    recordedRevisions,
    totals,
    byAgent: sorted(byAgent),
    byDestination: sorted(byDestination),
    byRule: sorted(byRule),
    examples,
    durationMs,
    decisionsPerSecond: durationMs === 0 ? 0 : Math.round((totals.replayed / durationMs) * 1000),
  };
}
