/**
 * The PDP port: enforcement asks a Pdp for a Decision and knows nothing about WASM
 * or gRPC. Deny is data (a Decision with allowed=false); a rejected promise means
 * no decision could be made, and the caller applies the failure mode.
 */
import type { PolicyInput } from '../input/build.ts';

/** A header name and value. */
export type HeaderPair = readonly [name: string, value: string];

/** The one decision type every mapping (HTTP reply, CheckResponse, span, log) reads. */
export interface Decision {
  readonly allowed: boolean;
  /** Status for a deny (policy's http_status; absent: the configured default). */
  readonly httpStatus?: number;
  /** "headers": set on the upstream request when allowed, on the deny reply when denied. */
  readonly headers: readonly HeaderPair[];
  readonly requestHeadersToRemove: readonly string[];
  readonly responseHeadersToAdd: readonly HeaderPair[];
  readonly queryParametersToSet: readonly HeaderPair[];
  readonly queryParametersToRemove: readonly string[];
  /** A deny body set by the policy. */
  readonly body?: string;
  readonly dynamicMetadata?: Readonly<Record<string, unknown>>;
  readonly reasons: readonly string[];
  readonly decisionId: string;
  /** Bundle revision the decision came from. */
  readonly revision: string;
  readonly evalNanos: number;
  /** The decision path's value as the policy returned it (for logs and `tollgate check`). */
  readonly result: unknown;
  /**
   * The input as the JSON text the policy evaluated (a WASM PDP's): the decision log writes
   * that text, when its mask erases nothing in it, instead of serialising the input again.
   */
  readonly inputJson?: EvaluatedInput;
  /** Extra members of a deny's JSON body / JSON-RPC error data (e.g. the approval id, retry_after_seconds). */
  readonly replyData?: Readonly<Record<string, unknown>>;
  /** What a step after the PDP added (src/state): span attributes and the decision log's `custom`. */
  readonly annotations?: DecisionAnnotations;
  /** Told the upstream's status once it answers (undefined: no response), e.g. to refund a budget charge. */
  readonly onUpstream?: (status: number | undefined) => void;
  /**
   * false when the policy said it has no opinion on this input (a result with
   * `"applicable": false`, or a Cedar request no policy matched): `allowed` is then
   * false, and a PDP chain moves on to its other stages. Absent: the policy applied.
   */
  readonly applicable?: boolean;
  /** In a PDP chain: every stage's result, in stage order. */
  readonly stages?: readonly StageResult[];
  /** In a PDP chain: the name of the stage whose decision the chain took. */
  readonly decidedBy?: string;
}

/** An input and the JSON text a PDP serialised it to (the text is only used for that same object). */
export interface EvaluatedInput {
  readonly input: unknown;
  readonly text: string;
}

/** Facts a step after the PDP recorded about a decision (budgets, rates, approvals). */
export interface DecisionAnnotations {
  /** Span attributes (tollgate.budget.*, tollgate.rate.*, tollgate.approval.*). */
  readonly attributes: Readonly<Record<string, string | number | boolean | string[] | number[]>>;
  /** The decision log record's `custom` member (OPA's decision-log field for plugin data). */
  readonly custom: Readonly<Record<string, unknown>>;
}

/** One stage's part in a PDP chain decision (the span's tollgate.decision.stage.* and the log's result.stages). */
export interface StageResult {
  readonly name: string;
  /** The stage's PDP kind: wasm, extauthz or cedar. */
  readonly type: string;
  /** allow / deny as the stage decided; not_applicable; error when it made no decision (its failure mode then counts). */
  readonly outcome: 'allow' | 'deny' | 'not_applicable' | 'error';
  /** What the stage counts as in the combination: its decision, its failure mode's, or null when it did not apply. */
  readonly allowed: boolean | null;
  readonly reasons: readonly string[];
  readonly revision: string;
  /** Wall time from asking the stage to its answer (or its deadline), in milliseconds. */
  readonly ms: number;
  /** When the stage made no decision: why, and the failure mode that applied. */
  readonly error?: { readonly code: string; readonly message: string; readonly failureMode: 'allow' | 'deny' };
}

/** What a PDP knows about the policy it serves. */
export interface PolicyInfo {
  /**
   * wasm: in-process bundle; extauthz: a remote ext_authz server (decisionPath names its target);
   * cedar: in-process Cedar policies; chain: stages combined by a declared rule.
   */
  readonly kind: 'wasm' | 'extauthz' | 'cedar' | 'chain';
  readonly decisionPath: string;
  readonly revision: string;
  /** Other decision paths the policy answers (a wasm bundle's entrypoints); absent: only decisionPath. */
  readonly entrypoints?: readonly string[];
}

/** A policy decision point. */
export interface Pdp {
  /**
   * Decides on an input; rejects with a TollgateError when no decision can be made.
   * `path`: another entrypoint of the same policy (response decisions); default the configured one.
   */
  decide(input: PolicyInput, decisionId: string, path?: string): Promise<Decision>;
  /**
   * The same decision without a Promise, for PDPs that answer without I/O (WASM): throws
   * what decide() would reject with. The decision step uses it to spare every request a
   * few microtask hops; absent on PDPs that wait for something (ext_authz, a chain).
   */
  decideNow?(input: PolicyInput, decisionId: string, path?: string): Decision;
  /** The policy currently served, or undefined before one is loaded. */
  info(): PolicyInfo | undefined;
  close(): Promise<void>;
}
