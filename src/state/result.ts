/**
 * The state part of the result contract: besides opa-envoy-plugin's fields, an allowed
 * result may name what the call consumes and whether a human must approve it:
 *
 *   budgets:  [{key, cost, limit, window, name?, refund_on?}]   rolling-window budget
 *   rates:    [{key, rate, burst?, name?}]                       token bucket, rate per second
 *   approval: {required, reasons?, approvers?, ttl?, uses?}      human in the loop
 *
 * Anything that does not fit throws TG_ERR_POLICY_RESULT (the request fails closed, as
 * for any other malformed result). A result without these fields costs nothing here.
 */
import { TollgateError } from '../errors.ts';

/** Upstream outcomes a budget charge can be refunded on. */
export const REFUND_OUTCOMES = ['upstream_error', 'upstream_5xx', 'upstream_4xx'] as const;
/** One of REFUND_OUTCOMES. */
export type RefundOutcome = (typeof REFUND_OUTCOMES)[number];

/** A budget the policy charges. */
export interface BudgetRequest {
  readonly key: string;
  /** Low-cardinality name for metrics (default: the key). */
  readonly name: string;
  readonly cost: number;
  readonly limit: number;
  readonly windowMs: number;
  readonly refundOn: readonly RefundOutcome[];
}

/** A rate the policy applies. */
export interface RateRequest {
  readonly key: string;
  readonly name: string;
  /** Tokens per second. */
  readonly rate: number;
  readonly burst: number;
}

/** A human approval the policy requires. */
export interface ApprovalRequirement {
  readonly reasons: readonly string[];
  readonly approvers: readonly string[];
  readonly ttlMs: number;
  readonly uses: number;
}

/** What an allowed result asks of the state step. */
export interface StateRequests {
  readonly budgets: readonly BudgetRequest[];
  readonly rates: readonly RateRequest[];
  readonly approval?: ApprovalRequirement;
}

/** Longest key accepted (a key is part of a Redis key and a metric label). */
export const MAX_KEY_LENGTH = 256;
/** Default approval ttl (pending validity, and validity once answered). */
export const DEFAULT_APPROVAL_TTL_MS = 3600_000;

function invalid(message: string): TollgateError {
  return new TollgateError('TG_ERR_POLICY_RESULT', message);
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A duration as Go/OPA write it ("24h", "1h30m", "90s", "500ms", "1d") or a number of seconds; throws on anything else. */
export function parseDuration(value: unknown, field: string): number {
  if (typeof value === 'number' && Number.isFinite(value) && value > 0) return Math.round(value * 1000);
  if (typeof value === 'string' && /^(\d+(\.\d+)?(ms|s|m|h|d))+$/.test(value)) {
    let ms = 0;
    for (const m of value.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) ms += Number(m[1]) * UNITS[m[2]!]!;
    if (ms > 0) return Math.round(ms);
  }
  throw invalid(
    `expected ${field} to be a positive duration such as "24h" or a number of seconds, got ${JSON.stringify(value)}`,
  );
}

function key(item: Record<string, unknown>, field: string): string {
  const k = item.key;
  if (typeof k !== 'string' || k === '') throw invalid(`expected ${field}.key to be a non-empty string`);
  if (k.length > MAX_KEY_LENGTH) throw invalid(`${field}.key is longer than ${MAX_KEY_LENGTH} characters`);
  return k;
}

function name(item: Record<string, unknown>, field: string, fallback: string): string {
  if (item.name === undefined) return fallback;
  if (typeof item.name !== 'string' || item.name === '')
    throw invalid(`expected ${field}.name to be a non-empty string`);
  return item.name;
}

function positive(item: Record<string, unknown>, prop: string, field: string, zero = false): number {
  const v = item[prop];
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (!zero && v === 0))
    throw invalid(
      `expected ${field}.${prop} to be a ${zero ? 'non-negative' : 'positive'} number, got ${JSON.stringify(v)}`,
    );
  return v;
}

function strings(value: unknown, field: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.some((s) => typeof s !== 'string'))
    throw invalid(`expected ${field} to be an array of strings`);
  return value as string[];
}

function list(result: Record<string, unknown>, field: string): Record<string, unknown>[] {
  const value = result[field];
  if (value === undefined) return [];
  // A Rego set of objects arrives as an array too; one object is accepted as a list of one.
  const items = Array.isArray(value) ? value : [value];
  return items.map((item, i) => {
    if (!isObject(item)) throw invalid(`expected ${field}[${i}] to be an object`);
    return item;
  });
}

/** The state requests of a result, or undefined when it names none (boolean results included). */
export function stateRequestsFrom(result: unknown): StateRequests | undefined {
  if (!isObject(result)) return undefined;
  if (result.budgets === undefined && result.rates === undefined && result.approval === undefined) return undefined;
  const budgets = list(result, 'budgets').map((item, i): BudgetRequest => {
    const field = `budgets[${i}]`;
    const k = key(item, field);
    const refundOn = strings(item.refund_on, `${field}.refund_on`);
    for (const r of refundOn)
      if (!(REFUND_OUTCOMES as readonly string[]).includes(r))
        throw invalid(`${field}.refund_on: unknown outcome "${r}" (expected ${REFUND_OUTCOMES.join(', ')})`);
    return {
      key: k,
      name: name(item, field, k),
      cost: positive(item, 'cost', field, true),
      limit: positive(item, 'limit', field, true),
      windowMs: parseDuration(item.window, `${field}.window`),
      refundOn: refundOn as RefundOutcome[],
    };
  });
  const rates = list(result, 'rates').map((item, i): RateRequest => {
    const field = `rates[${i}]`;
    const k = key(item, field);
    const rate = positive(item, 'rate', field);
    const burst = item.burst === undefined ? Math.max(1, Math.ceil(rate)) : positive(item, 'burst', field);
    if (burst < 1) throw invalid(`expected ${field}.burst to be at least 1`);
    return { key: k, name: name(item, field, k), rate, burst };
  });
  let approval: ApprovalRequirement | undefined;
  if (result.approval !== undefined) {
    const a = result.approval;
    if (!isObject(a)) throw invalid('expected approval to be an object');
    if (a.required !== undefined && typeof a.required !== 'boolean')
      throw invalid('expected approval.required to be a boolean');
    if (a.required === true) {
      const uses = a.uses === undefined ? 1 : a.uses;
      if (typeof uses !== 'number' || !Number.isInteger(uses) || uses < 1)
        throw invalid(`expected approval.uses to be a positive integer, got ${JSON.stringify(uses)}`);
      approval = {
        reasons: strings(a.reasons, 'approval.reasons'),
        approvers: strings(a.approvers, 'approval.approvers'),
        ttlMs: a.ttl === undefined ? DEFAULT_APPROVAL_TTL_MS : parseDuration(a.ttl, 'approval.ttl'),
        uses,
      };
    }
  }
  if (budgets.length === 0 && rates.length === 0 && approval === undefined) return undefined;
  return { budgets, rates, ...(approval === undefined ? {} : { approval }) };
}
