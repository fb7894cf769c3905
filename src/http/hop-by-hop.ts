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

/** The lowercase header names listed in a Connection header value. */
export function connectionTokens(value: string | undefined): Set<string> {
  const tokens = new Set<string>();
  if (!value) return tokens;
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
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || named.has(name)) continue;
    out[name] = value;
  }
  return out;
}
