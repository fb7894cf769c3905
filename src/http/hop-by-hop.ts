/**
 * Hop-by-hop header handling (RFC 9110 §7.6.1): these describe one connection and
 * are never forwarded; neither is any header the Connection header names.
 */

/** Headers that are hop-by-hop by definition (plus the proxy-only ones). */
export const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** True when the lowercase header name is hop-by-hop. */
export function isHopByHop(name: string): boolean {
  return HOP_BY_HOP.has(name);
}

const NONE: ReadonlySet<string> = new Set();
/** `Connection: keep-alive`, the usual value: it names a header that is hop-by-hop anyway. */
const KEEP_ALIVE: ReadonlySet<string> = new Set(['keep-alive']);

/** The lowercase header names listed in a Connection header value. */
export function connectionTokens(value: string | undefined): ReadonlySet<string> {
  if (!value) return NONE;
  if (value === 'keep-alive') return KEEP_ALIVE;
  const tokens = new Set<string>();
  for (const part of value.split(',')) {
    const token = part.trim().toLowerCase();
    if (token) tokens.add(token);
  }
  return tokens;
}

/** Copies response headers without the hop-by-hop ones. */
export function stripHopByHopResponse(
  headers: Record<string, string | string[] | undefined>,
): Record<string, string | string[]> {
  const connection = headers.connection;
  const named = connectionTokens(Array.isArray(connection) ? connection.join(',') : connection);
  const out: Record<string, string | string[]> = {};
  // for-in rather than Object.entries: no array of pairs per response.
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || !Object.hasOwn(headers, name) || HOP_BY_HOP.has(name) || named.has(name)) continue;
    out[name] = value;
  }
  return out;
}
