/**
 * Loads a big data document into a WASM policy without blocking the event loop.
 *
 * opa-wasm's setData parses the JSON inside WebAssembly, synchronously: ~100 ms per MB,
 * during which no request is served. Here a worker thread instantiates the same module,
 * loads the data, and sends back a copy of its linear memory; the main thread
 * instantiates the module with a memory of that size, copies the snapshot in (a memcpy:
 * milliseconds) and points the policy at the data. The policy's whole state — the data
 * tree, the allocator's heap pointer and free lists (static C variables) — lives in linear
 * memory, so the copy is the loaded policy. Used for documents above a threshold; the
 * caller falls back to setData on the main thread if anything here fails.
 */
import { Worker } from 'node:worker_threads';
import { loadPolicy, type LoadedPolicy } from '@open-policy-agent/opa-wasm';

/** Documents at least this large (bytes of JSON) are loaded off the main thread. */
export const OFFLOAD_MIN_BYTES = 256 * 1024;

const PAGE = 64 * 1024;

interface Snapshot {
  readonly ok: true;
  readonly memory: ArrayBuffer;
  readonly dataAddr: number;
  readonly baseHeapPtr: number;
  readonly dataHeapPtr: number;
}

function runWorker(wasm: Uint8Array, data: Uint8Array): Promise<Snapshot> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./wasm-data-worker.ts', import.meta.url), { workerData: { wasm, data } });
    let settled = false;
    worker.once('message', (msg: Snapshot | { ok: false; error: string }) => {
      settled = true;
      void worker.terminate();
      if (msg.ok) resolve(msg);
      else reject(new Error(msg.error));
    });
    worker.once('error', (err) => {
      settled = true;
      reject(err);
    });
    worker.once('exit', (code) => {
      if (!settled) reject(new Error(`data worker exited with ${code}`));
    });
  });
}

/** Instantiates `wasm` with `data` (JSON text) loaded by a worker thread. */
export async function instantiateWithData(wasm: Uint8Array, data: Uint8Array): Promise<LoadedPolicy> {
  const snapshot = await runWorker(wasm, data);
  const policy = await loadPolicy(wasm, { initial: snapshot.memory.byteLength / PAGE });
  const p = policy as unknown as {
    mem: { buffer: ArrayBuffer };
    dataAddr: number;
    baseHeapPtr: number;
    dataHeapPtr: number;
  };
  if (p.mem.buffer.byteLength !== snapshot.memory.byteLength) throw new Error('memory size differs from the snapshot');
  new Uint8Array(p.mem.buffer).set(new Uint8Array(snapshot.memory));
  p.dataAddr = snapshot.dataAddr;
  p.baseHeapPtr = snapshot.baseHeapPtr;
  p.dataHeapPtr = snapshot.dataHeapPtr;
  return policy;
}
