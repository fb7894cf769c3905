/**
 * Request normalisation: everything after this file sees one canonical request.
 * The policy decides on exactly the method, authority, path and headers that are
 * forwarded, so every ambiguity is either resolved here or rejected with 400.
 */
import { TollgateError } from '../errors.ts';
import { isHopByHop, connectionTokens } from './hop-by-hop.ts';

/** A request as every component after the normaliser sees it. */
export interface CanonicalRequest {
  readonly id: string;
  readonly method: string;
  readonly scheme: 'http' | 'https';
  /** Lowercase host name or IP literal (IPv6 in brackets), no trailing dot. */
  readonly host: string;
  readonly port: number;
  /** host, plus ":port" when the port is not the scheme's default. */
  readonly authority: string;
  /** Normalised path plus "?query" when there is one. */
  readonly path: string;
  /** Lowercase header names; repeated headers joined as Envoy does. Hop-by-hop removed. */
  readonly headers: Record<string, string>;
  readonly protocol: string;
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

/** Headers that must not repeat: a second value would let policy and upstream disagree. */
const SINGLETON_HEADERS = new Set(['host', 'content-length', 'content-type', 'authorization', 'transfer-encoding', 'proxy-authorization']);

// RFC 3986 §2.3 unreserved characters: decoding these never changes meaning.
const UNRESERVED = /[A-Za-z0-9\-._~]/;

function bad(message: string): TollgateError {
  return new TollgateError('TG_ERR_BAD_REQUEST', message);
}

/**
 * Normalises a path per RFC 3986 §6.2.2: decode percent-encoded unreserved
 * characters, uppercase the remaining escapes, remove dot segments (§5.2.4).
 * Encoded slashes, backslashes and control characters are rejected: upstreams
 * disagree on what they mean, so no decision on them can be trusted.
 */
export function normalizePath(rawPath: string): string {
  if (!rawPath.startsWith('/')) throw bad(`path must start with "/": ${JSON.stringify(rawPath.slice(0, 64))}`);
  let decoded = '';
  for (let i = 0; i < rawPath.length; i++) {
    const ch = rawPath[i]!;
    const code = ch.charCodeAt(0);
    if (code <= 0x20 || code === 0x7f) throw bad('path contains a control character or space');
    if (ch === '\\') throw bad('path contains a backslash');
    if (ch === '%') {
      const hex = rawPath.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw bad(`path has an invalid percent-encoding at offset ${i}`);
      const byte = Number.parseInt(hex, 16);
      const char = String.fromCharCode(byte);
      if (byte < 0x20 || byte === 0x7f) throw bad('path contains an encoded control character');
      if (char === '/' || char === '\\') throw bad('path contains an encoded slash or backslash');
      decoded += UNRESERVED.test(char) ? char : `%${hex.toUpperCase()}`;
      i += 2;
    } else if (code > 0x7e) {
      decoded += encodeURIComponent(ch);
    } else {
      decoded += ch;
    }
  }
  return removeDotSegments(decoded);
}

function removeDotSegments(path: string): string {
  const out: string[] = [];
  const segments = path.split('/');
  for (let i = 1; i < segments.length; i++) {
    const seg = segments[i]!;
    const last = i === segments.length - 1;
    if (seg === '.') {
      if (last) out.push('');
    } else if (seg === '..') {
      out.pop();
      if (last) out.push('');
    } else {
      out.push(seg);
    }
  }
  return `/${out.join('/')}`;
}

// Agents call a handful of hosts: remember their canonical form (bounded, cleared when full).
const hostCache = new Map<string, string>();
const HOST_CACHE_MAX = 1024;

/** Canonical host: WHATWG host parsing (IDNA, IPv4 forms, IPv6), lowercase, no trailing dot. */
export function normalizeHost(host: string): string {
  const cached = hostCache.get(host);
  if (cached !== undefined) return cached;
  const canonical = parseHost(host);
  if (hostCache.size >= HOST_CACHE_MAX) hostCache.clear();
  hostCache.set(host, canonical);
  return canonical;
}

function parseHost(host: string): string {
  if (host === '' || /[\s/?#@%\\]/.test(host)) throw bad(`invalid host ${JSON.stringify(host.slice(0, 64))}`);
  let parsed: string;
  try {
    parsed = new URL(`http://${host}/`).hostname;
  } catch {
    throw bad(`invalid host ${JSON.stringify(host.slice(0, 64))}`);
  }
  return parsed.endsWith('.') ? parsed.slice(0, -1) : parsed;
}

/** Splits an authority ("host[:port]") into a canonical host and port. */
export function parseAuthority(authority: string, scheme: 'http' | 'https'): { host: string; port: number } {
  const m = /^(\[[^\]]*\]|[^:]*)(?::(\d*))?$/.exec(authority);
  if (!m) throw bad(`invalid authority ${JSON.stringify(authority.slice(0, 64))}`);
  const host = normalizeHost(m[1]!);
  const portText = m[2];
  const port = portText === undefined || portText === '' ? DEFAULT_PORT[scheme] : Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw bad(`invalid port in ${JSON.stringify(authority.slice(0, 64))}`);
  return { host, port };
}

/** host plus ":port" unless the port is the scheme's default. */
export function formatAuthority(host: string, port: number, scheme: 'http' | 'https'): string {
  return port === DEFAULT_PORT[scheme] ? host : `${host}:${port}`;
}

/** Turns a raw request into the canonical request, or throws TG_ERR_BAD_REQUEST. */
export function normalizeRequest(raw: RawRequest): CanonicalRequest {
  const headers: Record<string, string> = {};
  const hostValues: string[] = [];
  const raws = raw.rawHeaders;
  let connection = '';
  for (let i = 0; i < raws.length; i += 2) {
    const name = raws[i]!.toLowerCase();
    const value = raws[i + 1]!;
    if (name === 'host') hostValues.push(value);
    if (name === 'connection') connection += `${connection ? ',' : ''}${value}`;
    const prior = headers[name];
    if (prior === undefined) {
      headers[name] = value;
    } else {
      if (SINGLETON_HEADERS.has(name)) throw bad(`duplicate ${name} header`);
      // Envoy joins repeated headers with "," (cookie with "; ", RFC 9113 §8.2.3).
      headers[name] = name === 'cookie' ? `${prior}; ${value}` : `${prior},${value}`;
    }
  }
  if (hostValues.length > 1) throw bad('duplicate host header');

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
      throw bad(`absolute-form authority ${JSON.stringify(authority)} does not match host header ${JSON.stringify(hostValues[0])}`);
    }
  }

