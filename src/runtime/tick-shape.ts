/**
 * Keeps Node's process.nextTick fast after the sidecar has been quiet. Node builds each entry
 * of its nextTick queue as an object literal with computed keys. V8 keeps those property
 * stores fast only while their feedback names the same object shapes (maps) every time, and
 * it holds the maps between the empty literal and the full entry only through a live entry.
 * A full garbage collection while no entry is queued (an idle collection, V8's own memory
 * reducer after a quiet period) frees them; the next entry is built with new maps, and that
 * feedback turns megamorphic for the life of the process: four runtime calls on every
 * nextTick, several per request, measured at ~5 % of the proxy's CPU under load
 * (bench/RESULTS.md, "Footprint"). Holding one entry for good keeps the maps.
 *
 * The entry is caught with an async_hooks init hook enabled for one nextTick call only.
 */
import { createHook } from 'node:async_hooks';

let kept: object | undefined;

const noop = (): void => {};

/** Keeps one nextTick entry alive for the life of the process; whether it could (once is enough). */
export function keepTickEntryShape(): boolean {
  if (kept !== undefined) return true;
  const hook = createHook({
    init(_asyncId, type, _triggerAsyncId, resource) {
      if (type === 'TickObject') kept ??= resource;
    },
  });
  hook.enable();
  try {
    process.nextTick(noop);
  } finally {
    hook.disable();
  }
  return kept !== undefined;
}
