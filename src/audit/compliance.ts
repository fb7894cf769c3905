/**
 * The compliance report of a decision log: what was decided per agent, rule, destination,
 * policy revision and day; denials (the policy overriding an agent), fail-closed and
 * fail-open decisions; approval events; the chain-integrity verdict (the same check as
 * `tollgate audit verify`); and, given the bundle, the deny rules that never fired.
 *
 * An override is a decision that refused what the agent asked: a policy denial. Decisions
 * the PDP could not make are counted apart (failed closed, or forwarded under a fail-open
 * failure mode), since no rule overrode the agent there.
 */
import { readDecisionLog, type LogCounters } from '../replay/read-log.ts';
import { recordedOutcome } from '../replay/replay.ts';
import type { Bundle } from '../bundle/load.ts';
import { verifyDecisionLog, type VerifyReport } from './verify.ts';
import { createRuleMatcher, extractDenyRules, type PolicyRule } from './policy-rules.ts';

/** Decisions of one group (an agent, a destination, a revision, a day). */
export interface DecisionCounts {
  readonly key: string;
  decisions: number;
  allowed: number;
  denied: number;
  /** No decision; the request failed closed. */
  failedClosed: number;
  /** No decision; the request was forwarded under failure mode allow. */
  failedOpen: number;
}

/** A rule (or an unmatched reason) and the denials it caused. */
export interface RuleCount {
  /** The rule id ("policies/refunds.rego:60"), or the reason with numbers as # when no rule matched. */
  readonly rule: string;
  readonly template?: string;
  denials: number;
  readonly agents: string[];
  readonly examples: string[];
}

/** An approval event found in the log. */
export interface ApprovalEvent {
  readonly line: number;
  readonly timestamp: string;
  readonly event: string;
  readonly id: string;
  readonly agent: string;
  readonly approver: string;
}

/** The report (`--format json` prints it). */
export interface ComplianceReport {
  readonly log: string;
  readonly generatedAt: string;
  readonly window: { readonly since: string | null; readonly until: string | null };
  readonly firstDecision: string | null;
  readonly lastDecision: string | null;
  readonly totals: {
    decisions: number;
    allowed: number;
    denied: number;
    failedClosed: number;
    failedOpen: number;
    /** denied ÷ decisions. */
    overrideRatio: number;
    outsideWindow: number;
    unreadableLines: number;
  };
  readonly byAgent: DecisionCounts[];
  readonly byDestination: DecisionCounts[];
  readonly byRevision: DecisionCounts[];
  readonly byDay: DecisionCounts[];
  readonly byRule: RuleCount[];
  readonly approvals: {
    readonly present: boolean;
    readonly byEvent: Record<string, number>;
    readonly events: ApprovalEvent[];
  };
  readonly integrity: {
    readonly ok: boolean;
    readonly records: number;
    readonly problems: VerifyReport['problems'];
    readonly gaps: VerifyReport['gaps'];
    readonly head: string | null;
    readonly files: readonly string[];
  };
  /** The bundle's deny rules with no denial in the window; null without --bundle. */
  readonly rules: {
    readonly bundle: string;
    readonly revision: string;
    readonly total: number;
    readonly neverFired: PolicyRule[];
  } | null;
}

/** Options of buildComplianceReport. */
export interface ComplianceOptions {
  readonly log: string;
  /** Decisions at or after this instant (inclusive). */
  readonly since?: Date;
  /** Decisions before this instant (exclusive). */
  readonly until?: Date;
  /** The policy bundle whose rules are listed (rules that never fired). */
  readonly bundle?: Bundle;
  /** Example decision ids kept per rule. */
  readonly examplesPerRule?: number;
  /** Approval events listed (all are counted). */
  readonly maxApprovalEvents?: number;
  readonly now?: () => Date;
}

function counts(map: Map<string, DecisionCounts>, key: string): DecisionCounts {
  let c = map.get(key);
  if (c === undefined) {
    c = { key, decisions: 0, allowed: 0, denied: 0, failedClosed: 0, failedOpen: 0 };
    map.set(key, c);
  }
  return c;
}

const byVolume = (map: Map<string, DecisionCounts>): DecisionCounts[] =>
  [...map.values()].sort((a, b) => b.decisions - a.decisions || a.key.localeCompare(b.key));

const str = (v: unknown): string => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '');

/** An approval event of the log, or undefined: records typed approval* or carrying an `approval` object. */
function approvalEvent(record: Readonly<Record<string, unknown>>, line: number): ApprovalEvent | undefined {
  const type = str(record.type);
  const approval = record.approval;
  const nested = typeof approval === 'object' && approval !== null ? (approval as Record<string, unknown>) : undefined;
  if (!type.startsWith('approval') && nested === undefined) return undefined;
  const pick = (...keys: string[]): string => {
    for (const k of keys) {
      const v = str(nested?.[k]) || str(record[k]);
      if (v !== '') return v;
    }
    return '';
  };
  return {
    line,
    timestamp: str(record.timestamp),
    event: pick('event', 'outcome', 'state', 'status') || type.replace(/^approval[._-]?/, '') || 'recorded',
    id: pick('id', 'approval_id'),
    agent: pick('agent', 'agent_id'),
    approver: pick('approver', 'decided_by'),
  };
}

/** A reason as a rule key when no policy rule matches it: numbers replaced (amounts differ per call). */
function reasonKey(reason: string): string {
  return reason.replace(/-?\d+(?:\.\d+)?/g, '#');
}

