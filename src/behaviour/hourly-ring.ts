/**
 * One signal's history: a ring of hourly sums covering the current hour and the
 * `hours` complete hours before it. Adding is O(1); reading is O(1) because the ring
 * keeps its running total (a bucket leaving the window is subtracted when the ring
 * advances over it). Memory is (hours + 1) doubles: 169 × 8 bytes for 7 days.
 */

/** Milliseconds in an hour bucket. */
export const HOUR_MS = 3_600_000;

/** A ring of hourly sums. */
export interface HourlyRing {
  readonly buckets: Float64Array;
  /** Index (epoch hours) of the current bucket. */
  hour: number;
  /** Sum of every bucket in the ring. */
  total: number;
}

/** What a ring says at one moment. */
export interface RingReading {
  /** Sliding-window estimate of the last 60 minutes: this hour's sum plus the unexpired share of the previous hour's. */
  readonly hour: number;
  /** Mean hourly sum over the complete hours observed (at most the ring's span); undefined before one complete hour. */
  readonly baselineHourlyAvg: number | undefined;
  /** Complete hours the baseline covers. */
  readonly baselineHours: number;
}

/** Creates an empty ring spanning `hours` complete hours plus the current one, starting at `nowMs`. */
export function createHourlyRing(hours: number, nowMs: number): HourlyRing {
  return { buckets: new Float64Array(hours + 1), hour: Math.floor(nowMs / HOUR_MS), total: 0 };
}

/** Moves the ring to the hour of `nowMs`, emptying the buckets it passes over (a clock going back is ignored). */
export function advanceRing(ring: HourlyRing, nowMs: number): void {
  const hour = Math.floor(nowMs / HOUR_MS);
  if (hour <= ring.hour) return;
  const n = ring.buckets.length;
  const steps = Math.min(hour - ring.hour, n);
  for (let i = 1; i <= steps; i++) {
    const slot = (ring.hour + i) % n;
    ring.total -= ring.buckets[slot]!;
    ring.buckets[slot] = 0;
  }
  // Whole-ring wipe: recompute instead of carrying float residue.
  if (steps === n) ring.total = 0;
  ring.hour = hour;
}

/** Adds `value` to the current hour's bucket. */
export function addToRing(ring: HourlyRing, nowMs: number, value: number): void {
  advanceRing(ring, nowMs);
  ring.buckets[ring.hour % ring.buckets.length]! += value;
  ring.total += value;
}

/**
 * Reads the ring at `nowMs`. `firstHour` is the epoch hour the agent was first seen: a
 * baseline averages only hours the agent existed, so a new agent's first day is not
 * diluted by six empty days.
 */
export function readRing(ring: HourlyRing, nowMs: number, firstHour: number): RingReading {
  advanceRing(ring, nowMs);
  const n = ring.buckets.length;
  const current = ring.buckets[ring.hour % n]!;
  const previous = ring.hour > firstHour ? ring.buckets[(ring.hour - 1 + n) % n]! : 0;
  const elapsed = (nowMs - ring.hour * HOUR_MS) / HOUR_MS;
  const baselineHours = Math.min(n - 1, Math.max(0, ring.hour - firstHour));
  // max(0, …): float residue of the running total must never read as a negative baseline.
  const baselineSum = Math.max(0, ring.total - current);
  return {
    hour: current + previous * Math.max(0, 1 - elapsed),
    baselineHourlyAvg: baselineHours > 0 ? baselineSum / baselineHours : undefined,
    baselineHours,
  };
}
