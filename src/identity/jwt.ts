/**
 * JWTs from real issuers (OIDC providers, Kubernetes clusters), verified with `jose`
 * against the issuer's JWKS — fetched from a configured URL or found by OIDC
 * discovery, cached, and refetched when a token names an unknown `kid` (key rotation)
 * at most once per cooldown. `iss`, `aud`, `exp` and `nbf` are checked with a clock
 * skew; only asymmetric algorithms are accepted. `jose` is loaded on the first token,
 * so a sidecar that verifies none does not pay for it.
 */
import { TollgateError } from '../errors.ts';
import type { AgentIdentity } from '../input/build.ts';
import type { JwtIssuerConfig } from '../config/schema.ts';
import { agentFromClaims, claimMapping, type ClaimMapping } from './claims.ts';

type Jose = typeof import('jose');
type KeySet = ReturnType<Jose['createRemoteJWKSet']>;

/** Verifies tokens of the configured issuers. */
export interface JwtVerifier {
  /** The agent a token names, or rejects with TG_ERR_IDENTITY naming why. */
  verify(token: string): Promise<AgentIdentity>;
}

let josePromise: Promise<Jose> | undefined;
/** jose, loaded once on first use. */
function loadJose(): Promise<Jose> {
  josePromise ??= import('jose');
  return josePromise;
}

function fail(message: string, cause?: unknown): TollgateError {
  return new TollgateError('TG_ERR_IDENTITY', message, cause === undefined ? undefined : { cause });
}

