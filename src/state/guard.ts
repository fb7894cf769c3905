/**
 * A deadline per store call and a circuit breaker in front of the store, so a dead or
 * slow Redis costs each request at most one deadline and, once the circuit opens, not
 * even that: calls fail at once (the state failure mode applies) until a probe after
 * the cool-down succeeds. Every failure is a TG_ERR_STATE_UNAVAILABLE naming the
 * operation, counted by the caller (tollgate_state_errors_total{operation}).
 */
import { TollgateError } from '../errors.ts';

/** Options of createGuard. */
export interface GuardOptions {
  /** Deadline of one call in milliseconds. */
  readonly timeoutMs: number;
  /** Consecutive failures that open the circuit. */
  readonly failureThreshold: number;
  /** Cool-down before a half-open circuit lets one probe through. */
  readonly openMs: number;
  /** What is guarded, for messages ("redis 127.0.0.1:6379"). */
  readonly target: string;
  /** Called for every failure with the operation name. */
  readonly onError?: (operation: string, error: TollgateError) => void;
  readonly now?: () => number;
}

/** Runs store calls under a deadline and a circuit breaker. */
export interface Guard {
  run<T>(operation: string, call: () => Promise<T>): Promise<T>;
  /** "closed", "open" or "half-open". */
  state(): 'closed' | 'open' | 'half-open';
}

/** Creates a guard. */
export function createGuard(options: GuardOptions): Guard {
  const now = options.now ?? Date.now;
  let failures = 0;
  let openedAt = 0;
  let circuit: 'closed' | 'open' | 'half-open' = 'closed';
  let probing = false;

  function fail(operation: string, error: TollgateError): never {
    failures++;
    if (circuit === 'half-open' || failures >= options.failureThreshold) {
      circuit = 'open';
      openedAt = now();
    }
    options.onError?.(operation, error);
    throw error;
  }

  return {
    state: () => (circuit === 'open' && now() - openedAt >= options.openMs ? 'half-open' : circuit),
    async run(operation, call) {
      if (circuit !== 'closed') {
        if (circuit === 'open' && now() - openedAt >= options.openMs) circuit = 'half-open';
        // Open, or half-open with its one probe already out: fail at once.
        if (circuit === 'open' || probing) {
          const error = new TollgateError(
            'TG_ERR_STATE_UNAVAILABLE',
            `state store ${options.target} circuit is open after ${failures} consecutive failures (${operation})`,
          );
          options.onError?.(operation, error);
          throw error;
        }
      }
      const probe = circuit === 'half-open';
      if (probe) probing = true;
      let timer: NodeJS.Timeout | undefined;
      try {
        const deadline = new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new TollgateError(
                  'TG_ERR_STATE_UNAVAILABLE',
                  `state store ${options.target} did not answer ${operation} within ${options.timeoutMs} ms`,
                ),
              ),
            options.timeoutMs,
          );
        });
        const result = await Promise.race([call(), deadline]);
        failures = 0;
        circuit = 'closed';
        return result;
      } catch (err) {
        const error =
          err instanceof TollgateError && err.code === 'TG_ERR_STATE_UNAVAILABLE'
            ? err
            : new TollgateError(
                'TG_ERR_STATE_UNAVAILABLE',
                `state store ${options.target} failed ${operation}: ${err instanceof Error ? err.message : String(err)}`,
                { cause: err },
              );
        return fail(operation, error);
      } finally {
        clearTimeout(timer);
        if (probe) probing = false;
      }
    },
  };
}