/** Reads the log once (and verifies its chain) and builds the report. */
export async function buildComplianceReport(options: ComplianceOptions): Promise<ComplianceReport> {
  const since = options.since?.getTime() ?? -Infinity;
  const until = options.until?.getTime() ?? Infinity;
  const perRule = options.examplesPerRule ?? 3;
  const maxEvents = options.maxApprovalEvents ?? 200;
  const rules = options.bundle === undefined ? undefined : bundleRules(options.bundle);
  const matcher = createRuleMatcher(rules ?? []);
  const inWindow = (timestamp: string): boolean => {
    const at = Date.parse(timestamp);
    // A record without a readable timestamp is kept only when no window is asked for.
    if (Number.isNaN(at)) return options.since === undefined && options.until === undefined;
    return at >= since && at < until;
  };

  const agents = new Map<string, DecisionCounts>();
  const destinations = new Map<string, DecisionCounts>();
  const revisions = new Map<string, DecisionCounts>();
  const days = new Map<string, DecisionCounts>();
  const ruleCounts = new Map<string, RuleCount & { agentSet: Set<string> }>();
  const totals = {
    decisions: 0,
    allowed: 0,
    denied: 0,
    failedClosed: 0,
    failedOpen: 0,
    overrideRatio: 0,
    outsideWindow: 0,
    unreadableLines: 0,
  };
  const byEvent: Record<string, number> = {};
  const events: ApprovalEvent[] = [];
  let approvalsPresent = false;
  let first: string | null = null;
  let last: string | null = null;
  const counters: LogCounters = { lines: 0, skippedNoInput: 0, unreadable: 0 };
  const onOther = (record: Readonly<Record<string, unknown>>, line: number): void => {
    const event = approvalEvent(record, line);
    if (event === undefined) return;
    approvalsPresent = true;
    if (event.timestamp !== '' && !inWindow(event.timestamp)) return;
    byEvent[event.event] = (byEvent[event.event] ?? 0) + 1;
    if (events.length < maxEvents) events.push(event);
  };

  for await (const record of readDecisionLog(options.log, counters, onOther)) {
    if (!inWindow(record.timestamp)) {
      totals.outsideWindow += 1;
      continue;
    }
    if (first === null || record.timestamp < first) first = record.timestamp;
    if (last === null || record.timestamp > last) last = record.timestamp;
    const outcome = recordedOutcome(record);
    const kind: 'allowed' | 'denied' | 'failedClosed' | 'failedOpen' =
      outcome.error === undefined
        ? outcome.allowed
          ? 'allowed'
          : 'denied'
        : record.failureMode === 'allow'
          ? 'failedOpen'
          : 'failedClosed';
    const http = record.input.attributes?.request?.http;
    const agent = record.input.agent?.id || '(unknown agent)';
    const keys: [Map<string, DecisionCounts>, string][] = [
      [agents, agent],
      [destinations, http?.host || '(no host)'],
      [revisions, record.revisions[0] || '(none)'],
      [days, /^\d{4}-\d{2}-\d{2}/.exec(record.timestamp)?.[0] ?? '(no date)'],
    ];
    totals.decisions += 1;
    totals[kind] += 1;
    for (const [map, key] of keys) {
      const c = counts(map, key);
      c.decisions += 1;
      c[kind] += 1;
    }
    if (kind !== 'denied') continue;
    const reasons = outcome.reasons.length > 0 ? outcome.reasons : ['(no reason given)'];
    for (const reason of new Set(reasons)) {
      const rule = matcher.match(reason);
      const key = rule?.id ?? reasonKey(reason);
      let rc = ruleCounts.get(key);
      if (rc === undefined) {
        rc = {
          rule: key,
          ...(rule?.template === undefined ? {} : { template: rule.template }),
          denials: 0,
          agents: [],
          examples: [],
          agentSet: new Set(),
        };
        ruleCounts.set(key, rc);
      }
      rc.denials += 1;
      rc.agentSet.add(agent);
      if (rc.examples.length < perRule) rc.examples.push(record.decisionId);
    }
  }
  totals.unreadableLines = counters.unreadable;
  totals.overrideRatio = totals.decisions === 0 ? 0 : totals.denied / totals.decisions;

  const verify = await verifyDecisionLog(options.log);
  const fired = new Set(ruleCounts.keys());
  return {
    log: options.log,
    generatedAt: (options.now?.() ?? new Date()).toISOString(),
    window: { since: options.since?.toISOString() ?? null, until: options.until?.toISOString() ?? null },
    firstDecision: first,
    lastDecision: last,
    totals,
    byAgent: byVolume(agents),
    byDestination: byVolume(destinations),
    byRevision: byVolume(revisions),
    byDay: [...days.values()].sort((a, b) => a.key.localeCompare(b.key)),
    byRule: [...ruleCounts.values()]
      .map(({ agentSet, ...rc }) => ({ ...rc, agents: [...agentSet].sort() }))
      .sort((a, b) => b.denials - a.denials || a.rule.localeCompare(b.rule)),
    approvals: { present: approvalsPresent, byEvent, events },
    integrity: {
      ok: verify.ok,
      records: verify.records,
      problems: verify.problems,
      gaps: verify.gaps,
      head: verify.head ?? null,
      files: verify.files,
    },
    rules:
      rules === undefined
        ? null
        : {
            bundle: options.bundle!.source,
            revision: options.bundle!.manifest.revision,
            total: rules.length,
            neverFired: rules.filter((r) => !fired.has(r.id)),
          },
  };
}

/** The deny rules of a bundle's Rego sources. */
export function bundleRules(bundle: Bundle): PolicyRule[] {
  const sources = new Map<string, string>();
  for (const [path, bytes] of bundle.files ?? []) if (path.endsWith('.rego')) sources.set(path, bytes.toString('utf8'));
  return extractDenyRules(sources);
}
