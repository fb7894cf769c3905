/**
 * Shadow mode: a candidate policy evaluated beside the active one on live traffic.
 * Only the active PDP's decision is returned (and enforced); the candidate runs after
 * the active decision has been handed back (setImmediate), so it adds nothing to the
 * request's latency and its failures never reach the request. A disagreement — one
 * allows and the other denies, or exactly one of them fails — is reported with both
 * results for the metric, the log line and the span event.
 */
import type { PolicyInput } from '../input/build.ts';
import type { Decision, Pdp } from './types.ts';

/** One side of a comparison. */
export type ShadowOutcome =
  | {
      readonly allowed: boolean;
      readonly reasons: readonly string[];
      readonly revision: string;
      readonly result: unknown;
    }
  | { readonly error: string; readonly code: string };

/** A decision on which the candidate and the active policy differ. */
export interface ShadowDisagreement {
  readonly decisionId: string;
  /** allow-to-deny: the candidate would deny what is allowed now; deny-to-allow: the reverse; error: exactly one side failed. */
  readonly kind: 'allow-to-deny' | 'deny-to-allow' | 'error';
  readonly input: PolicyInput;
  readonly active: ShadowOutcome;
  readonly candidate: ShadowOutcome;
}

/** Options of createShadowPdp. */
export interface ShadowPdpOptions {
  readonly active: Pdp;
  readonly candidate: Pdp;
  /** Every disagreement (metric, warn log, span event). Must not throw. */
  onDisagreement(disagreement: ShadowDisagreement): void;
  /** Every comparison, agreeing or not (for an "evaluated" counter). */
  onCompared?(agreed: boolean): void;
}

function outcome(settled: PromiseSettledResult<Decision>): ShadowOutcome {
  if (settled.status === 'fulfilled') {
    const d = settled.value;
    return { allowed: d.allowed, reasons: d.reasons, revision: d.revision, result: d.result };
  }
  const err = settled.reason as { message?: string; code?: string };
  return { error: err?.message ?? String(settled.reason), code: err?.code ?? 'unknown' };
}

/** Wraps the active PDP so every decision is also asked of the candidate, off the request path. */
export function createShadowPdp(options: ShadowPdpOptions): Pdp & { readonly candidate: Pdp } {
  const compare = (input: PolicyInput, decisionId: string, active: PromiseSettledResult<Decision>): void => {
    // No candidate loaded yet: nothing to compare (not a disagreement).
    if (options.candidate.info() === undefined) return;
    setImmediate(() => {
      void options.candidate.decide(input, decisionId).then(
        (d) => report(input, decisionId, active, { status: 'fulfilled', value: d }),
        (reason: unknown) => report(input, decisionId, active, { status: 'rejected', reason }),
      );
    });
  };
  const report = (
    input: PolicyInput,
    decisionId: string,
    a: PromiseSettledResult<Decision>,
    c: PromiseSettledResult<Decision>,
  ): void => {
    let kind: ShadowDisagreement['kind'] | undefined;
    if (a.status !== c.status) kind = 'error';
    else if (a.status === 'fulfilled' && c.status === 'fulfilled' && a.value.allowed !== c.value.allowed)
      kind = a.value.allowed ? 'allow-to-deny' : 'deny-to-allow';
    try {
      options.onCompared?.(kind === undefined);
      if (kind !== undefined)
        options.onDisagreement({ decisionId, kind, input, active: outcome(a), candidate: outcome(c) });
    } catch {
      // reporting never affects enforcement
    }
  };
  return {
    candidate: options.candidate,
    async decide(input, decisionId, path) {
      // The shadow comparison covers request decisions; another entrypoint is the active policy's alone.
      if (path !== undefined) return options.active.decide(input, decisionId, path);
      try {
        const decision = await options.active.decide(input, decisionId);
        compare(input, decisionId, { status: 'fulfilled', value: decision });
        return decision;
      } catch (error) {
        compare(input, decisionId, { status: 'rejected', reason: error });
        throw error;
      }
    },
    info: () => options.active.info(),
    async close() {
      await options.active.close();
      await options.candidate.close();
    },
  };
}
