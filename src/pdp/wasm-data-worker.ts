/**
 * Worker side of wasm-offload.ts: instantiates a policy, loads its data document (the
 * slow part: opa_json_parse of megabytes of JSON inside WebAssembly) and hands back a
 * snapshot of the linear memory plus the data pointers, so the main thread never blocks
 * on it. Not imported by anything; started as a worker.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { loadPolicy } from '@open-policy-agent/opa-wasm';

interface Job {
  readonly wasm: Uint8Array;
  readonly data: Uint8Array;
}

const job = workerData as Job;
try {
  const policy = await loadPolicy(job.wasm);
  // An ArrayBuffer is taken as JSON text as is (no JSON.stringify round trip).
  policy.setData(job.data.buffer.slice(job.data.byteOffset, job.data.byteOffset + job.data.byteLength) as ArrayBuffer);
  const p = policy as unknown as {
    mem: { buffer: ArrayBuffer };
    dataAddr: number;
    baseHeapPtr: number;
    dataHeapPtr: number;
  };
  const memory = p.mem.buffer.slice(0);
  parentPort!.postMessage(
    { ok: true, memory, dataAddr: p.dataAddr, baseHeapPtr: p.baseHeapPtr, dataHeapPtr: p.dataHeapPtr },
    [memory],
  );
} catch (err) {
  parentPort!.postMessage({ ok: false, error: typeof err === 'string' ? err : (err as Error).message });
}