  const hashAt = target.indexOf('#');
  if (hashAt !== -1) target = target.slice(0, hashAt);
  const queryAt = target.indexOf('?');
  const rawPath = queryAt === -1 ? target : target.slice(0, queryAt);
  const query = queryAt === -1 ? '' : target.slice(queryAt);
  if (/[\x00-\x20\x7f]/.test(query)) throw bad('query contains a control character or space');
  const path = normalizePath(rawPath) + query;

  if (raw.tunnelAuthority !== undefined) {
    // A request inside a tunnel must go where the tunnel was opened to: no re-targeting.
    const tunnel = parseAuthority(raw.tunnelAuthority, scheme);
    if (tunnel.host !== host || tunnel.port !== port) {
      throw bad(`request for ${JSON.stringify(authority)} inside a tunnel to ${JSON.stringify(raw.tunnelAuthority)}`);
    }
  }
  const finalAuthority = formatAuthority(host, port, scheme);
  // RFC 9110 §7.6.1: drop hop-by-hop headers and those named in Connection.
  const named = connectionTokens(connection);
  for (const name of Object.keys(headers)) {
    if (isHopByHop(name) || named.has(name)) delete headers[name];
  }
  // Tollgate answers "Expect: 100-continue" itself (as Envoy does), so it is not forwarded.
  delete headers.expect;
  headers.host = finalAuthority;

  return {
    id: raw.id,
    method: raw.method,
    scheme,
    host,
    port,
    authority: finalAuthority,
    path,
    headers,
    protocol: `HTTP/${raw.httpVersion}`,
    source: raw.source,
    destination: raw.destination,
  };
}
