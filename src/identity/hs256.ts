/**
 * The local identity source: an HS256 JWT signed with a shared secret (claims: sub →
 * id, role, labels), for development and single-host setups; real issuers go through
 * jwt.ts. An invalid or expired token is refused, never silently ignored.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { TollgateError } from '../errors.ts';
import type { AgentIdentity } from '../input/build.ts';

function fail(message: string): TollgateError {
  return new TollgateError('TG_ERR_IDENTITY', message);
}

function decodeSegment(segment: string, what: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not an object');
    return value as Record<string, unknown>;
  } catch {
    throw fail(`agent token ${what} is not a base64url JSON object`);
  }
}

/** Verifies an HS256 JWT and returns the identity it carries. */
export function verifyAgentToken(
  token: string,
  secret: string,
  nowSeconds = Math.floor(Date.now() / 1000),
): AgentIdentity {
  const parts = token.trim().split('.');
  if (parts.length !== 3) throw fail('agent token is not a JWT (expected three dot-separated parts)');
  const [h, p, s] = parts as [string, string, string];
  const header = decodeSegment(h, 'header');
  if (header.alg !== 'HS256') throw fail(`agent token alg ${JSON.stringify(header.alg)} is not HS256`);
  const expected = createHmac('sha256', secret).update(`${h}.${p}`).digest();
  const given = Buffer.from(s, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected))
    throw fail('agent token signature does not verify');
  const claims = decodeSegment(p, 'payload');
  if (typeof claims.exp === 'number' && claims.exp <= nowSeconds) throw fail('agent token has expired');
  if (typeof claims.nbf === 'number' && claims.nbf > nowSeconds) throw fail('agent token is not valid yet');
  if (typeof claims.sub !== 'string' || claims.sub === '') throw fail('agent token has no sub claim');
  const labels: Record<string, string> = {};
  if (typeof claims.labels === 'object' && claims.labels !== null) {
    for (const [k, v] of Object.entries(claims.labels)) if (typeof v === 'string') labels[k] = v;
  }
  return { id: claims.sub, role: typeof claims.role === 'string' ? claims.role : '', labels };
}

/** Signs an HS256 JWT (used by `tollgate token` and tests). */
export function signAgentToken(claims: Record<string, unknown>, secret: string): string {
  const h = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');
  const p = Buffer.from(JSON.stringify(claims)).toString('base64url');
  const s = createHmac('sha256', secret).update(`${h}.${p}`).digest('base64url');
  return `${h}.${p}.${s}`;
}
