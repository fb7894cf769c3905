/**
 * The identity resolver the decision step calls once per request: which agent is
 * calling, from the strongest evidence present. In order: a token in the request
 * header (HS256 for local use, or a JWT verified against an issuer's JWKS — the
 * token's alg chooses), then the connection's verified SVID (mTLS proxy listener, a
 * tunnel opened over it) or, on the ext_authz server, Envoy's principal or
 * x-forwarded-client-cert, then the configured agent. Evidence that fails
 * verification is refused (401 TG_ERR_IDENTITY naming why) and never falls back to
 * a weaker source: the request never reaches the policy as anyone.
 */
import { TollgateError } from '../errors.ts';
import type { AgentIdentity } from '../input/build.ts';
import type { IdentityConfig } from '../config/schema.ts';
import { verifyAgentToken } from './hs256.ts';
import { createJwtVerifier, tokenAlgorithm, type JwtVerifier } from './jwt.ts';
import { agentFromSpiffeId, spiffeIdOfXfcc } from './spiffe.ts';

/** What a request shows about its caller. */
export interface IdentityEvidence {
  /** The door, as in the decision step: "tunnel" principals were set by Tollgate, "extauthz" ones by Envoy. */
  readonly door: 'http' | 'upgrade' | 'tunnel' | 'extauthz';
  /** Request headers, lowercase names. */
  readonly headers: Readonly<Record<string, string>> | undefined;
  /** The SPIFFE ID of the SVID the connection presented and Tollgate verified (HTTP doors). */
  readonly peerSpiffeId?: string | undefined;
  /** attributes.source.principal of a CheckRequest. */
  readonly principal?: string | undefined;
}

/** The resolver's answer; tokenHeader names the header holding a token, to be removed either way. */
export type IdentityOutcome =
  | { readonly kind: 'configured'; readonly tokenHeader?: undefined }
  | { readonly kind: 'verified'; readonly agent: AgentIdentity; readonly tokenHeader?: string | undefined }
  | { readonly kind: 'refused'; readonly error: TollgateError; readonly tokenHeader?: string | undefined };

/** Resolves the agent of a request. */
export interface IdentityResolver {
  resolve(evidence: IdentityEvidence): IdentityOutcome | Promise<IdentityOutcome>;
  /** Headers that carry agent tokens (lowercase): never forwarded, masked in the decision log. */
  readonly tokenHeaders: readonly string[];
}

const CONFIGURED: IdentityOutcome = Object.freeze({ kind: 'configured' });

function refused(message: string, tokenHeader?: string): IdentityOutcome {
  return { kind: 'refused', error: new TollgateError('TG_ERR_IDENTITY', message), tokenHeader };
}

/** The token of a header value: RFC 6750 "Bearer <token>" or the bare token. */
function bearer(value: string): string {
  const trimmed = value.trim();
  return /^bearer\s+/i.test(trimmed) ? trimmed.replace(/^bearer\s+/i, '') : trimmed;
}

/** Options of createIdentityResolver: agent.token and agent.identity of a validated config. */
export interface IdentityResolverOptions {
  readonly token?: { readonly header: string; readonly secret: string } | undefined;
  readonly identity?: IdentityConfig | undefined;
}

/** agent.identity when none is given: no issuer, no mTLS, Envoy's claims not trusted. */
const NO_IDENTITY: IdentityConfig = {
  required: false,
  spiffe: { trustDomains: [], idFrom: 'spiffe-id', agents: {} },
  extAuthz: { principal: false, xfccHeader: '' },
};

/** Creates the resolver of a validated agent config. */
export function createIdentityResolver(options: IdentityResolverOptions): IdentityResolver {
  const identity = options.identity ?? NO_IDENTITY;
  const hs256 =
    options.token === undefined
      ? undefined
      : { header: options.token.header.toLowerCase(), secret: options.token.secret };
  const jwtHeader = identity.jwt?.header.toLowerCase();
  const jwt: JwtVerifier | undefined = identity.jwt === undefined ? undefined : createJwtVerifier(identity.jwt.issuers);
  const tokenHeaders = [...new Set([hs256?.header, jwtHeader].filter((h): h is string => h !== undefined))];
  const { principal: trustPrincipal, xfccHeader } = identity.extAuthz;
  const xfcc = xfccHeader === '' ? undefined : xfccHeader.toLowerCase();
  const nothing: IdentityOutcome = identity.required
    ? refused(
        'no verified agent identity: present a token, an X.509 SVID over mTLS, or call through an Envoy that authenticated the agent',
      )
    : CONFIGURED;

  async function fromJwt(token: string, header: string): Promise<IdentityOutcome> {
    try {
      return { kind: 'verified', agent: await jwt!.verify(token), tokenHeader: header };
    } catch (err) {
      return { kind: 'refused', error: err as TollgateError, tokenHeader: header };
    }
  }

  function fromToken(value: string, header: string): IdentityOutcome | Promise<IdentityOutcome> {
    const token = bearer(value);
    const useHs256 = hs256?.header === header && (jwtHeader !== header || tokenAlgorithm(token) === 'HS256');
    if (!useHs256) return fromJwt(token, header);
    try {
      return { kind: 'verified', agent: verifyAgentToken(token, hs256.secret), tokenHeader: header };
    } catch (err) {
      return { kind: 'refused', error: err as TollgateError, tokenHeader: header };
    }
  }

  function fromSpiffeId(id: string): IdentityOutcome {
    try {
      return { kind: 'verified', agent: agentFromSpiffeId(id, identity.spiffe) };
    } catch (err) {
      return { kind: 'refused', error: err as TollgateError };
    }
  }

  return {
    tokenHeaders,
    resolve(evidence) {
      const headers = evidence.headers;
      if (headers !== undefined) {
        for (const header of tokenHeaders) {
          const value = headers[header];
          if (value !== undefined) return fromToken(value, header);
        }
      }
      if (evidence.peerSpiffeId !== undefined) return fromSpiffeId(evidence.peerSpiffeId);
      const principal = evidence.principal;
      if (evidence.door === 'tunnel' && principal !== undefined && principal.startsWith('spiffe://'))
        return fromSpiffeId(principal);
      if (evidence.door === 'extauthz') {
        if (trustPrincipal && principal !== undefined && principal !== '') {
          if (principal.startsWith('spiffe://')) return fromSpiffeId(principal);
          return { kind: 'verified', agent: { id: principal, role: '', labels: {} } };
        }
        const forwarded = xfcc === undefined ? undefined : headers?.[xfcc];
        if (forwarded !== undefined) {
          try {
            return fromSpiffeId(spiffeIdOfXfcc(forwarded));
          } catch (err) {
            return { kind: 'refused', error: err as TollgateError };
          }
        }
      }
      return nothing;
    },
  };
}

/** The resolver a test or a door without configuration uses: every request is the configured agent. */
export const CONFIGURED_ONLY: IdentityResolver = Object.freeze({ tokenHeaders: [], resolve: () => CONFIGURED });
