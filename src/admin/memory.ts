/**
 * Where the sidecar's memory goes, for `GET /debug/memory` on the admin listener: the
 * process's RSS split into anonymous and file-backed pages (Linux), V8's heap by space,
 * code and external memory (WASM linear memory and Buffers are ArrayBuffers, counted in
 * `arrayBuffers`). Read-only figures about this process; no request data.
 */
import { readFileSync } from 'node:fs';
import { getHeapCodeStatistics, getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';

/** One heap space in KiB. */
export interface HeapSpaceReport {
  readonly sizeKb: number;
  readonly usedKb: number;
}

/** The memory report (all sizes in KiB). */
export interface MemoryReport {
  readonly rssKb: number;
  /** Linux /proc/self/status RssAnon / RssFile (absent elsewhere). */
  readonly rssAnonKb?: number;
  readonly rssFileKb?: number;
  readonly heapTotalKb: number;
  readonly heapUsedKb: number;
  readonly externalKb: number;
  readonly arrayBuffersKb: number;
  readonly codeKb: number;
  readonly mallocedKb: number;
  readonly spaces: Readonly<Record<string, HeapSpaceReport>>;
}

const kb = (bytes: number): number => Math.round(bytes / 1024);

function procStatus(): { rssAnonKb?: number; rssFileKb?: number } {
  try {
    const text = readFileSync('/proc/self/status', 'utf8');
    const field = (name: string): number | undefined => {
      const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text);
      return m === null ? undefined : Number(m[1]);
    };
    const anon = field('RssAnon');
    const file = field('RssFile');
    return { ...(anon === undefined ? {} : { rssAnonKb: anon }), ...(file === undefined ? {} : { rssFileKb: file }) };
  } catch {
    return {};
  }
}

/** The current process's memory, by kind. */
export function memoryReport(): MemoryReport {
  const usage = process.memoryUsage();
  const heap = getHeapStatistics();
  const code = getHeapCodeStatistics();
  const spaces: Record<string, HeapSpaceReport> = {};
  for (const space of getHeapSpaceStatistics()) {
    spaces[space.space_name] = { sizeKb: kb(space.space_size), usedKb: kb(space.space_used_size) };
  }
  return {
    rssKb: kb(usage.rss),
    ...procStatus(),
    heapTotalKb: kb(usage.heapTotal),
    heapUsedKb: kb(usage.heapUsed),
    externalKb: kb(usage.external),
    arrayBuffersKb: kb(usage.arrayBuffers),
    codeKb: kb(code.code_and_metadata_size + code.bytecode_and_metadata_size),
    mallocedKb: kb(heap.malloced_memory),
    spaces,
  };
}
