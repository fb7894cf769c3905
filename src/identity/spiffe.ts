/**
 * SPIFFE IDs → input.agent. A SPIFFE ID arrives verified from three places: the URI
 * SAN of the X.509 SVID an agent presented over mTLS (mtls.ts), Envoy's
 * attributes.source.principal, and the URI of an x-forwarded-client-cert element
 * Envoy set. The ID is checked against the SPIFFE ID grammar and the trusted trust
 * domains, then mapped by configuration (an explicit entry, or the ID, its path or
 * its last segment).
 */
import type { PeerCertificate } from 'node:tls';
import { TollgateError } from '../errors.ts';
import type { AgentIdentity } from '../input/build.ts';
import type { SpiffeConfig } from '../config/schema.ts';

/** A parsed SPIFFE ID. */
export interface SpiffeId {
  readonly id: string;
  readonly trustDomain: string;
  readonly path: string;
}

function fail(message: string): TollgateError {
  return new TollgateError('TG_ERR_IDENTITY', message);
}

const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
const SEGMENT = /^[A-Za-z0-9._-]+$/;

/** SPIFFE-ID §2: spiffe://<trust domain>[/<segment>...], lowercase domain, no empty, "." or ".." segment. */
export function parseSpiffeId(value: string): SpiffeId {
  if (!value.startsWith('spiffe://')) throw fail(`${JSON.stringify(value)} is not a spiffe:// ID`);
  const rest = value.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  if (!TRUST_DOMAIN.test(trustDomain)) throw fail(`SPIFFE ID ${JSON.stringify(value)} has an invalid trust domain`);
  if (path !== '') {
    for (const segment of path.slice(1).split('/')) {
      if (!SEGMENT.test(segment) || segment === '.' || segment === '..')
        throw fail(`SPIFFE ID ${JSON.stringify(value)} has an invalid path`);
    }
  }
  return { id: value, trustDomain, path };
}

/** The agent a verified SPIFFE ID stands for; throws TG_ERR_IDENTITY for an untrusted trust domain. */
export function agentFromSpiffeId(value: string, config: SpiffeConfig): AgentIdentity {
  const spiffe = parseSpiffeId(value);
  if (config.trustDomains.length > 0 && !config.trustDomains.includes(spiffe.trustDomain))
    throw fail(
      `SPIFFE ID ${value} is from trust domain ${spiffe.trustDomain}, not one of ${config.trustDomains.join(', ')} (untrusted SVID)`,
    );
  const labels: Record<string, string> = { trust_domain: spiffe.trustDomain };
  // The Kubernetes convention SPIRE and Istio use: /ns/<namespace>/sa/<service account>.
  const k8s = /^\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(spiffe.path);
  if (k8s !== null) {
    labels.namespace = k8s[1]!;
    labels.serviceaccount = k8s[2]!;
  }
  const entry = config.agents[value];
  const derived =
    config.idFrom === 'path'
      ? spiffe.path
      : config.idFrom === 'last-segment'
        ? (spiffe.path.split('/').at(-1) ?? '')
        : value;
  return {
    id: entry?.id ?? (derived === '' ? value : derived),
    role: entry?.role ?? '',
    labels: { ...labels, ...entry?.labels },
    spiffe_id: value,
  };
}

/** The one spiffe:// URI SAN of an X.509 SVID (X509-SVID §2: exactly one URI SAN). */
export function spiffeIdOfCertificate(certificate: PeerCertificate): string {
  const uris = (certificate.subjectaltname ?? '')
    .split(', ')
    .filter((name) => name.startsWith('URI:'))
    .map((name) => name.slice('URI:'.length));
  if (uris.length !== 1 || !uris[0]!.startsWith('spiffe://'))
    throw fail(
      uris.length === 0
        ? 'client certificate has no URI SAN (not an X.509 SVID)'
        : `client certificate has ${uris.length} URI SANs, an X.509 SVID has exactly one spiffe:// URI`,
    );
  return uris[0]!;
}

/**
 * Envoy's x-forwarded-client-cert: comma-separated elements of semicolon-separated
 * key=value pairs (values may be double-quoted). The last element is the one the
 * nearest Envoy appended for the client it authenticated; its URI is the SPIFFE ID.
 */
export function spiffeIdOfXfcc(header: string): string {
  const elements: string[][] = [[]];
  let current = '';
  let quoted = false;
  for (const ch of header) {
    if (ch === '"') quoted = !quoted;
    else if (!quoted && (ch === ';' || ch === ',')) {
      elements.at(-1)!.push(current);
      current = '';
      if (ch === ',') elements.push([]);
    } else current += ch;
  }
  elements.at(-1)!.push(current);
  const last = elements.at(-1)!;
  const uri = last.map((pair) => pair.trim()).find((pair) => pair.toLowerCase().startsWith('uri='));
  if (uri === undefined) throw fail('x-forwarded-client-cert has no URI for the client');
  return uri.slice(4);
}
