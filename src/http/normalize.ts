/**
 * Request normalisation: everything after this file sees one canonical request.
 * The policy decides on exactly the method, authority, path and headers that are
 * forwarded, so every ambiguity is either resolved here or rejected with 400.
 */
import { TollgateError } from '../errors.ts';
import { isHopByHop, connectionTokens } from './hop-by-hop.ts';
import { normalizeHost } from './host.ts';
import { normalizePath } from './path.ts';
import type { PathNormalization } from '../config/schema.ts';

// The host and path rules live in their own files; these names stay importable from
// here because the listeners and CONNECT parsing have always taken them from here.
export { normalizeHost } from './host.ts';
export { normalizePath } from './path.ts';

/** A request as every component after the normaliser sees it. */
export interface CanonicalRequest {
  readonly id: string;
  readonly method: string;
  readonly scheme: 'http' | 'https';
  /** Canonical host (src/http/host.ts): lowercase name without trailing dot, dotted IPv4 (also for IPv4-mapped IPv6), or RFC 5952 IPv6 in brackets. */
  readonly host: string;
  readonly port: number;
  /** host, plus ":port" when the port is not the scheme's default. */
  readonly authority: string;
  /** Normalised path plus "?query" when there is one. */
  readonly path: string;
  /** Lowercase header names; repeated headers joined as Envoy does. Hop-by-hop removed. */
  readonly headers: Record<string, string>;
  readonly protocol: string;
  /**
   * The request's framing says a body follows: Transfer-Encoding: chunked (the only coding
   * accepted) or a Content-Length other than 0, as sent (before hop-by-hop removal, which may
   * take both out of headers).
   */
  readonly hasBody: boolean;
  readonly source: { readonly address: string; readonly port: number };
  readonly destination: { readonly address: string; readonly port: number };
}

/** What a listener hands the normaliser. */
export interface RawRequest {
  readonly id: string;
  readonly method: string;
  /** The request-target as received: origin-form or absolute-form. */
  readonly target: string;
  /** Node's rawHeaders: [name, value, name, value, ...]. */
  readonly rawHeaders: readonly string[];
  readonly httpVersion: string;
  readonly scheme: 'http' | 'https';
  /** Inside an intercepted CONNECT tunnel: the authority the tunnel was opened (and decided) for. */
  readonly tunnelAuthority?: string;
  readonly source: { readonly address: string; readonly port: number };
  readonly destination: { readonly address: string; readonly port: number };
}

const DEFAULT_PORT = { http: 80, https: 443 } as const;

/**
 * Headers that must not repeat: a second value would let policy and upstream disagree.
 * Transfer-Encoding and Proxy-Authorization must not either; being hop-by-hop, they never
 * enter the header map and are checked where normalizeRequest reads them.
 */
const SINGLETON_HEADERS = new Set(['host', 'content-length', 'content-type', 'authorization']);

function bad(message: string): TollgateError {
  return new TollgateError('TG_ERR_BAD_REQUEST', message);
}

/** Splits an authority ("host[:port]") into a canonical host and port. */
export function parseAuthority(authority: string, scheme: 'http' | 'https'): { host: string; port: number } {
  const m = /^(\[[^\]]*\]|[^:]*)(?::(\d*))?$/.exec(authority);
  if (!m) throw bad(`invalid authority ${JSON.stringify(authority.slice(0, 64))}`);
  const host = normalizeHost(m[1]!);
  const portText = m[2];
  const port = portText === undefined || portText === '' ? DEFAULT_PORT[scheme] : Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw bad(`invalid port in ${JSON.stringify(authority.slice(0, 64))}`);
  return { host, port };
}

/** host plus ":port" unless the port is the scheme's default. */
export function formatAuthority(host: string, port: number, scheme: 'http' | 'https'): string {
  return port === DEFAULT_PORT[scheme] ? host : `${host}:${port}`;
}

/** How a request is normalised (proxy.* settings that shape the one reading). */
export interface NormalizeOptions {
  /** proxy.pathNormalization; default "strict". */
  readonly pathNormalization?: PathNormalization;
}

