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

/** The parts of opa-wasm's LoadedPolicy the direct evaluation uses (ABI 1.2's one-call opa_eval). */
interface PolicyInternals {
  readonly minorVersion?: unknown;
  readonly mem?: unknown;
  readonly dataAddr?: unknown;
  readonly dataHeapPtr?: unknown;
  readonly wasmInstance?: { readonly exports?: { readonly opa_eval?: unknown } };
}

/** A WebAssembly.Memory, as far as the direct evaluation uses it. */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}

function isWasmMemory(value: unknown): value is WasmMemory {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as WasmMemory).grow === 'function' &&
    (value as WasmMemory).buffer instanceof ArrayBuffer
  );
}

type OpaEval = (
  reserved: number,
  entrypoint: number,
  dataAddr: number,
  inputAddr: number,
  inputLen: number,
  heapPtr: number,
  format: number,
) => number;

/**
 * Evaluates as opa-wasm's evaluate() does on ABI 1.2, without its per-call copies: the input
 * JSON is written straight into WASM memory at the heap pointer, and the result is found with
 * a native search for its terminating NUL and decoded in place (opa-wasm builds a TextEncoder
 * and a TextDecoder per call and scans for the NUL byte by byte in JavaScript).
 * Undefined when the policy is not ABI 1.2 or opa-wasm's fields are not where they are
 * expected: evaluate() is used then.
 */
export function directEvaluation(
  policy: LoadedPolicy,
): ((inputJson: string, entrypoint: number) => unknown) | undefined {
  const internals = policy as unknown as PolicyInternals;
  const opaEval = internals.wasmInstance?.exports?.opa_eval;
  const mem = internals.mem;
  if (
    typeof internals.minorVersion !== 'number' ||
    internals.minorVersion < 2 ||
    typeof opaEval !== 'function' ||
    !isWasmMemory(mem) ||
    typeof internals.dataHeapPtr !== 'number' ||
    typeof internals.dataAddr !== 'number'
  )
    return undefined;
  const evaluate = opaEval as OpaEval;
  let bytes = Buffer.from(mem.buffer);
  // Growing the memory detaches the old buffer (its views then have length 0): the view is
  // remade only then, so the hot path does not ask the memory for its buffer.
  const view = (): Buffer => (bytes.length !== 0 ? bytes : (bytes = Buffer.from(mem.buffer)));
  return (inputJson, entrypoint) => {
    // setData moves both: read them per evaluation.
    const inputAddr = internals.dataHeapPtr as number;
    const dataAddr = internals.dataAddr as number;
    // UTF-8 needs at most 3 bytes per UTF-16 code unit: with that much room the text is written
    // whole without measuring it first. Only when that room is missing is it measured exactly.
    let out = view();
    if (inputAddr + inputJson.length * 3 > out.length) {
      const short = inputAddr + Buffer.byteLength(inputJson, 'utf8') - out.length;
      if (short > 0) mem.grow(Math.ceil(short / 65536));
      out = view();
    }
    const written = out.write(inputJson, inputAddr, 'utf8');
    const resultAddr = evaluate(0, entrypoint, dataAddr, inputAddr, written, inputAddr + written, 0);
    // The evaluation may have grown the memory.
    out = view();
    const end = out.indexOf(0, resultAddr);
    return JSON.parse(out.toString('utf8', resultAddr, end < 0 ? out.length : end));
  };
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
  // Hot path: resolve the entrypoint id once and evaluate without opa-wasm's per-call copies.
  const entrypoint = (policy.entrypoints as Record<string, number>)[options.decisionPath]!;
  const direct = directEvaluation(policy);
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
    let json: string;
    try {
      json = JSON.stringify(input);
      resultSet = direct === undefined ? policy.evaluate(encoder.encode(json).buffer, id) : direct(json, id);
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
    return decisionFromResult(result, {
      decisionId,
      revision: info.revision,
      evalNanos: Number(elapsed),
      inputJson: { input, text: json },
    });
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
    decideNow: (input, decisionId, path) => evaluator.decideSync(input, decisionId, path),
    info: () => evaluator.info,
    close: () => Promise.resolve(),
  };
}