/** RFC 7519 segments are base64url JSON objects: read one without verifying it. */
function segment(token: string, index: number): Record<string, unknown> | undefined {
  const part = token.split('.')[index];
  if (part === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** The unverified JOSE header `alg` of a compact JWT (chooses HS256 or an issuer). */
export function tokenAlgorithm(token: string): string | undefined {
  const alg = segment(token, 0)?.alg;
  return typeof alg === 'string' ? alg : undefined;
}

/** One issuer: its key set (resolved lazily, by discovery when no URL is given). */
interface IssuerState {
  readonly config: JwtIssuerConfig;
  readonly mapping: ClaimMapping;
  keys: Promise<KeySet> | undefined;
  /** When discovery last failed: retried after the cooldown, not per request. */
  failedAt: number;
}

/** OIDC Discovery 1.0 §4: the jwks_uri of an issuer, whose document must name the same issuer. */
async function discoverJwksUri(config: JwtIssuerConfig): Promise<string> {
  const url = `${config.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(config.fetchTimeoutMs), redirect: 'error' });
  } catch (err) {
    throw fail(`OIDC discovery ${url} failed: ${(err as Error).message}`, err);
  }
  if (response.status !== 200) throw fail(`OIDC discovery ${url} answered ${response.status}`);
  let document: { issuer?: unknown; jwks_uri?: unknown };
  try {
    document = (await response.json()) as typeof document;
  } catch (err) {
    throw fail(`OIDC discovery ${url} is not JSON`, err);
  }
  if (document.issuer !== config.issuer)
    throw fail(`OIDC discovery ${url} names issuer ${JSON.stringify(document.issuer)}, not ${config.issuer}`);
  if (typeof document.jwks_uri !== 'string' || document.jwks_uri === '')
    throw fail(`OIDC discovery ${url} has no jwks_uri`);
  return document.jwks_uri;
}

/** A jose error → why the token is refused, in words a platform engineer can act on. */
function explain(err: unknown, token: string, config: JwtIssuerConfig): TollgateError {
  if (err instanceof TollgateError) return err;
  const e = err as { code?: string; claim?: string; message?: string };
  const claims = segment(token, 1) ?? {};
  const header = segment(token, 0) ?? {};
  const at = (seconds: unknown) => (typeof seconds === 'number' ? ` (${new Date(seconds * 1000).toISOString()})` : '');
  switch (e.code) {
    case 'ERR_JWT_EXPIRED':
      return fail(`agent token has expired${at(claims.exp)}`, err);
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      if (e.claim === 'aud')
        return fail(
          `agent token audience ${JSON.stringify(claims.aud)} is not one of ${JSON.stringify(config.audience)} (wrong audience)`,
          err,
        );
      if (e.claim === 'iss')
        return fail(`agent token issuer ${JSON.stringify(claims.iss)} is not ${config.issuer}`, err);
      if (e.claim === 'nbf') return fail(`agent token is not valid yet${at(claims.nbf)}`, err);
      if (e.claim === 'exp') return fail('agent token has no exp claim', err);
      return fail(`agent token claim ${e.claim ?? '?'} is invalid: ${e.message ?? ''}`, err);
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return fail(
        `agent token key ${JSON.stringify(header.kid ?? null)} (${String(header.alg)}) is not in the key set of ${config.issuer} (unknown key)`,
        err,
      );
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return fail(`agent token names no kid and the key set of ${config.issuer} has several matching keys`, err);
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return fail('agent token signature does not verify', err);
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return fail(`agent token alg ${JSON.stringify(header.alg)} is not one of ${config.algorithms.join(', ')}`, err);
    case 'ERR_JWKS_TIMEOUT':
      return fail(`the key set of ${config.issuer} did not arrive within ${config.fetchTimeoutMs} ms`, err);
    case 'ERR_JWT_INVALID':
    case 'ERR_JWS_INVALID':
      return fail(`agent token is not a valid JWT: ${e.message ?? ''}`, err);
    default:
      return fail(`agent token from ${config.issuer} could not be verified: ${e.message ?? String(err)}`, err);
  }
}

/** Creates the verifier of the configured issuers (nothing is fetched before the first token). */
export function createJwtVerifier(issuers: readonly JwtIssuerConfig[]): JwtVerifier {
  const byIssuer = new Map<string, IssuerState>();
  for (const config of issuers)
    byIssuer.set(config.issuer, { config, mapping: claimMapping(config), keys: undefined, failedAt: 0 });

  function keySet(state: IssuerState, jose: Jose): Promise<KeySet> {
    if (state.keys !== undefined) return state.keys;
    const { config } = state;
    if (state.failedAt !== 0 && Date.now() - state.failedAt < config.cooldownMs)
      return Promise.reject(
        fail(`the key set of ${config.issuer} is unavailable (discovery failed; retried after the cooldown)`),
      );
    const keys = (async () => {
      const url = config.jwksUrl !== '' ? config.jwksUrl : await discoverJwksUri(config);
      return jose.createRemoteJWKSet(new URL(url), {
        cacheMaxAge: config.cacheMaxAgeMs,
        cooldownDuration: config.cooldownMs,
        timeoutDuration: config.fetchTimeoutMs,
      });
    })();
    state.keys = keys;
    keys.catch(() => {
      // Discovery failed: forget it, so a later token retries (after the cooldown).
      state.keys = undefined;
      state.failedAt = Date.now();
    });
    return keys;
  }

  return {
    async verify(token) {
      const iss = segment(token, 1)?.iss;
      if (typeof iss !== 'string')
        throw fail(token.split('.').length === 3 ? 'agent token has no iss claim' : 'agent token is not a JWT');
      const state = byIssuer.get(iss);
      if (state === undefined) throw fail(`agent token issuer ${JSON.stringify(iss)} is not trusted`);
      const { config } = state;
      const jose = await loadJose();
      try {
        const keys = await keySet(state, jose);
        const { payload } = await jose.jwtVerify(token, keys, {
          issuer: config.issuer,
          audience: config.audience,
          algorithms: config.algorithms,
          clockTolerance: config.clockSkewSeconds,
          ...(config.requireExp ? { requiredClaims: ['exp'] } : {}),
        });
        return agentFromClaims(payload, state.mapping, config.issuer);
      } catch (err) {
        throw explain(err, token, config);
      }
    },
  };
}
