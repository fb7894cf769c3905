/**
 * Prometheus metrics of budgets, rates, approvals and the store, registered on the
 * sidecar's registry (the admin /metrics endpoint):
 *   tollgate_budget_consumed_total{budget}        cost units charged (refunds subtract nothing: see _refunded)
 *   tollgate_budget_refunded_total{budget}        cost units given back after a failed upstream call
 *   tollgate_budget_exhausted_total{budget}       calls denied because the budget had no room
 *   tollgate_rate_limited_total{rate}             calls denied because the bucket was empty
 *   tollgate_approvals_pending                    open approvals in the store (read at scrape)
 *   tollgate_approvals_requested_total            approvals this replica created
 *   tollgate_approvals_decided_total{outcome}     approved | rejected | expired
 *   tollgate_state_errors_total{operation}        store calls that failed, timed out or met an open circuit
 * Budget and rate labels are the policy's `name` (default: the key), bounded like the
 * agent-influenced labels of the other metrics (metrics.maxLabelValues).
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { OVERFLOW_LABEL_VALUE, sanitizeLabelValue } from '../telemetry/metrics.ts';

/** The state metrics API. */
export interface StateMetrics {
  budgetConsumed(budget: string, cost: number): void;
  budgetRefunded(budget: string, cost: number): void;
  budgetExhausted(budget: string): void;
  rateLimited(rate: string): void;
  approvalRequested(): void;
  approvalDecided(outcome: 'approved' | 'rejected' | 'expired'): void;
  stateError(operation: string): void;
  /** Where the pending gauge reads from at scrape time. */
  observePending(count: () => Promise<number>): void;
}

/** Options of createStateMetrics. */
export interface StateMetricsOptions {
  readonly registry?: Registry;
  readonly maxLabelValues?: number;
  readonly maxLabelValueLength?: number;
}

function bound(max: number, maxLength: number): (raw: string) => string {
  const kept = new Set<string>();
  return (raw) => {
    const value = sanitizeLabelValue(raw, maxLength);
    if (kept.has(value)) return value;
    if (kept.size < max) {
      kept.add(value);
      return value;
    }
    return OVERFLOW_LABEL_VALUE;
  };
}

/** Creates the state metrics (a no-op set without a registry). */
export function createStateMetrics(options: StateMetricsOptions): StateMetrics {
  const registers = options.registry === undefined ? [] : [options.registry];
  const max = options.maxLabelValues ?? 100;
  const length = options.maxLabelValueLength ?? 128;
  const budgetLabel = bound(max, length);
  const rateLabel = bound(max, length);
  const consumed = new Counter({
    name: 'tollgate_budget_consumed_total',
    help: 'Cost units charged against each budget (policy result budgets[].name, default its key).',
    labelNames: ['budget'] as const,
    registers,
  });
  const refunded = new Counter({
    name: 'tollgate_budget_refunded_total',
    help: 'Cost units given back to each budget because the upstream call failed as its refund_on names.',
    labelNames: ['budget'] as const,
    registers,
  });
  const exhausted = new Counter({
    name: 'tollgate_budget_exhausted_total',
    help: 'Calls the policy allowed but denied because the budget had no room for their cost.',
    labelNames: ['budget'] as const,
    registers,
  });
  const limited = new Counter({
    name: 'tollgate_rate_limited_total',
    help: 'Calls the policy allowed but denied with 429 because the rate limit bucket was empty.',
    labelNames: ['rate'] as const,
    registers,
  });
  const requested = new Counter({
    name: 'tollgate_approvals_requested_total',
    help: 'Human approvals this replica created (a retried call joins the open one instead).',
    registers,
  });
  const decided = new Counter({
    name: 'tollgate_approvals_decided_total',
    help: 'Human approvals decided, by outcome: approved, rejected, expired (counted by the replica that saw it).',
    labelNames: ['outcome'] as const,
    registers,
  });
  for (const outcome of ['approved', 'rejected', 'expired']) decided.inc({ outcome }, 0);
  const errors = new Counter({
    name: 'tollgate_state_errors_total',
    help: 'State store calls that failed, passed their deadline or met an open circuit, by operation.',
    labelNames: ['operation'] as const,
    registers,
  });
  let pending: (() => Promise<number>) | undefined;
  new Gauge({
    name: 'tollgate_approvals_pending',
    help: 'Approvals waiting for a human, in the shared store (read at scrape time).',
    registers,
    async collect() {
      if (pending === undefined) return;
      try {
        this.set(await pending());
      } catch {
        // Store down: keep the last value; tollgate_state_errors_total says why.
      }
    },
  });
  return {
    budgetConsumed: (budget, cost) => consumed.inc({ budget: budgetLabel(budget) }, cost),
    budgetRefunded: (budget, cost) => refunded.inc({ budget: budgetLabel(budget) }, cost),
    budgetExhausted: (budget) => exhausted.inc({ budget: budgetLabel(budget) }),
    rateLimited: (rate) => limited.inc({ rate: rateLabel(rate) }),
    approvalRequested: () => requested.inc(),
    approvalDecided: (outcome) => decided.inc({ outcome }),
    stateError: (operation) => errors.inc({ operation }),
    observePending: (count) => {
      pending = count;
    },
  };
}
