/**
 * Keeps V8's background threads from stealing the CPU request handling needs. V8 runs
 * concurrent marking, sweeping and optimising compilation on its worker threads ("V8Worker"),
 * at the same priority as the main thread that handles every request. A sidecar usually has
 * one CPU or less: when a burst of background work starts (a major GC's marking, a batch of
 * functions reaching the optimising compiler), the kernel shares that CPU fairly between the
 * main thread and every busy worker, and requests queue behind them for tens to hundreds of
 * milliseconds (bench/RESULTS.md, "Footprint"). Made nicer, the workers still get the CPU
 * the main thread leaves idle, which at a sidecar's load is most of it. Under sustained
 * saturation they mark and compile slower, so the heap peaks higher before a collection
 * completes; what waited for them longest, finished Maglev compilations holding their
 * compiler memory, the main thread frees itself (bin/node-defaults.js).
 *
 * Linux only: a thread's nice value is set with setpriority(PRIO_PROCESS, tid), which Node's
 * os.setPriority calls; raising it needs no privilege. libuv's threads (file system, DNS) are
 * left alone: the main thread waits for them.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/** Linux's nicest value. */
const NICEST = 19;

/** The ids of this process's threads named `name` (Linux), or [] where /proc is not there. */
export function threadsNamed(name: string): number[] {
  let tasks: string[];
  try {
    tasks = readdirSync('/proc/self/task');
  } catch {
    return [];
  }
  const ids: number[] = [];
  for (const task of tasks) {
    try {
      if (readFileSync(`/proc/self/task/${task}/comm`, 'utf8').trim() === name) ids.push(Number(task));
    } catch {
      // The thread ended while the list was read.
    }
  }
  return ids;
}

/** What lowerBackgroundPriority did. */
export interface PriorityOutcome {
  /** V8 worker threads found. */
  readonly workers: number;
  /** Their nice value now (undefined when there were none to change). */
  readonly nice: number | undefined;
}

/**
 * Makes V8's worker threads `delta` nicer than the main thread (at most 19). A worker already
 * at that value or nicer is left as it is: lowering a nice value needs a privilege. 0 leaves
 * every thread unchanged.
 */
export function lowerBackgroundPriority(delta: number): PriorityOutcome {
  const workers = threadsNamed('V8Worker');
  if (delta <= 0 || workers.length === 0) return { workers: workers.length, nice: undefined };
  const nice = Math.min(NICEST, getPriority(0) + delta);
  for (const tid of workers) {
    try {
      if (getPriority(tid) < nice) setPriority(tid, nice);
    } catch {
      // The thread ended, or this platform has no per-thread priority: nothing to keep from it.
    }
  }
  return { workers: workers.length, nice };
}
