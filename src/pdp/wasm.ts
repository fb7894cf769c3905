/**
 * The in-process PDP: an OPA policy compiled to WebAssembly, evaluated with
 * @open-policy-agent/opa-wasm. That library throws strings and objects; every
 * throw is converted to a TollgateError here. Evaluation is synchronous and fast
 * (microseconds); an evaluation that overruns the deadline is discarded and the
 * failure mode applies, since a running WASM call cannot be preempted on the main thread.
 */
import { loadPolicy, type LoadedPolicy } from '@open-policy-agent/opa-wasm';
import { TollgateError, wrapError } from '../errors.ts';
import type { Bundle } from '../bundle/load.ts';
import type { PolicyInput } from '../input/build.ts';
import { decisionFromResult } from './result.ts';
import { instantiateWithData, OFFLOAD_MIN_BYTES } from './wasm-offload.ts';
import type { Decision, Pdp, PolicyInfo } from './types.ts';

/** Options of createWasmPdp. */
export interface WasmPdpOptions {
  readonly bundle: Bundle;
  readonly decisionPath: string;
  /** Data merged over the bundle's data.json. */
  readonly data?: Readonly<Record<string, unknown>>;
  readonly timeoutMs: number;
  /** The exact data document to load instead of bundle data ⊕ data (live-data overlays computed by the caller). */
  readonly document?: Record<string, unknown>;
  /** The same document as JSON text, when the caller has it (large ones load off the main thread). */
  readonly dataJson?: Uint8Array;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Deep merge: objects merge key by key, anything else replaces. */
export function mergeData(
  base: Record<string, unknown>,
  overlay: Readonly<Record<string, unknown>>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(overlay)) {
    const prior = out[key];
    out[key] = isObject(prior) && isObject(value) ? mergeData(prior, value) : value;
  }
  return out;
}

function checkEntrypoint(bundle: Bundle, policy: LoadedPolicy, decisionPath: string): void {
  const entrypoints = Object.keys((policy.entrypoints ?? {}) as Record<string, number>);
  if (!entrypoints.includes(decisionPath)) {
    throw new TollgateError(
      'TG_ERR_BUNDLE_INVALID',
      `${bundle.source}: decision path "${decisionPath}" is not an entrypoint of policy.wasm (entrypoints: ${entrypoints.join(', ') || 'none'}); build with opa build -t wasm -e ${decisionPath}`,
    );
  }
}

/**
 * Instantiates a bundle's policy.wasm, checking the decision path is one of its entrypoints.
 * `dataJson` (the document as JSON text) of OFFLOAD_MIN_BYTES or more is loaded by a worker
 * thread (wasm-offload.ts), so a 10 MB data document does not stall request handling; any
 * failure there falls back to loading on this thread, which reports the real problem.
 */
export async function instantiate(
  bundle: Bundle,
  decisionPath: string,
  data: Readonly<Record<string, unknown>> = {},
  document?: Record<string, unknown>,
  dataJson?: Uint8Array,
): Promise<LoadedPolicy> {
  if (dataJson !== undefined && dataJson.byteLength >= OFFLOAD_MIN_BYTES) {
    const offloaded = await instantiateWithData(bundle.wasm, dataJson).catch(() => undefined);
    if (offloaded !== undefined) {
      checkEntrypoint(bundle, offloaded, decisionPath);
      return offloaded;
    }
  }
  let policy: LoadedPolicy;
  try {
    policy = await loadPolicy(bundle.wasm);
  } catch (cause) {
    throw wrapError('TG_ERR_BUNDLE_INVALID', `${bundle.source}: policy.wasm does not instantiate`, cause);
  }
  checkEntrypoint(bundle, policy, decisionPath);
  try {
    policy.setData(document ?? mergeData(bundle.data, data));
  } catch (cause) {
    throw wrapError('TG_ERR_BUNDLE_INVALID', `${bundle.source}: data could not be loaded into the policy`, cause);
  }
  return policy;
}

/** One instantiated bundle: evaluates synchronously, so a swap between two evaluations is atomic. */
export interface WasmEvaluator {
  readonly bundle: Bundle;
  readonly info: PolicyInfo;
  /** Evaluates the decision path (or another entrypoint, `path`); throws a TollgateError when no decision can be made. */
  decideSync(input: PolicyInput, decisionId: string, path?: string): Decision;
  /** Replaces the policy's data document (bundle data merged with overlays). */
  setData(data: Record<string, unknown>): void;
}

