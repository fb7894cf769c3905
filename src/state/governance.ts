/**
 * Governance over time, as one step around the PDP: the decision step (enforce/decide.ts)
 * calls `decide` where it would call the PDP.
 *
 *  1. Ask the PDP. A result that names no budget, rate or approval is returned as is
 *     (no store call: stateless policies pay nothing).
 *  2. When the allowed result names budgets or requires approval, read their current
 *     state — input.usage (per budget key: used, limit, remaining, window_seconds) and
 *     input.approval (the open or answered approval of this agent for this exact call) —
 *     and ask the PDP again with them. The second answer is the decision, so a policy
 *     can say "above 80 % of the budget, only amounts under $100".
 *  3. Enforce what the allowed answer asks: an approval must exist and be approved (else
 *     a pending one is created and the call denied with its id); every budget and rate is
 *     checked and consumed atomically, all or nothing (over a budget: deny; an empty
 *     bucket: deny with 429 and Retry-After); then one use of the approval is taken.
 *
 * A denial here is a Decision like the policy's own (allowed false, reasons, status), so
 * every door answers it as it answers a policy deny (MCP: a JSON-RPC error). The store
 * failing applies state.failureModeAllow / failureModeAllowHosts: fail closed (503) by
 * default, never a hung request (the store's deadline and circuit breaker).
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { TollgateError } from '../errors.ts';
import type { PolicyInput } from '../input/build.ts';
import { mcpRequestIds } from '../input/mcp.ts';
import type { Decision, Pdp } from '../pdp/types.ts';
import type { Approvals } from './approvals.ts';
import { callDigest } from './digest.ts';
import type { StateMetrics } from './metrics.ts';
import { approvalUsable } from './memory-store.ts';
import { stateRequestsFrom, type BudgetRequest, type RefundOutcome, type StateRequests } from './result.ts';
import type { ApprovalRecord, BudgetCharge, StateStore } from './types.ts';

/** Options of createGovernance. */
export interface GovernanceOptions {
  readonly store: StateStore;
  readonly approvals: Approvals;
  readonly metrics: StateMetrics;
  readonly logger: Logger;
  /** Allow (without state) when the store fails; per-host exceptions. Default: fail closed. */
  readonly failureModeAllow: boolean;
  readonly failureModeAllowHosts: readonly string[];
}

/** The step the decision step calls in place of pdp.decide. */
export interface Governance {
  decide(
    pdp: Pick<Pdp, 'decide' | 'decideNow' | 'info'>,
    input: PolicyInput,
    decisionId: string,
    host: string,
  ): Decision | Promise<Decision>;
}

type Attributes = Record<string, string | number | boolean | string[] | number[]>;

