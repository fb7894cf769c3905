/**
 * Host canonicalisation: every spelling of a destination that the resolver or the
 * socket layer would treat as the same host becomes one string, so a policy rule on
 * "127.0.0.1" or "payments.internal" cannot be walked around by another spelling.
 * Spellings whose destination depends on who reads them are refused.
 */
import { TollgateError } from '../errors.ts';

function bad(message: string): TollgateError {
  return new TollgateError('TG_ERR_BAD_REQUEST', message);
}

function ambiguous(message: string): TollgateError {
  return new TollgateError('TG_ERR_AMBIGUOUS_TARGET', message);
}

function quoted(host: string): string {
  return JSON.stringify(host.slice(0, 64));
}

// Agents call a handful of hosts: remember their canonical form (bounded, cleared when full).
// Only successes are cached; a refusal is recomputed (and rare).
const hostCache = new Map<string, string>();
const HOST_CACHE_MAX = 1024;

/**
 * Canonical host: WHATWG host parsing (IDNA/UTS 46 mapping, the inet_aton IPv4 forms
 * glibc's resolver also accepts, RFC 5952 IPv6 text), lowercase, no trailing dot,
 * IPv4-mapped IPv6 as dotted IPv4. IPv6 literals keep their brackets.
 */
export function normalizeHost(host: string): string {
  const cached = hostCache.get(host);
  if (cached !== undefined) return cached;
  const canonical = parseHost(host);
  if (hostCache.size >= HOST_CACHE_MAX) hostCache.clear();
  hostCache.set(host, canonical);
  return canonical;
}

function parseHost(host: string): string {
  if (host === '') throw bad('empty host');
  // WHATWG percent-decodes a host ("%41pi.test" is "api.test") while Go, Python and
  // most servers' virtual-host matching do not: two readings, so refuse. This also
  // refuses RFC 6874 zone ids ("[fe80::1%25eth0]"), whose interface is local to the
  // reader's machine and never names the same destination twice.
  if (host.includes('%')) {
    throw ambiguous(
      host.startsWith('[') ? `ipv6 zone identifier in host ${quoted(host)}` : `percent-encoded host ${quoted(host)}`,
    );
  }
  if (/[\s/?#@\\]/.test(host)) throw bad(`invalid host ${quoted(host)}`);
  // A port belongs to the authority, not the host: WHATWG would silently drop it.
  if (!host.startsWith('[') && host.includes(':'))
    throw bad(`host ${quoted(host)} contains ":" outside an ipv6 literal`);
  let parsed: string;
  try {
    parsed = new URL(`http://${host}/`).hostname;
  } catch (err) {
    throw new TollgateError('TG_ERR_BAD_REQUEST', `invalid host ${quoted(host)}`, { cause: err });
  }
  if (parsed.startsWith('[')) return canonicalIpv6(parsed, host);
  // One trailing dot is the DNS root (RFC 1034 §3.1): "a.test." and "a.test" are one
  // name. Empty labels anywhere else ("a..test", ".a.test", "a.test..") are not DNS
  // names at all, and resolvers disagree on what they do with them.
  const name = parsed.endsWith('.') ? parsed.slice(0, -1) : parsed;
  if (name === '' || name.startsWith('.') || name.includes('..') || name.endsWith('.')) {
    throw ambiguous(`host ${quoted(host)} has an empty label`);
  }
  // RFC 1122 §3.2.1.3: 0.0.0.0/8 means "this host on this network" and is never a
  // destination; Linux connects 0.0.0.0 to the local host, so a rule on 127.0.0.1 would
  // not see it.
  if (name.startsWith('0.') && IPV4.test(name))
    throw ambiguous(`host ${quoted(host)} is in 0.0.0.0/8 (this host), not a destination`);
  return name;
}

const IPV4 = /^\d{1,3}(?:\.\d{1,3}){3}$/;

/**
 * Takes WHATWG's RFC 5952 serialisation ("[::ffff:7f00:1]": lowercase, zeros
 * compressed) and settles the IPv6 forms that embed an IPv4 address.
 */
function canonicalIpv6(bracketed: string, original: string): string {
  const words = ipv6Words(bracketed.slice(1, -1));
  const high = words.slice(0, 6);
  const v4 = `${words[6]! >> 8}.${words[6]! & 0xff}.${words[7]! >> 8}.${words[7]! & 0xff}`;
  const zeros = (n: number) => high.slice(0, n).every((w) => w === 0);
  // RFC 4291 §2.5.5.2 IPv4-mapped ::ffff:a.b.c.d: a dual-stack socket (Linux, the
  // default for Node, Go, Python) sends it to the IPv4 host a.b.c.d. Same host, so it
  // is spelled the way the policy writes IPv4.
  if (zeros(5) && high[5] === 0xffff) {
    if (v4.startsWith('0.'))
      throw ambiguous(`host ${quoted(original)} maps to 0.0.0.0/8 (this host), not a destination`);
    return v4;
  }
  if (words.every((w) => w === 0))
    throw ambiguous(`host ${quoted(original)} is the unspecified address, not a destination`);
  // ::1 is loopback; any other ::/96 address is an RFC 4291 §2.5.5.1 "IPv4-compatible"
  // address (deprecated): some stacks tunnel it to the IPv4 host, Linux routes it as
  // IPv6. Two readings of one destination: refuse and ask for the IPv4 spelling.
  if (zeros(6) && !(words[6] === 0 && words[7] === 1)) {
    throw ambiguous(`host ${quoted(original)} is an ipv4-compatible ipv6 address; use ${v4}`);
  }
  // RFC 2765 IPv4-translated ::ffff:0:a.b.c.d, RFC 6052 NAT64 64:ff9b::/96 and RFC 8215
  // local-use 64:ff9b:1::/48: whether they reach the IPv4 host depends on a translator
  // somewhere on the path, so the policy could not know which host it decides on.
  const translated = zeros(4) && high[4] === 0xffff && high[5] === 0;
  const nat64 = words[0] === 0x64 && words[1] === 0xff9b && (words[2] === 1 || high.slice(2, 6).every((w) => w === 0));
  if (translated || nat64)
    throw ambiguous(`host ${quoted(original)} embeds the ipv4 address ${v4} through a translator; use ${v4}`);
  return bracketed;
}

/** Eight 16-bit words of an IPv6 address already serialised by WHATWG (no dotted tail). */
function ipv6Words(text: string): number[] {
  const [head, tail] = text.includes('::') ? (text.split('::') as [string, string]) : [text, undefined];
  const left = head === '' ? [] : head.split(':').map((h) => Number.parseInt(h, 16));
  if (tail === undefined) return left;
  const right = tail === '' ? [] : tail.split(':').map((h) => Number.parseInt(h, 16));
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}
