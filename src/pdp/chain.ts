/**
 * A PDP chain: layered policies in one Pdp. Each stage is itself a Pdp (an in-process
 * bundle, a remote ext_authz server, Cedar policies) with its own deadline and failure
 * mode; the chain combines their answers by one declared rule:
 *
 * - `deny-overrides` (default): every stage is asked at once; the request is allowed
 *   only when no stage denies and at least one allows. The first denying stage (in
 *   stage order) decides: its status, body and headers make the deny reply; the reasons
 *   of every denying stage are kept. On an allow, the header changes of every allowing
 *   stage apply, in stage order.
 * - `first-applicable`: stages are asked in order; the first that applies decides and
 *   later stages are not asked.
 *
 * A stage does not apply when its result says `"applicable": false` (Rego; a remote
 * ext_authz stage in its dynamic_metadata), or when no Cedar policy matched the request
 * (result.ts, cedar.ts). A stage that makes no decision
 * (an error, or no answer within its deadline) counts as its failure mode's decision:
 * allow with failureModeAllow, deny otherwise (as Envoy's failure_mode_allow). When no
 * stage applies, the chain denies: nothing allowed it. Because every stage's failure
 * is resolved here, the chain itself rejects only on a bug.
 *
 * The chain's Decision carries every stage's result (`stages`, `decidedBy`); its
 * `result` is opa-envoy-plugin's result object plus `decided_by`, `combine` and
 * `stages`, which the decision log writes as the record's result. A decision on
 * another entrypoint (response decisions) is made by the first stage whose policy has
 * it, as that stage would alone. On an allow, what
 * the allowing stages ask of the state step travels in that result too: their
 * `budgets` and `rates` together, and an `approval` when any of them requires one
 * (a local layer cannot drop a budget or an approval the central layer asks for).
 */
import { TollgateError, wrapError } from '../errors.ts';
import type { PolicyInput } from '../input/build.ts';
import type { Decision, HeaderPair, Pdp, PolicyInfo, StageResult } from './types.ts';

/** How stage decisions combine. */
export type CombiningRule = 'deny-overrides' | 'first-applicable';

/** One stage of a chain. */
export interface ChainStage {
  /** Unique name (e.g. "central", "local"): shown on spans, in the log and by `tollgate explain`. */
  readonly name: string;
  /** The stage's PDP kind, for the record (wasm, extauthz, cedar). */
  readonly type: string;
  readonly pdp: Pdp;
  /** The stage's deadline: past it, its failure mode applies and the chain goes on without it. */
  readonly timeoutMs: number;
  /** When the stage makes no decision: true counts as an allow, false as a deny. */
  readonly failureModeAllow: boolean;
  /**
   * The PDP enforces timeoutMs itself and evaluates synchronously (wasm, cedar): a timer
   * could not fire before it returns, so none is set (it would cost more than it checks).
   */
  readonly selfTimed?: boolean;
}

/** Options of createChainPdp. */
export interface ChainPdpOptions {
  readonly stages: readonly ChainStage[];
  readonly combine?: CombiningRule;
}

/** What one stage answered, before combination. */
export interface Answer {
  readonly stage: ChainStage;
  readonly decision?: Decision;
  readonly error?: TollgateError;
  readonly ms: number;
}

/** Asks one stage, bounded by its deadline; never rejects. */
async function ask(stage: ChainStage, input: PolicyInput, decisionId: string): Promise<Answer> {
  const started = performance.now();
  if (stage.selfTimed === true) {
    try {
      return { stage, decision: await stage.pdp.decide(input, decisionId), ms: performance.now() - started };
    } catch (err) {
      const error = wrapError('TG_ERR_POLICY_EVAL', `stage ${stage.name} failed`, err);
      return { stage, error, ms: performance.now() - started };
    }
  }
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new TollgateError(
            'TG_ERR_PDP_TIMEOUT',
            `stage ${stage.name} did not decide within its ${stage.timeoutMs} ms deadline`,
          ),
        ),
      stage.timeoutMs,
    );
  });
  try {
    const decision = await Promise.race([stage.pdp.decide(input, decisionId), deadline]);
    return { stage, decision, ms: performance.now() - started };
  } catch (err) {
    const error = wrapError('TG_ERR_POLICY_EVAL', `stage ${stage.name} failed`, err);
    return { stage, error, ms: performance.now() - started };
  } finally {
    clearTimeout(timer);
  }
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/**
 * A remote ext_authz answer cannot leave out "allowed" (opa-envoy-plugin requires it): a
 * remote stage says it has no opinion with `"dynamic_metadata": {"applicable": false}`.
 */
function remoteNotApplicable(stage: ChainStage, decision: Decision): boolean {
  return stage.type === 'extauthz' && decision.dynamicMetadata?.applicable === false;
}

