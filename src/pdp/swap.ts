/**
 * The hot-swappable WASM PDP. A new bundle is verified (when a key is configured),
 * instantiated (WebAssembly compilation runs off the event loop), loaded with data and
 * asked the configured smoke input — all before it serves anything — and then becomes
 * active by one reference assignment. Evaluation is synchronous (decideSync runs to
 * completion on the event loop), so no evaluation can observe half a swap: a decision
 * that started on the old policy finishes on it, the next one starts on the new one,
 * and every Decision carries the revision of the policy that made it.
 *
 * Live data (RFC 6902 patches) is an overlay: effective data = bundle data ⊕ config
 * data, then the watched file's patch, then the API patches in order. The overlay is
 * re-applied to each new revision; a patch that no longer applies is dropped and
 * reported. A failed activation or patch leaves the active policy untouched.
 */
import { TollgateError, wrapError } from '../errors.ts';
import type { Bundle } from '../bundle/load.ts';
import { SignatureError, type BundleVerifier, type VerificationFailure } from '../bundle/verify.ts';
import { applyPatch, type PatchOperation } from '../bundle/json-patch.ts';
import type { PolicyInput } from '../input/build.ts';
import { createWasmEvaluator, mergeData, type WasmEvaluator } from './wasm.ts';
import type { Decision, Pdp, PolicyInfo } from './types.ts';

/** Where an activation came from. */
export type ActivationOrigin = 'startup' | 'poll' | 'file' | 'last-known-good' | 'rollback' | 'manual';

/** A bundle that became active. */
export interface ActivationEvent {
  readonly revision: string;
  readonly previousRevision: string | undefined;
  readonly source: string;
  readonly origin: ActivationOrigin;
  /** Time from receiving the bundle to the swap (verify, instantiate, data, smoke). */
  readonly prepareMs: number;
}

/** Why a bundle was rejected: a signature failure kind, or invalid (does not load, smoke check failed). */
export type RejectionReason = VerificationFailure | 'invalid' | 'smoke';

/** A bundle that was refused; the active policy did not change. */
export interface RejectionEvent {
  readonly source: string;
  readonly origin: ActivationOrigin;
  readonly reason: RejectionReason;
  readonly error: TollgateError;
  readonly activeRevision: string | undefined;
}

/** A live-data change, recorded in the decision log as its own entry. */
export interface DataChangeEvent {
  readonly origin: 'api' | 'file' | 'dropped';
  readonly patch: readonly PatchOperation[];
  /** Revision the change applies to. */
  readonly revision: string;
  /** Increments with each accepted change. */
  readonly dataVersion: number;
  readonly timestamp: string;
  /** For "dropped": why a kept patch no longer applies to a new revision. */
  readonly error?: string;
}

/** Callbacks for metrics and the decision log; they must not throw (errors are swallowed). */
export interface SwapHooks {
  onActivate?(event: ActivationEvent): void;
  onReject?(event: RejectionEvent): void;
  onDataChange?(event: DataChangeEvent): void;
}

/** The smoke check a new bundle must pass before activation. */
export interface SmokeCheck {
  readonly input: PolicyInput;
  /** When set, the smoke decision's `allowed` must equal it. */
  readonly expectAllowed?: boolean;
}

/** Options of createSwappablePdp. */
export interface SwappablePdpOptions {
  readonly decisionPath: string;
  readonly timeoutMs: number;
  /** Config data merged over each bundle's data.json. */
  readonly data?: Readonly<Record<string, unknown>>;
  readonly smoke?: SmokeCheck;
  /** Checks signatures before instantiation; absent: bundles are not verified. */
  readonly verifier?: BundleVerifier;
  readonly hooks?: SwapHooks;
}

/** What the swappable PDP serves. */
export interface SwapStatus {
  readonly active: { readonly revision: string; readonly source: string; readonly activatedAt: string } | undefined;
  readonly previous: { readonly revision: string; readonly source: string } | undefined;
  readonly dataVersion: number;
  readonly patches: number;
}

/** A PDP whose policy can be replaced, rolled back and patched while serving. */
export interface SwappablePdp extends Pdp {
  /** Verifies, instantiates, smoke-checks and swaps in a bundle; rejects (and reports) without changing the active policy. */
  activate(bundle: Bundle, origin: ActivationOrigin): Promise<ActivationEvent>;
  /** Switches back to the previous revision (which becomes the new previous's successor). */
  rollback(): Promise<ActivationEvent>;
  /** Applies an RFC 6902 patch to the live data of the active revision (all-or-nothing). */
  patchData(patch: readonly PatchOperation[], origin: 'api' | 'file'): DataChangeEvent;
  /** Replaces the watched file's patch layer (not cumulative: the file's content is the layer). */
  setFilePatch(patch: readonly PatchOperation[]): DataChangeEvent;
  /** The active bundle (for last-known-good persistence). */
  activeBundle(): Bundle | undefined;
  status(): SwapStatus;
}

