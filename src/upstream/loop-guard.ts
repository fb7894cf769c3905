/**
 * Loop protection for every upstream connection. A request whose destination is one
 * of Tollgate's own listeners (proxy, admin, ext_authz, transparent) would either loop
 * through the proxy until descriptors run out, or reach the admin API from an agent;
 * so every connection the upstream layer opens (undici pools, tunnel sockets, upgrade
 * requests) checks the address it is about to connect to, after `proxy.resolve`
 * overrides and after DNS, against the listeners this process registered. And the
 * proxy marks what it forwards with its own Via token (RFC 9110 §7.6.3), refusing a
 * request that already carries it: a loop through another proxy back to this one.
 */
import { randomBytes } from 'node:crypto';
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import { networkInterfaces } from 'node:os';
import { TollgateError } from '../errors.ts';

/** This process's Via received-by pseudonym (RFC 9110 §7.6.3): a loop is this token seen again. */
export const VIA_TOKEN = `tollgate-${randomBytes(4).toString('hex')}`;

/** The Via entry appended to every forwarded request. */
export const VIA_ENTRY = `1.1 ${VIA_TOKEN}`;

/** A listening socket address. */
export interface ListenerAddress {
  readonly address: string;
  readonly port: number;
}

// One process, one set of listeners: registered by the composition root once each listens.
const listeners: ListenerAddress[] = [];

/** Records one of Tollgate's own listening addresses (proxy, admin, ext_authz, transparent). */
export function registerOwnListener(listener: ListenerAddress): void {
  listeners.push({ address: canonical(listener.address), port: listener.port });
}

/** Forgets a listener (its server closed). */
export function unregisterOwnListener(listener: ListenerAddress): void {
  const address = canonical(listener.address);
  const i = listeners.findIndex((l) => l.address === address && l.port === listener.port);
  if (i !== -1) listeners.splice(i, 1);
}

/** Lowercase, without brackets or zone, IPv4-mapped IPv6 as dotted IPv4. */
function canonical(address: string): string {
  let a = address.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  const zone = a.indexOf('%');
  if (zone !== -1) a = a.slice(0, zone);
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  return mapped ? mapped[1]! : a;
}

const ANY = new Set(['0.0.0.0', '::', '0:0:0:0:0:0:0:0']);

function isLoopback(address: string): boolean {
  return /^127\./.test(address) || address === '::1' || address === '0:0:0:0:0:0:0:1' || ANY.has(address);
}

/** True when the address is this machine's (loopback, the any-address, or an interface address). */
function isLocal(address: string): boolean {
  if (isLoopback(address)) return true;
  for (const list of Object.values(networkInterfaces())) {
    for (const info of list ?? []) if (canonical(info.address) === address) return true;
  }
  return false;
}

/**
 * True when connecting to address:port reaches one of Tollgate's own listeners. A
 * listener on the any-address answers on every local address; one on a loopback
 * address is matched by any loopback address (127.0.0.0/8 aliases, ::1, 0.0.0.0):
 * refusing a tool on another loopback alias at a Tollgate port errs on the safe side.
 */
export function isOwnListener(address: string, port: number): boolean {
  const target = canonical(address);
  for (const listener of listeners) {
    if (listener.port !== port) continue;
    if (ANY.has(listener.address)) {
      if (isLocal(target)) return true;
    } else if (isLoopback(listener.address)) {
      if (isLoopback(target)) return true;
    } else if (listener.address === target || ANY.has(target)) {
      return true;
    }
  }
  return false;
}

/**
 * The refusal for a connection to one of Tollgate's own listeners: 501 TG_ERR_UNSUPPORTED,
 * proxying to itself being a destination Tollgate does not serve.
 */
export function loopError(host: string, port: number): TollgateError {
  return new TollgateError(
    'TG_ERR_UNSUPPORTED',
    `destination ${host}:${port} is one of tollgate's own listeners: refused to prevent a loop`,
  );
}

/** The refusal when the target is an IP literal naming an own listener (no DNS lookup happens for those). */
export function ownLiteralTarget(host: string, port: number): TollgateError | undefined {
  const h = host.replace(/^\[(.*)\]$/, '$1');
  return isIP(h) !== 0 && isOwnListener(h, port) ? loopError(host, port) : undefined;
}

/**
 * A `lookup` for net/tls/undici connects to `port` that fails with TG_ERR_UNSUPPORTED
 * when the name resolves to an own listener ("localhost", a name the resolver maps to
 * loopback): the address checked is the address connected to.
 */
export function guardedLookup(port: number): LookupFunction {
  return ((hostname: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
      if (err) return callback(err, options.all ? [] : '', 0);
      if (addresses.some((a) => isOwnListener(a.address, port))) {
        return callback(loopError(hostname, port), options.all ? [] : '', 0);
      }
      if (options.all) return callback(null, addresses);
      const first = addresses[0]!;
      return callback(null, first.address, first.family);
    });
  }) as unknown as LookupFunction;
}

/** True when a Via header value names this process (a request that already passed through it). */
export function viaLoops(via: string | undefined): boolean {
  if (via === undefined) return false;
  return via
    .toLowerCase()
    .split(',')
    .some((entry) => entry.trim().split(/\s+/)[1] === VIA_TOKEN);
}

/** The refusal of a request that already passed through this Tollgate (RFC 9110 §7.6.3), or undefined. */
export function viaLoopError(via: string | undefined): TollgateError | undefined {
  return viaLoops(via)
    ? new TollgateError('TG_ERR_UNSUPPORTED', "request already carries this proxy's via entry: a loop")
    : undefined;
}

/** The Via value to forward: the agent's entries, then this proxy's (RFC 9110 §7.6.3). */
export function appendVia(via: string | undefined): string {
  return via === undefined || via.trim() === '' ? VIA_ENTRY : `${via}, ${VIA_ENTRY}`;
}
