/**
 * The one place that turns "no decision could be made" into allow or deny,
 * driven by failureModeAllow and its per-destination list (Envoy's failure_mode_allow).
 */
import type { Config } from '../config/schema.ts';

/** What a PDP failure does to a request. */
export type FailureMode = 'allow' | 'deny';

/** The failure mode for a destination host. */
export function failureMode(pdp: Config['pdp'], host: string): FailureMode {
  return pdp.failureModeAllow || pdp.failureModeAllowHosts.includes(host) ? 'allow' : 'deny';
}
