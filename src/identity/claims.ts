/**
 * Verified JWT claims → input.agent, by configuration. A claim is named by its
 * top-level name ("sub", "https://example.com/role": namespaced claims contain
 * slashes) or by a JSON Pointer when it starts with "/" ("/kubernetes.io/namespace":
 * Kubernetes nests its claims under a key with a dot in it).
 */
import { TollgateError } from '../errors.ts';
import type { AgentIdentity } from '../input/build.ts';
import type { JwtIssuerConfig } from '../config/schema.ts';

/** Which claim feeds each field of input.agent. */
export interface ClaimMapping {
  readonly id: string;
  readonly role: string | undefined;
  readonly labels: Readonly<Record<string, string>>;
}

/** The claims of a Kubernetes projected service-account token, as labels. */
const KUBERNETES_LABELS = {
  namespace: '/kubernetes.io/namespace',
  serviceaccount: '/kubernetes.io/serviceaccount/name',
  pod: '/kubernetes.io/pod/name',
} as const;

/** The mapping of an issuer entry: its preset's defaults, overridden by explicit claims. */
export function claimMapping(issuer: Pick<JwtIssuerConfig, 'preset' | 'claims'>): ClaimMapping {
  const kubernetes = issuer.preset === 'kubernetes';
  return {
    id: issuer.claims.id ?? 'sub',
    role: issuer.claims.role ?? (kubernetes ? undefined : 'role'),
    labels: issuer.claims.labels ?? (kubernetes ? KUBERNETES_LABELS : {}),
  };
}

/** RFC 6901: the value at a JSON Pointer, or a top-level claim by name. */
export function claimAt(claims: Readonly<Record<string, unknown>>, path: string): unknown {
  if (!path.startsWith('/')) return claims[path];
  let value: unknown = claims;
  for (const raw of path.slice(1).split('/')) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
    const key = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    if (!Object.hasOwn(value, key)) return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

/** A claim value as a label string: strings as they are, numbers and booleans printed, string arrays joined. */
function text(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value.join(',');
  return undefined;
}

/** The agent verified claims describe; throws TG_ERR_IDENTITY when the id claim is missing. */
export function agentFromClaims(
  claims: Readonly<Record<string, unknown>>,
  mapping: ClaimMapping,
  issuer: string,
): AgentIdentity {
  const id = text(claimAt(claims, mapping.id));
  if (id === undefined || id === '')
    throw new TollgateError(
      'TG_ERR_IDENTITY',
      `agent token from ${issuer} has no ${mapping.id} claim for the agent id`,
    );
  const labels: Record<string, string> = {};
  for (const [name, path] of Object.entries(mapping.labels)) {
    const value = text(claimAt(claims, path));
    if (value !== undefined) labels[name] = value;
  }
  const role = mapping.role === undefined ? undefined : text(claimAt(claims, mapping.role));
  return { id, role: role ?? '', labels, issuer };
}