/** "86400000" → "24h": how a window reads in a reason. */
export function formatWindow(ms: number): string {
  const units: Array<[number, string]> = [
    [3_600_000, 'h'],
    [60_000, 'm'],
    [1000, 's'],
  ];
  for (const [size, unit] of units) if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

/** The upstream outcome a status stands for (undefined: no response came). */
export function upstreamOutcome(status: number | undefined): RefundOutcome | undefined {
  if (status === undefined) return 'upstream_error';
  if (status >= 500) return 'upstream_5xx';
  if (status >= 400) return 'upstream_4xx';
  return undefined;
}

/** input.approval: what the policy may know of this call's approval. */
function approvalInput(record: ApprovalRecord): Record<string, unknown> {
  return {
    id: record.id,
    status: record.status,
    uses_left: record.uses_left,
    expires_at: new Date(record.expires_at).toISOString(),
    ...(record.decided_by === undefined ? {} : { decided_by: record.decided_by }),
  };
}

/** Creates the governance step. */
export function createGovernance(options: GovernanceOptions): Governance {
  const { store, approvals, metrics } = options;
  const log = options.logger.child({ component: 'state' });
  const allowHosts = new Set(options.failureModeAllowHosts);

  /** A deny in the shape every door writes: MCP calls get a JSON-RPC error (replyData), others a JSON body. */
  function deny(
    base: Decision,
    input: PolicyInput,
    reasons: string[],
    status: number,
    data: Record<string, unknown>,
    annotations: { attributes: Attributes; custom: Record<string, unknown> },
    retryAfterSeconds?: number,
  ): Decision {
    const headers: Array<readonly [string, string]> =
      retryAfterSeconds === undefined ? [] : [['retry-after', String(retryAfterSeconds)]];
    const mcp = input.mcp !== undefined && mcpRequestIds(input.mcp).length > 0;
    // The log's `result` stays the policy's answer (replay compares policy answers); what
    // Tollgate enforced instead is said here, next to why.
    const state = annotations.custom.state;
    if (typeof state === 'object' && state !== null)
      (state as Record<string, unknown>).denied = { reasons, http_status: mcp ? 200 : status };
    const common = {
      ...base,
      allowed: false,
      reasons,
      requestHeadersToRemove: [],
      responseHeadersToAdd: [],
      queryParametersToSet: [],
      queryParametersToRemove: [],
      replyData: data,
      annotations,
    };
    if (mcp) return { ...common, headers };
    return {
      ...common,
      httpStatus: status,
      headers: [...headers, ['content-type', 'application/json']],
      body: JSON.stringify({
        allowed: false,
        decision_id: base.decisionId,
        reasons,
        revision: base.revision,
        ...data,
      }),
    };
  }

  function charges(budgets: readonly BudgetRequest[]): BudgetCharge[] {
    return budgets.map((b) => ({
      key: b.key,
      cost: b.cost,
      limit: b.limit,
      windowMs: b.windowMs,
      chargeId: randomUUID(),
    }));
  }

  async function enforce(
    decision: Decision,
    input: PolicyInput,
    requests: StateRequests,
    found: ApprovalRecord | undefined,
    usage: readonly number[],
  ): Promise<Decision> {
    const attributes: Attributes = {};
    const custom: Record<string, unknown> = {};
    const annotations = { attributes, custom: { state: custom } };
    const { budgets, rates, approval } = requests;
    let approvalId: string | undefined;

    if (approval !== undefined) {
      if (found !== undefined && approvalUsable(found, Date.now())) {
        approvalId = found.id;
      } else {
        let record = found;
        let outcome: string;
        if (record === undefined || record.status === 'expired') {
          const call = callDigest(input);
          const ask = await store.requestApproval({
            id: randomUUID(),
            agent: input.agent.id,
            method: call.method,
            authority: call.authority,
            path: call.path,
            digest: call.digest,
            body_digest: call.bodyDigest,
            reasons: approval.reasons,
            approvers: approval.approvers,
            decision_id: decision.decisionId,
            ttl_ms: approval.ttlMs,
            uses: approval.uses,
          });
          record = ask.record;
          outcome = ask.created ? 'requested' : record.status;
          if (ask.created) approvals.requested(record, decision.decisionId);
        } else {
          outcome = record.status;
        }
        attributes['tollgate.approval.id'] = record.id;
        attributes['tollgate.approval.status'] = record.status;
        attributes['tollgate.approval.outcome'] = outcome;
        custom.approval = { id: record.id, status: record.status, outcome };
        const url = approvals.statusUrl(record.id);
        const rejected = record.status === 'rejected';
        const reasons = rejected
          ? [`approval ${record.id} was rejected by ${record.decided_by ?? 'an approver'}`]
          : [
              `human approval required${approval.reasons.length > 0 ? `: ${approval.reasons.join('; ')}` : ''}`,
              `approval ${record.id} is pending`,
            ];
        return deny(
          decision,
          input,
          reasons,
          403,
          {
            approval: {
              id: record.id,
              status: record.status,
              ...(url === '' ? {} : { status_url: url }),
              expires_at: new Date(record.expires_at).toISOString(),
            },
          },
          annotations,
        );
      }
    }

    const budgetCharges = charges(budgets);
    const result = budgets.length + rates.length === 0 ? undefined : await store.consume(budgetCharges, rates);
    if (budgets.length > 0) {
      attributes['tollgate.budget.key'] = budgets.map((b) => b.key);
      attributes['tollgate.budget.cost'] = budgets.map((b) => b.cost);
      attributes['tollgate.budget.limit'] = budgets.map((b) => b.limit);
    }
    if (rates.length > 0) attributes['tollgate.rate.key'] = rates.map((r) => r.key);
    if (result !== undefined && !result.ok) {
      const retryAfter = Math.max(1, Math.ceil(result.retryAfterMs / 1000));
      if (result.kind === 'budget') {
        const b = budgets[result.index]!;
        metrics.budgetExhausted(b.name);
        attributes['tollgate.budget.outcome'] = 'exhausted';
        attributes['tollgate.budget.exhausted'] = b.key;
        attributes['tollgate.budget.used'] = result.level;
        custom.budgets = budgets.map((x, i) => ({
          key: x.key,
          cost: x.cost,
          limit: x.limit,
          outcome: i === result.index ? 'exhausted' : 'not_charged',
          ...(i === result.index ? { used: result.level } : {}),
        }));
        const reason = `budget ${b.name} exhausted: ${result.level} of ${b.limit} used in the last ${formatWindow(b.windowMs)}, this call costs ${b.cost}`;
        return deny(
          decision,
          input,
          [reason],
          403,
          {
            budget: {
              key: b.key,
              used: result.level,
              limit: b.limit,
              cost: b.cost,
              window_seconds: b.windowMs / 1000,
              retry_after_seconds: retryAfter,
            },
          },
          annotations,
        );
      }
      const r = rates[result.index]!;
      metrics.rateLimited(r.name);
      attributes['tollgate.rate.outcome'] = 'limited';
      attributes['tollgate.rate.limited'] = r.key;
      attributes['tollgate.rate.retry_after_ms'] = result.retryAfterMs;
      custom.rates = rates.map((x, i) => ({ key: x.key, outcome: i === result.index ? 'limited' : 'not_taken' }));
      const reason = `rate limit ${r.name} exceeded (${r.rate}/s, burst ${r.burst}); retry after ${retryAfter}s`;
      return deny(
        decision,
        input,
        [reason],
        429,
        { rate: { key: r.key, rate: r.rate, burst: r.burst, retry_after_seconds: retryAfter } },
        annotations,
        retryAfter,
      );
    }
    if (result !== undefined && result.ok) {
      budgets.forEach((b) => metrics.budgetConsumed(b.name, b.cost));
      if (budgets.length > 0) {
        attributes['tollgate.budget.outcome'] = 'consumed';
        attributes['tollgate.budget.used'] = [...result.used];
        custom.budgets = budgets.map((b, i) => ({
          key: b.key,
          cost: b.cost,
          limit: b.limit,
          used: result.used[i],
          outcome: 'consumed',
          charge_id: budgetCharges[i]!.chargeId,
        }));
      }
      if (rates.length > 0) {
        attributes['tollgate.rate.outcome'] = 'allowed';
        attributes['tollgate.rate.tokens'] = [...result.tokens];
        custom.rates = rates.map((r, i) => ({ key: r.key, outcome: 'allowed', tokens: result.tokens[i] }));
      }
    }
    if (approvalId !== undefined) {
      const used = await store.useApproval(approvalId);
      if (used === undefined) {
        // Another replica took the last use between the read and now: give the charges back.
        await store.refund(budgetCharges).catch(() => undefined);
        attributes['tollgate.approval.id'] = approvalId;
        attributes['tollgate.approval.outcome'] = 'used_up';
        custom.approval = { id: approvalId, outcome: 'used_up' };
        return deny(
          decision,
          input,
          [`approval ${approvalId} has no uses left`],
          403,
          { approval: { id: approvalId, status: 'approved', uses_left: 0 } },
          annotations,
        );
      }
      attributes['tollgate.approval.id'] = used.id;
      attributes['tollgate.approval.status'] = used.status;
      attributes['tollgate.approval.outcome'] = 'used';
      attributes['tollgate.approval.uses_left'] = used.uses_left;
      if (used.decided_by !== undefined) attributes['tollgate.approval.decided_by'] = used.decided_by;
      custom.approval = { id: used.id, outcome: 'used', uses_left: used.uses_left, decided_by: used.decided_by };
    }
    // Refunds on a failed upstream call, when the policy asked for them.
    const refundable = budgets.map((b, i) => ({ b, charge: budgetCharges[i]! })).filter((x) => x.b.refundOn.length > 0);
    const onUpstream =
      refundable.length === 0
        ? undefined
        : (status: number | undefined): void => {
            const outcome = upstreamOutcome(status);
            if (outcome === undefined) return;
            const back = refundable.filter((x) => x.b.refundOn.includes(outcome));
            if (back.length === 0) return;
            store.refund(back.map((x) => x.charge)).then(
              () => back.forEach((x) => metrics.budgetRefunded(x.b.name, x.b.cost)),
              (err: unknown) => log.warn({ err, decisionId: decision.decisionId }, 'budget refund failed'),
            );
          };
    return { ...decision, annotations, ...(onUpstream === undefined ? {} : { onUpstream }) };
  }

  function failed(decision: Decision, input: PolicyInput, host: string, error: TollgateError): Decision {
    const allow = options.failureModeAllow || allowHosts.has(host);
    log.warn(
      { err: error, code: error.code, decisionId: decision.decisionId, host, failureMode: allow ? 'allow' : 'deny' },
      'state store failed',
    );
    const attributes: Attributes = {
      'tollgate.state.error': error.code,
      'tollgate.state.failure_mode': allow ? 'allow' : 'deny',
    };
    const annotations = {
      attributes,
      custom: {
        state: { error: { code: error.code, message: error.message, failure_mode: allow ? 'allow' : 'deny' } },
      },
    };
    if (allow) return { ...decision, annotations };
    return deny(
      decision,
      input,
      [`state store unavailable (${error.code}): failing closed`],
      503,
      { error: { code: error.code, message: error.message } },
      annotations,
      1,
    );
  }

  return {
    decide(pdp, input, decisionId, host) {
      // A PDP that answers synchronously, asked for no state: no Promise at all (the common case).
      if (pdp.decideNow === undefined)
        return pdp.decide(input, decisionId).then((first) => withState(pdp, first, input, decisionId, host));
      const first = pdp.decideNow(input, decisionId);
      if (!first.allowed) return first;
      const asked = stateRequestsFrom(first.result);
      if (asked === undefined) return first;
      return withState(pdp, first, input, decisionId, host, asked);
    },
  };

  /** The state step after an allow that names budgets, rates or an approval. */
  async function withState(
    pdp: Pick<Pdp, 'decide' | 'info'>,
    first: Decision,
    input: PolicyInput,
    decisionId: string,
    host: string,
    asked = first.allowed ? stateRequestsFrom(first.result) : undefined,
  ): Promise<Decision> {
    if (asked === undefined) return first;
    try {
      let decision = first;
      let requests: StateRequests = asked;
      let found: ApprovalRecord | undefined;
      let usage: number[] = [];
      if (asked.budgets.length > 0 || asked.approval !== undefined) {
        const call = asked.approval === undefined ? undefined : callDigest(input);
        [usage, found] = await Promise.all([
          store.usage(asked.budgets),
          call === undefined ? undefined : store.findApproval(input.agent.id, call.digest),
        ]);
        const doc: Record<string, unknown> = {};
        asked.budgets.forEach((b, i) => {
          const used = usage[i]!;
          doc[b.key] = {
            used,
            limit: b.limit,
            remaining: Math.max(0, b.limit - used),
            window_seconds: b.windowMs / 1000,
          };
        });
        const enriched = input as PolicyInput & { usage?: unknown; approval?: unknown };
        enriched.usage = doc;
        if (found !== undefined) enriched.approval = approvalInput(found);
        decision = await pdp.decide(input, decisionId);
        if (!decision.allowed) return decision;
        const again = stateRequestsFrom(decision.result);
        if (again === undefined) return decision;
        requests = again;
        // An approval the first answer did not ask about was not looked up: look now.
        if (found === undefined && again.approval !== undefined && asked.approval === undefined)
          found = await store.findApproval(input.agent.id, callDigest(input).digest);
      }
      return await enforce(decision, input, requests, found, usage);
    } catch (err) {
      if (err instanceof TollgateError && err.code === 'TG_ERR_STATE_UNAVAILABLE')
        return failed(first, input, host, err);
      throw err;
    }
  }
}