function safely(fn: (() => void) | undefined): void {
  try {
    fn?.();
  } catch {
    // hooks are telemetry: they never break the policy lifecycle
  }
}

interface Slot {
  readonly evaluator: WasmEvaluator;
  readonly activatedAt: string;
}

/** Creates a PDP whose WASM policy is swapped atomically. It serves nothing (decide rejects) until the first activate. */
export function createSwappablePdp(options: SwappablePdpOptions): SwappablePdp {
  const hooks = options.hooks ?? {};
  let active: Slot | undefined;
  let previous: Slot | undefined;
  let filePatch: readonly PatchOperation[] = [];
  let apiPatches: Array<readonly PatchOperation[]> = [];
  let dataVersion = 0;
  // Activations and rollbacks run one at a time, in arrival order.
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = queue.then(fn, fn);
    queue = run.catch(() => undefined);
    return run;
  };

  /** A patch layer that no longer applies to a bundle's data. */
  interface Dropped {
    readonly patch: readonly PatchOperation[];
    readonly error: string;
  }

  /** Effective data for a bundle, the API patches that still apply, and those that no longer do. */
  function overlay(bundle: Bundle): {
    doc: Record<string, unknown>;
    kept: Array<readonly PatchOperation[]>;
    dropped: Dropped[];
  } {
    let doc = mergeData(bundle.data, options.data ?? {});
    const dropped: Dropped[] = [];
    try {
      doc = applyPatch(doc, filePatch);
    } catch (err) {
      dropped.push({ patch: filePatch, error: (err as Error).message });
    }
    const kept: Array<readonly PatchOperation[]> = [];
    for (const patch of apiPatches) {
      try {
        doc = applyPatch(doc, patch);
        kept.push(patch);
      } catch (err) {
        dropped.push({ patch, error: (err as Error).message });
      }
    }
    return { doc, kept, dropped };
  }

  function effectiveData(bundle: Bundle): Record<string, unknown> {
    return overlay(bundle).doc;
  }

  function smokeCheck(evaluator: WasmEvaluator): void {
    if (options.smoke === undefined) return;
    let decision: Decision;
    try {
      decision = evaluator.decideSync(options.smoke.input, 'smoke-check');
    } catch (cause) {
      throw wrapError('TG_ERR_BUNDLE_INVALID', `${evaluator.bundle.source}: the smoke input does not evaluate`, cause);
    }
    if (options.smoke.expectAllowed !== undefined && decision.allowed !== options.smoke.expectAllowed) {
      throw new TollgateError(
        'TG_ERR_BUNDLE_INVALID',
        `${evaluator.bundle.source}: the smoke input was ${decision.allowed ? 'allowed' : 'denied'}, expected ${options.smoke.expectAllowed ? 'allowed' : 'denied'}`,
      );
    }
  }

  function swapIn(slot: Slot, origin: ActivationOrigin, startedAt: bigint): ActivationEvent {
    const prior = active;
    active = slot; // the swap: one assignment, between two synchronous evaluations
    if (prior !== undefined) previous = prior;
    const event: ActivationEvent = {
      revision: slot.evaluator.info.revision,
      previousRevision: prior?.evaluator.info.revision,
      source: slot.evaluator.bundle.source,
      origin,
      prepareMs: Number(process.hrtime.bigint() - startedAt) / 1e6,
    };
    safely(() => hooks.onActivate?.(event));
    return event;
  }

  async function prepare(bundle: Bundle, origin: ActivationOrigin): Promise<ActivationEvent> {
    const startedAt = process.hrtime.bigint();
    let reason: RejectionReason = 'invalid';
    try {
      if (options.verifier !== undefined) options.verifier.verify(bundle);
      const data = overlay(bundle);
      // JSON text for off-thread loading: the bundle's own data.json when nothing is layered over it.
      const plain = Object.keys(options.data ?? {}).length === 0 && filePatch.length === 0 && apiPatches.length === 0;
      const dataJson = plain
        ? (bundle.files?.get('/data.json') ?? Buffer.from('{}'))
        : Buffer.from(JSON.stringify(data.doc));
      const evaluator = await createWasmEvaluator({
        bundle,
        decisionPath: options.decisionPath,
        timeoutMs: options.timeoutMs,
        document: data.doc,
        dataJson,
      });
      reason = 'smoke';
      smokeCheck(evaluator);
      // Only now, with the bundle accepted, drop overlay patches that no longer apply to it.
      apiPatches = data.kept;
      for (const d of data.dropped) {
        safely(() =>
          hooks.onDataChange?.({
            origin: 'dropped',
            patch: d.patch,
            revision: bundle.manifest.revision,
            dataVersion,
            timestamp: new Date().toISOString(),
            error: d.error,
          }),
        );
      }
      return swapIn({ evaluator, activatedAt: new Date().toISOString() }, origin, startedAt);
    } catch (err) {
      const error =
        err instanceof SignatureError ? err : wrapError('TG_ERR_BUNDLE_INVALID', `${bundle.source}: rejected`, err);
      if (err instanceof SignatureError) reason = err.failure;
      safely(() =>
        hooks.onReject?.({
          source: bundle.source,
          origin,
          reason,
          error,
          activeRevision: active?.evaluator.info.revision,
        }),
      );
      throw error;
    }
  }

  function require(): Slot {
    if (active === undefined) throw new TollgateError('TG_ERR_PDP_UNAVAILABLE', 'no policy bundle is active yet');
    return active;
  }

  function applyLayers(): void {
    const slot = require();
    slot.evaluator.setData(effectiveData(slot.evaluator.bundle));
  }

  function dataEvent(origin: DataChangeEvent['origin'], patch: readonly PatchOperation[]): DataChangeEvent {
    dataVersion += 1;
    const event: DataChangeEvent = {
      origin,
      patch,
      revision: require().evaluator.info.revision,
      dataVersion,
      timestamp: new Date().toISOString(),
    };
    safely(() => hooks.onDataChange?.(event));
    return event;
  }

  function decideNow(input: PolicyInput, decisionId: string, path?: string): Decision {
    // Read the reference once: this evaluation runs to completion on this policy.
    const slot = active;
    if (slot === undefined) throw new TollgateError('TG_ERR_PDP_UNAVAILABLE', 'no policy bundle is active yet');
    return slot.evaluator.decideSync(input, decisionId, path);
  }

  return {
    decide(input: PolicyInput, decisionId: string, path?: string): Promise<Decision> {
      try {
        return Promise.resolve(decideNow(input, decisionId, path));
      } catch (error) {
        return Promise.reject(error);
      }
    },
    decideNow,
    info(): PolicyInfo | undefined {
      return active?.evaluator.info;
    },
    activate: (bundle, origin) => serial(() => prepare(bundle, origin)),
    rollback: () =>
      serial(async () => {
        const startedAt = process.hrtime.bigint();
        if (previous === undefined)
          throw new TollgateError('TG_ERR_BUNDLE_INVALID', 'no previous revision to roll back to');
        const target = previous;
        target.evaluator.setData(effectiveData(target.evaluator.bundle));
        return swapIn({ evaluator: target.evaluator, activatedAt: new Date().toISOString() }, 'rollback', startedAt);
      }),
    patchData(patch, origin) {
      const slot = require();
      // Validate against the current document first: a patch that does not apply changes nothing.
      let next: Record<string, unknown>;
      try {
        next = applyPatch(effectiveData(slot.evaluator.bundle), patch);
      } catch (err) {
        throw wrapError('TG_ERR_BAD_REQUEST', 'the patch does not apply', err);
      }
      slot.evaluator.setData(next);
      apiPatches.push(patch);
      return dataEvent(origin, patch);
    },
    setFilePatch(patch) {
      const slot = require();
      const prior = filePatch;
      filePatch = patch;
      try {
        applyPatch(mergeData(slot.evaluator.bundle.data, options.data ?? {}), patch);
        applyLayers();
      } catch (err) {
        filePatch = prior;
        throw wrapError('TG_ERR_BAD_REQUEST', "the watched data file's patch does not apply", err);
      }
      return dataEvent('file', patch);
    },
    activeBundle: () => active?.evaluator.bundle,
    status(): SwapStatus {
      return {
        active: active && {
          revision: active.evaluator.info.revision,
          source: active.evaluator.bundle.source,
          activatedAt: active.activatedAt,
        },
        previous: previous && { revision: previous.evaluator.info.revision, source: previous.evaluator.bundle.source },
        dataVersion,
        patches: apiPatches.length + (filePatch.length > 0 ? 1 : 0),
      };
    },
    close: () => Promise.resolve(),
  };
}
