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
}

/** What a PDP knows about the policy it serves. */
export interface PolicyInfo {
  /** wasm: in-process bundle; extauthz: a remote ext_authz server (decisionPath names its target). */
  readonly kind: 'wasm' | 'extauthz';
  readonly decisionPath: string;
  readonly revision: string;
}

/** A policy decision point. */
export interface Pdp {
  /**
   * Decides on an input; rejects with a TollgateError when no decision can be made.
   * `path`: another entrypoint of the same policy (response decisions); default the configured one.
   */
  decide(input: PolicyInput, decisionId: string, path?: string): Promise<Decision>;
  /** The policy currently served, or undefined before one is loaded. */
  info(): PolicyInfo | undefined;
  close(): Promise<void>;
}