/** Instantiates a bundle into an evaluator (off the request path: this compiles the WASM module). */
export async function createWasmEvaluator(options: WasmPdpOptions): Promise<WasmEvaluator> {
  const policy = await instantiate(
    options.bundle,
    options.decisionPath,
    options.data,
    options.document,
    options.dataJson,
  );
  const info: PolicyInfo = {
    kind: 'wasm',
    decisionPath: options.decisionPath,
    revision: options.bundle.manifest.revision,
    entrypoints: Object.keys((policy.entrypoints ?? {}) as Record<string, number>),
  };
  const deadlineNanos = BigInt(options.timeoutMs) * 1_000_000n;
  // Hot path: resolve the entrypoint id once, and hand opa-wasm the input as UTF-8 bytes
  // from one shared encoder (it would otherwise build a TextEncoder per evaluation).
  const entrypoint = (policy.entrypoints as Record<string, number>)[options.decisionPath]!;
  const encoder = new TextEncoder();

  function decideSync(input: PolicyInput, decisionId: string, path?: string): Decision {
    const decisionPath = path ?? options.decisionPath;
    const id = path === undefined ? entrypoint : (policy.entrypoints as Record<string, number>)[path];
    if (id === undefined) {
      throw new TollgateError(
        'TG_ERR_BUNDLE_INVALID',
        `${options.bundle.source}: decision path "${path}" is not an entrypoint of policy.wasm; build with opa build -t wasm -e ${path}`,
      );
    }
    const started = process.hrtime.bigint();
    // The deadline is judged on this thread's CPU time, not wall time: a process that was
    // merely descheduled under load has not run a slow policy, and failing closed on an
    // answer already computed would only turn CPU starvation into denials.
    const cpuStarted = process.threadCpuUsage();
    let resultSet: unknown;
    try {
      resultSet = policy.evaluate(encoder.encode(JSON.stringify(input)).buffer, id);
    } catch (cause) {
      throw wrapError('TG_ERR_POLICY_EVAL', `evaluating ${decisionPath}`, cause);
    }
    const elapsed = process.hrtime.bigint() - started;
    if (elapsed > deadlineNanos) {
      const cpu = process.threadCpuUsage(cpuStarted);
      const cpuNanos = BigInt(cpu.user + cpu.system) * 1000n;
      if (cpuNanos > deadlineNanos) {
        throw new TollgateError(
          'TG_ERR_PDP_TIMEOUT',
          `evaluating ${decisionPath} took ${Number(cpuNanos / 1000n) / 1000} ms of CPU, over the ${options.timeoutMs} ms deadline`,
        );
      }
    }
    if (!Array.isArray(resultSet) || resultSet.length === 0) {
      throw new TollgateError('TG_ERR_POLICY_UNDEFINED', `${decisionPath} is undefined for this input`);
    }
    if (resultSet.length > 1)
      throw new TollgateError('TG_ERR_POLICY_RESULT', `${decisionPath} produced multiple results`);
    const result = (resultSet[0] as { result?: unknown }).result;
    return decisionFromResult(result, { decisionId, revision: info.revision, evalNanos: Number(elapsed) });
  }

  return {
    bundle: options.bundle,
    info,
    decideSync,
    setData(data) {
      try {
        policy.setData(data);
      } catch (cause) {
        throw wrapError(
          'TG_ERR_BUNDLE_INVALID',
          `${options.bundle.source}: data could not be loaded into the policy`,
          cause,
        );
      }
    },
  };
}

/** Creates the WASM PDP over a loaded bundle. */
export async function createWasmPdp(options: WasmPdpOptions): Promise<Pdp> {
  const evaluator = await createWasmEvaluator(options);
  return {
    decide(input, decisionId, path) {
      try {
        return Promise.resolve(evaluator.decideSync(input, decisionId, path));
      } catch (error) {
        return Promise.reject(error);
      }
    },
    info: () => evaluator.info,
    close: () => Promise.resolve(),
  };
}