/** Turns a raw request into the canonical request, or throws TG_ERR_BAD_REQUEST / TG_ERR_AMBIGUOUS_TARGET. */
export function normalizeRequest(raw: RawRequest, options: NormalizeOptions = {}): CanonicalRequest {
  // Hop-by-hop headers never enter the map: a `delete` would turn it into a dictionary, and every
  // later read, copy and JSON.stringify of it (policy input, upstream headers) would be slower.
  const headers: Record<string, string> = {};
  const hostValues: string[] = [];
  const raws = raw.rawHeaders;
  let connection = '';
  let transferEncoding: string | undefined;
  let proxyAuthorization = false;
  for (let i = 0; i < raws.length; i += 2) {
    const name = raws[i]!.toLowerCase();
    const value = raws[i + 1]!;
    if (isHopByHop(name)) {
      if (name === 'connection') connection += `${connection ? ',' : ''}${value}`;
      else if (name === 'transfer-encoding') {
        if (transferEncoding !== undefined) throw bad('duplicate transfer-encoding header');
        transferEncoding = value;
      } else if (name === 'proxy-authorization') {
        if (proxyAuthorization) throw bad('duplicate proxy-authorization header');
        proxyAuthorization = true;
      }
      continue;
    }
    // Only Envoy sets it, on the ext_authz door: from an agent it would mark a whole body as partial.
    // Tollgate answers "Expect: 100-continue" itself (as Envoy does), so it is not forwarded.
    if (name === 'x-envoy-auth-partial-body' || name === 'expect') continue;
    if (name === 'host') hostValues.push(value);
    // Only a string is a prior value: a header named like a member of Object.prototype
    // ("constructor") has none to be joined with.
    const prior = headers[name];
    if (typeof prior !== 'string') {
      headers[name] = value;
    } else {
      if (SINGLETON_HEADERS.has(name)) throw bad(`duplicate ${name} header`);
      // Envoy joins repeated headers with "," (cookie with "; ", RFC 9113 §8.2.3).
      headers[name] = name === 'cookie' ? `${prior}; ${value}` : `${prior},${value}`;
    }
  }
  if (hostValues.length > 1) throw bad('duplicate host header');
  // RFC 9112 §6.1: chunked is the only transfer coding Tollgate (and most tools) decode;
  // a list such as "identity, chunked" or "gzip, chunked" frames the body one way here and
  // may frame it another way in the tool, so it is refused (501, as Envoy answers).
  if (transferEncoding !== undefined && transferEncoding.trim().toLowerCase() !== 'chunked') {
    throw new TollgateError(
      'TG_ERR_UNSUPPORTED',
      `transfer-encoding ${JSON.stringify(transferEncoding.slice(0, 64))} is not supported: only chunked`,
    );
  }

  let scheme = raw.scheme;
  let authority: string;
  let target = raw.target;
  const absoluteForm = !target.startsWith('/');
  if (!absoluteForm) {
    if (hostValues.length === 0) throw bad('origin-form request without a host header');
    authority = hostValues[0]!;
  } else {
    const m = /^(https?):\/\/([^/?#]*)(.*)$/i.exec(target);
    if (!m) throw bad(`unsupported request-target ${JSON.stringify(target.slice(0, 64))}`);
    scheme = m[1]!.toLowerCase() as 'http' | 'https';
    authority = m[2]!;
    if (authority.includes('@')) throw bad('userinfo in the request-target is not allowed');
    target = m[3] === '' || m[3]!.startsWith('?') ? `/${m[3]}` : m[3]!;
    if (!target.startsWith('/')) throw bad(`invalid request-target path ${JSON.stringify(target.slice(0, 64))}`);
  }
  const { host, port } = parseAuthority(authority, scheme);
  if (absoluteForm && hostValues.length === 1 && hostValues[0] !== authority) {
    const fromHost = parseAuthority(hostValues[0]!, scheme);
    if (fromHost.host !== host || fromHost.port !== port) {
      throw bad(
        `absolute-form authority ${JSON.stringify(authority)} does not match host header ${JSON.stringify(hostValues[0])}`,
      );
    }
  }

  const hashAt = target.indexOf('#');
  if (hashAt !== -1) target = target.slice(0, hashAt);
  const queryAt = target.indexOf('?');
  const rawPath = queryAt === -1 ? target : target.slice(0, queryAt);
  const query = queryAt === -1 ? '' : target.slice(queryAt);
  if (/[\x00-\x20\x7f]/.test(query)) throw bad('query contains a control character or space');
  const path = normalizePath(rawPath, options.pathNormalization ?? 'strict') + query;

  if (raw.tunnelAuthority !== undefined) {
    // A request inside a tunnel must go where the tunnel was opened to: no re-targeting.
    const tunnel = parseAuthority(raw.tunnelAuthority, scheme);
    if (tunnel.host !== host || tunnel.port !== port) {
      throw bad(`request for ${JSON.stringify(authority)} inside a tunnel to ${JSON.stringify(raw.tunnelAuthority)}`);
    }
  }
  const finalAuthority = formatAuthority(host, port, scheme);
  // RFC 9110 §7.6.1: the headers named in Connection are hop-by-hop too. Usually it names none
  // that are not hop-by-hop by definition ("keep-alive", "close"): then the map is kept as read.
  const contentLength = headers['content-length'];
  const hasBody = transferEncoding !== undefined || (contentLength !== undefined && contentLength !== '0');
  const named = connectionTokens(connection);
  let forwarded = headers;
  for (const name of named) {
    if (name !== 'host' && Object.hasOwn(headers, name)) {
      forwarded = {};
      for (const key of Object.keys(headers)) if (key === 'host' || !named.has(key)) forwarded[key] = headers[key]!;
      break;
    }
  }
  forwarded.host = finalAuthority;

  return {
    id: raw.id,
    method: raw.method,
    scheme,
    host,
    port,
    authority: finalAuthority,
    path,
    headers: forwarded,
    protocol: `HTTP/${raw.httpVersion}`,
    hasBody,
    source: raw.source,
    destination: raw.destination,
  };
}