/** The record of one stage's answer, failure mode applied. */
export function stageResult(answer: Answer): StageResult {
  const { stage, decision, error } = answer;
  const base = { name: stage.name, type: stage.type, ms: round(answer.ms) };
  if (error !== undefined || decision === undefined) {
    const mode = stage.failureModeAllow ? 'allow' : 'deny';
    return {
      ...base,
      outcome: 'error',
      allowed: stage.failureModeAllow,
      reasons: [],
      revision: stage.pdp.info()?.revision ?? '',
      error: { code: error?.code ?? 'TG_ERR_POLICY_EVAL', message: error?.message ?? 'no decision', failureMode: mode },
    };
  }
  if (decision.applicable === false || remoteNotApplicable(stage, decision)) {
    return {
      ...base,
      outcome: 'not_applicable',
      allowed: null,
      reasons: decision.reasons,
      revision: decision.revision,
    };
  }
  return {
    ...base,
    outcome: decision.allowed ? 'allow' : 'deny',
    allowed: decision.allowed,
    reasons: decision.reasons,
    revision: decision.revision,
  };
}

/** The reason a stage's failure mode gives when it denies. */
function failureReason(result: StageResult): string {
  return `stage ${result.name} made no decision (${result.error?.code}: ${result.error?.message}); its failure mode denies`;
}

/** The stage records as the decision log writes them (snake_case, as OPA's result fields). */
function stageRecords(results: readonly StageResult[]): unknown[] {
  return results.map((r) => ({
    name: r.name,
    type: r.type,
    outcome: r.outcome,
    allowed: r.allowed,
    reasons: r.reasons,
    revision: r.revision,
    ms: r.ms,
    ...(r.error === undefined
      ? {}
      : { error: { code: r.error.code, message: r.error.message, failure_mode: r.error.failureMode } }),
  }));
}

function unique(values: readonly string[]): string[] {
  return [...new Set(values)];
}

/**
 * Combines the answers (in stage order) into one Decision. Pure: the same answers
 * always combine to the same decision.
 */
export function combine(
  rule: CombiningRule,
  answers: readonly Answer[],
  meta: { decisionId: string; revision: string; evalNanos: number },
): Decision {
  const results = answers.map(stageResult);
  const counted = answers.map((answer, i) => ({ answer, result: results[i]! }));
  let decider: (typeof counted)[number] | undefined;
  let allowed: boolean;
  if (rule === 'first-applicable') {
    decider = counted.find((c) => c.result.allowed !== null);
    allowed = decider?.result.allowed === true;
  } else {
    decider = counted.find((c) => c.result.allowed === false);
    if (decider === undefined) decider = counted.find((c) => c.result.allowed === true);
    allowed = decider?.result.allowed === true;
  }
  const reasonsOf = (c: (typeof counted)[number]): readonly string[] =>
    c.result.outcome === 'error' && c.result.allowed === false ? [failureReason(c.result)] : c.result.reasons;
  const headers: HeaderPair[] = [];
  const requestHeadersToRemove: string[] = [];
  const responseHeadersToAdd: HeaderPair[] = [];
  const queryParametersToSet: HeaderPair[] = [];
  const queryParametersToRemove: string[] = [];
  let dynamicMetadata: Record<string, unknown> | undefined;
  let reasons: string[];
  let httpStatus: number | undefined;
  let body: string | undefined;
  if (decider === undefined) {
    reasons = ['no stage of the policy chain applied to this request'];
  } else if (allowed) {
    // Every stage that allowed contributes its changes: central's headers, then local's.
    const allowing = rule === 'first-applicable' ? [decider] : counted.filter((c) => c.result.allowed === true);
    reasons = unique(allowing.flatMap(reasonsOf));
    for (const c of allowing) {
      const d = c.answer.decision;
      if (d === undefined) continue;
      headers.push(...d.headers);
      requestHeadersToRemove.push(...d.requestHeadersToRemove);
      responseHeadersToAdd.push(...d.responseHeadersToAdd);
      queryParametersToSet.push(...d.queryParametersToSet);
      queryParametersToRemove.push(...d.queryParametersToRemove);
      if (d.dynamicMetadata !== undefined) dynamicMetadata = { ...dynamicMetadata, ...d.dynamicMetadata };
    }
  } else {
    const denying = rule === 'first-applicable' ? [decider] : counted.filter((c) => c.result.allowed === false);
    reasons = unique(denying.flatMap(reasonsOf));
    // The deciding stage shapes the reply (status, body, headers), as it would alone.
    const d = decider.answer.decision;
    if (d !== undefined) {
      httpStatus = d.httpStatus;
      body = d.body;
      headers.push(...d.headers);
      dynamicMetadata = d.dynamicMetadata;
    }
  }
  const decidedBy = decider?.result.name;
  const obligations = allowed ? stateObligations(counted.filter((c) => c.result.allowed === true)) : {};
  const result: Record<string, unknown> = {
    allowed,
    reasons,
    ...(httpStatus === undefined ? {} : { http_status: httpStatus }),
    ...obligations,
    ...(decidedBy === undefined ? {} : { decided_by: decidedBy }),
    combine: rule,
    stages: stageRecords(results),
  };
  return {
    allowed,
    ...(httpStatus === undefined ? {} : { httpStatus }),
    headers,
    requestHeadersToRemove: unique(requestHeadersToRemove),
    responseHeadersToAdd,
    queryParametersToSet,
    queryParametersToRemove: unique(queryParametersToRemove),
    ...(body === undefined ? {} : { body }),
    ...(dynamicMetadata === undefined ? {} : { dynamicMetadata }),
    reasons,
    ...meta,
    result,
    stages: results,
    ...(decidedBy === undefined ? {} : { decidedBy }),
  };
}

