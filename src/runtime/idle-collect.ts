/**
 * Gives memory back when the sidecar goes quiet. V8 keeps the heap it grew under load (the
 * young generation at its maximum, old-space pages freed but not returned) and, in a
 * process whose allocation stopped, its own memory reducer often never runs, so a sidecar
 * that served one burst keeps that burst's footprint for good. Once started, and after a
 * quiet period that followed traffic, this runs one memory-reducing full collection
 * (V8's "last resort" flavour: compacts, shrinks the young generation to its minimum and
 * releases freed pages), then returns the C heap's free pages too (glibc's malloc_trim: the
 * memory HTTP/2 sessions, sockets and Buffers freed stays in malloc's arenas otherwise). It
 * runs at most once per quiet period, never while decisions are being made, and costs tens of
 * milliseconds of main-thread time when it does.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { libcFunction } from './libc.ts';

/** V8's gc() with its options object (Node 24: type, execution, flavor). */
type GcFunction = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

/** The memory-reducing collection, or undefined when this runtime does not offer one. */
export function memoryReducingCollection(): (() => void) | undefined {
  try {
    // --expose-gc for one fresh context only: gc() is not put on the sidecar's own global.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as GcFunction | undefined;
    setFlagsFromString('--no-expose-gc');
    if (typeof gc !== 'function') return undefined;
    return () => gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  } catch {
    return undefined;
  }
}

/**
 * glibc's malloc_trim(0): gives the free pages of every malloc arena back to the system, not
 * only the top of the main one as free() does. Undefined without glibc (or koffi).
 */
export function mallocTrim(): (() => void) | undefined {
  const trim = libcFunction<(pad: number) => number>('int malloc_trim(size_t pad)');
  return trim === undefined ? undefined : () => void trim(0);
}

/** V8's memory-reducing collection, then malloc_trim where there is one. */
function giveMemoryBack(): (() => void) | undefined {
  const gc = memoryReducingCollection();
  if (gc === undefined) return undefined;
  const trim = mallocTrim();
  return trim === undefined
    ? gc
    : () => {
        gc();
        trim();
      };
}

/** The idle collector: touched on every decision; closed with the sidecar. */
export interface IdleCollector {
  /** Notes activity (one integer increment: it is on every request's path). */
  touch(): void;
  /** Collects now (after start, once every listener is up). */
  collectNow(): void;
  /** One look at the activity count, collecting when a whole period was quiet after traffic (the timer calls it every quietMs). */
  tick(): void;
  close(): void;
}

/** Options of createIdleCollector. */
export interface IdleCollectorOptions {
  /** Quiet time after traffic before collecting, in milliseconds (> 0). */
  readonly quietMs: number;
  /** The collection (default: V8's memory-reducing collection, then malloc_trim). */
  readonly collect?: (() => void) | undefined;
  /** Called after each collection with how long it took, in milliseconds. */
  readonly onCollect?: (ms: number) => void;
}

/** An idle collector that does nothing (quietMs 0, or no collection available). */
const NOOP: IdleCollector = { touch() {}, collectNow() {}, tick() {}, close() {} };

/**
 * Creates the idle collector. Every quietMs it looks at the activity count: if it moved,
 * traffic is going on and it waits; if it did not move and there was traffic since the last
 * collection, the sidecar has been quiet for a whole period and it collects once.
 */
export function createIdleCollector(options: IdleCollectorOptions): IdleCollector {
  const collect = 'collect' in options ? options.collect : giveMemoryBack();
  if (collect === undefined || options.quietMs <= 0) return NOOP;
  let activity = 0;
  let seen = 0;
  let dirty = false;
  const run = (): void => {
    const started = performance.now();
    collect();
    options.onCollect?.(performance.now() - started);
  };
  const tick = (): void => {
    if (activity !== seen) {
      seen = activity;
      dirty = true;
    } else if (dirty) {
      dirty = false;
      run();
    }
  };
  const timer = setInterval(tick, options.quietMs);
  timer.unref();
  return {
    touch() {
      activity++;
    },
    collectNow: run,
    tick,
    close() {
      clearInterval(timer);
    },
  };
}
