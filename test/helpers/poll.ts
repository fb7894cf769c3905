/**
 * Polling a condition with a deadline: the only waiting tests do besides awaiting
 * events. Never a fixed sleep as synchronisation: each wait re-checks the condition.
 */
import { setTimeout as delay } from 'node:timers/promises';

/** Time between two checks of a polled condition. */
export const POLL_INTERVAL_MS = 100;

/** Waits one polling interval. */
export function pollPause(): Promise<void> {
  return delay(POLL_INTERVAL_MS);
}