/** The budgets, rates and approval the allowing stages' results ask for, combined. */
function stateObligations(allowing: readonly { answer: Answer }[]): Record<string, unknown> {
  const budgets: unknown[] = [];
  const rates: unknown[] = [];
  let approval: Record<string, unknown> | undefined;
  for (const { answer } of allowing) {
    const r = answer.decision?.result;
    if (r === null || typeof r !== 'object') continue;
    const { budgets: b, rates: q, approval: a } = r as Record<string, unknown>;
    if (Array.isArray(b)) budgets.push(...b);
    if (Array.isArray(q)) rates.push(...q);
    if (a !== null && typeof a === 'object' && (a as { required?: unknown }).required === true) {
      const prev = approval;
      const list = (x: unknown): unknown[] => (Array.isArray(x) ? x : []);
      approval =
        prev === undefined
          ? { ...a }
          : {
              ...prev,
              reasons: unique([...list(prev.reasons), ...list((a as Record<string, unknown>).reasons)] as string[]),
              approvers: unique([
                ...list(prev.approvers),
                ...list((a as Record<string, unknown>).approvers),
              ] as string[]),
            };
    }
  }
  return {
    ...(budgets.length === 0 ? {} : { budgets }),
    ...(rates.length === 0 ? {} : { rates }),
    ...(approval === undefined ? {} : { approval }),
  };
}

/** The chain's revision: every stage's, "name=revision" joined by commas. */
function chainRevision(stages: readonly ChainStage[]): string {
  return stages.map((s) => `${s.name}=${s.pdp.info()?.revision ?? ''}`).join(',');
}

/** Creates a PDP chain over stages (at least one, unique names). */
export function createChainPdp(options: ChainPdpOptions): Pdp {
  const { stages } = options;
  const rule = options.combine ?? 'deny-overrides';
  if (stages.length === 0) throw new TollgateError('TG_ERR_CONFIG_INVALID', 'a pdp chain needs at least one stage');
  const names = new Set<string>();
  for (const stage of stages) {
    if (names.has(stage.name))
      throw new TollgateError('TG_ERR_CONFIG_INVALID', `pdp chain stage name "${stage.name}" is used twice`);
    names.add(stage.name);
  }
  const decisionPath = `chain(${rule}: ${stages.map((s) => s.name).join(', ')})`;

  return {
    async decide(input, decisionId, path) {
      if (path !== undefined) {
        // Another entrypoint (response decisions) has its own result shape, which the
        // combining rule does not know: the first stage whose policy answers it decides.
        const stage = stages.find((s) => s.pdp.info()?.entrypoints?.includes(path) === true);
        if (stage === undefined)
          throw new TollgateError('TG_ERR_POLICY_EVAL', `no stage of the policy chain has the entrypoint "${path}"`);
        return stage.pdp.decide(input, decisionId, path);
      }
      const started = process.hrtime.bigint();
      const answers: Answer[] = [];
      if (rule === 'first-applicable') {
        for (const stage of stages) {
          const answer = await ask(stage, input, decisionId);
          answers.push(answer);
          // A failed stage counts as its failure mode's decision, so it applies too.
          if (answer.error !== undefined || answer.decision?.applicable !== false) break;
        }
      } else {
        answers.push(...(await Promise.all(stages.map((stage) => ask(stage, input, decisionId)))));
      }
      return combine(rule, answers, {
        decisionId,
        revision: chainRevision(stages),
        evalNanos: Number(process.hrtime.bigint() - started),
      });
    },
    info(): PolicyInfo {
      return { kind: 'chain', decisionPath, revision: chainRevision(stages) };
    },
    async close() {
      await Promise.all(stages.map((s) => s.pdp.close()));
    },
  };
}
