/**
 * What CONNECT tunnels and transparent connections share: the CheckRequest for a
 * tunnel decision (the one Envoy sends for CONNECT — `:method CONNECT`,
 * `:authority host:port`, no path — plus `input.connect`) handed to the decision
 * step, the per-destination mode, a bounded peek at the agent's first bytes and
 * their classification (TLS, HTTP or opaque), and the byte relay.
 */
import { newUuid } from '../runtime/uuid.ts';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { wrapError } from '../errors.ts';
import { guardedLookup, ownLiteralTarget } from '../upstream/loop-guard.ts';
import type { Config } from '../config/schema.ts';
import { splitHostPort } from '../config/load.ts';
import type { CheckRequestDocument } from '../input/build.ts';
import type { LocalReply } from '../enforce/reply.ts';
import { verdictReply, type DecisionStep } from '../enforce/decide.ts';
import { isHopByHop } from '../http/hop-by-hop.ts';
import { MAX_CLIENT_HELLO, parseClientHello, type ClientHelloResult } from '../tls/sni.ts';

/** How a destination's tunnel is served. */
export type TunnelMode = 'tunnel' | 'intercept';

/**
 * input.connect: present on every decision about a tunnel and on every request
 * decided inside an intercepted one. `phase` says which decision this is:
 * "connect" the CONNECT itself (before any byte flows), "tls" the ClientHello seen
 * inside the tunnel when its SNI differs from the CONNECT host (or the host is an IP),
 * "transparent" a redirected connection, "request" an HTTP request inside,
 * "opaque" a tunnel whose bytes are neither TLS nor HTTP (or that stays silent):
 * relayed only when the policy allows this phase explicitly.
 */
export interface ConnectInput {
  phase: 'connect' | 'tls' | 'transparent' | 'request' | 'opaque';
  /** The CONNECT authority (host:port), or for transparent mode the destination name:port. */
  authority: string;
  host: string;
  port: number;
  mode: TunnelMode;
  /** The TLS server name the agent sent, once seen. */
  sni?: string;
  alpn?: string[];
  /** Transparent mode: the destination before iptables REDIRECT (SO_ORIGINAL_DST). */
  original_destination?: { address: string; port: number };
}

/** A socket address as the policy sees it. */
export interface Peer {
  readonly address: string;
  readonly port: number;
  /** The SPIFFE ID of the client certificate Tollgate verified (mTLS listener). */
  readonly principal?: string;
}

/** Dependencies of the tunnel code. */
export interface TunnelDeps {
  readonly config: Config;
  /** The one decision step every door calls. */
  readonly step: DecisionStep;
  readonly logger: Logger;
  /** True when a local CA is loaded, so interception is possible. */
  readonly canIntercept: boolean;
}

function hostMatches(pattern: string, host: string): boolean {
  const p = pattern.toLowerCase();
  return p.startsWith('*.') ? host.endsWith(p.slice(1)) && host.length > p.length - 1 : p === host;
}

/** The mode for a destination host: pass-through first, then `modes`, then the default. */
export function modeFor(config: Config, canIntercept: boolean, host: string): TunnelMode {
  if (config.connect.passThrough.some((p) => hostMatches(p, host))) return 'tunnel';
  const exact = config.connect.modes[host];
  let mode: TunnelMode | undefined = exact;
  if (mode === undefined) {
    for (const [pattern, m] of Object.entries(config.connect.modes)) {
      if (pattern.startsWith('*.') && hostMatches(pattern, host)) mode = m;
    }
  }
  mode ??= config.connect.defaultMode === 'auto' ? (canIntercept ? 'intercept' : 'tunnel') : config.connect.defaultMode;
  return mode === 'intercept' && !canIntercept ? 'tunnel' : mode;
}

/** Formats host:port, bracketing IPv6 literals. */
export function authorityOf(host: string, port: number): string {
  return `${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
}

/** The CheckRequest Envoy sends for a CONNECT: method and authority, no path and no scheme. */
export function tunnelCheckRequest(options: {
  id: string;
  authority: string;
  headers: Record<string, string>;
  source: Peer;
  destination: Peer;
  now?: number;
}): CheckRequestDocument {
  const headers: Record<string, string> = { ':authority': options.authority, ':method': 'CONNECT' };
  for (const [name, value] of Object.entries(options.headers)) {
    if (name === 'host' || isHopByHop(name)) continue;
    headers[name] = value;
  }
  const now = options.now ?? Date.now();
  const seconds = Math.floor(now / 1000);
  const nanos = (now % 1000) * 1_000_000;
  const socketAddress = (p: Peer) => ({ address: { socketAddress: { address: p.address, portValue: p.port } } });
  return {
    attributes: {
      // As Envoy: the principal is the URI SAN of the client certificate Tollgate verified.
      source:
        options.source.principal === undefined
          ? socketAddress(options.source)
          : { ...socketAddress(options.source), principal: options.source.principal },
      destination: socketAddress(options.destination),
      request: {
        time: nanos === 0 ? { seconds } : { seconds, nanos },
        http: { id: options.id, method: 'CONNECT', headers, host: options.authority, protocol: 'HTTP/1.1' },
      },
    },
  };
}

/** The outcome of a tunnel decision, as the tunnel doors use it. */
export type TunnelVerdict =
  | { readonly allowed: true; readonly decisionId: string }
  | { readonly allowed: false; readonly reply: LocalReply; readonly reasons: readonly string[] };

/**
 * Decides one tunnel phase through the decision step: the CONNECT CheckRequest for
 * `authority` (host = the name decided on), with `connect` as input.connect. The
 * agent token, when configured, is read from `headers` (and never reaches the policy).
 */
export async function decideTunnel(
  deps: TunnelDeps,
  options: {
    authority: string;
    host: string;
    headers: Record<string, string>;
    source: Peer;
    destination: Peer;
    connect: ConnectInput;
  },
): Promise<TunnelVerdict> {
  const checkRequest = tunnelCheckRequest({
    id: newUuid(),
    authority: options.authority,
    headers: options.headers,
    source: options.source,
    destination: options.destination,
  });
  const verdict = await deps.step.decide({ checkRequest, connect: options.connect, host: options.host }, 'tunnel');
  if (verdict.kind === 'allow') return { allowed: true, decisionId: verdict.decisionId };
  const reasons = verdict.kind === 'deny' ? verdict.decision.reasons : [verdict.error.message];
  return { allowed: false, reply: verdictReply(verdict, deps.config.proxy.denyStatus), reasons };
}

/** What a non-TLS stream starts with: an HTTP/1.x request line, opaque bytes, or not enough to tell. */
export type PlainKind = 'http' | 'opaque' | 'need-more';

/**
 * The longest request-line start looked at (leading CR/LF plus a method token): Go's
 * net/http serves methods of any length and Node skips any number of empty lines, so the
 * bound is the header size limit, past which no server here reads a request line.
 */
export const DEFAULT_MAX_REQUEST_LINE_START = 16 * 1024;

/** RFC 9110 §5.6.2 tchar: the bytes a method token may hold. */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
  TCHAR[c.charCodeAt(0)] = 1;

/**
 * Classifies the first bytes of a non-TLS stream. An HTTP/1.x request starts with a
 * method token and a space (RFC 9112 §3), optionally after empty lines: RFC 9112 §2.2
 * lets a server skip CR/LF before the request line, and Node and Go do. Any token
 * counts, of any length up to `limit`, not only the registered upper-case methods: Go's
 * net/http serves `get /admin` or a 21-character method as a request, so such bytes go
 * to Tollgate's own HTTP parser, which decides the request or refuses a method it does
 * not know with 400, and are never relayed as opaque bytes.
 */
export function classifyPlain(bytes: Buffer, limit = DEFAULT_MAX_REQUEST_LINE_START): PlainKind {
  const n = Math.min(bytes.length, limit);
  let i = 0;
  while (i < n && (bytes[i] === 0x0d || bytes[i] === 0x0a)) i++;
  const start = i;
  for (; i < n; i++) {
    const c = bytes[i]!;
    if (c === 0x20) return i > start ? 'http' : 'opaque';
    if (TCHAR[c] === 0) return 'opaque';
  }
  return bytes.length >= limit ? 'opaque' : 'need-more';
}

/**
 * Reads until classifyPlain can tell, bounded in size and time. A stream still
 * undecidable at the timeout or when the agent stops sending is "need-more": its bytes
 * are never relayed (a request line sent slowly is still a request line). Returns the
 * bytes for the caller to unshift; the socket is left paused.
 */
export function peekPlain(
  socket: Duplex,
  initial: Buffer,
  timeoutMs: number,
  limit = DEFAULT_MAX_REQUEST_LINE_START,
): Promise<{ readonly bytes: Buffer; readonly kind: PlainKind }> {
  const first = classifyPlain(initial, limit);
  if (first !== 'need-more') return Promise.resolve({ bytes: initial, kind: first });
  return new Promise((resolve) => {
    let bytes = initial;
    const finish = (kind: PlainKind) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.pause();
      resolve({ bytes, kind });
    };
    const onData = (chunk: Buffer) => {
      bytes = Buffer.concat([bytes, chunk]);
      const kind = classifyPlain(bytes, limit);
      if (kind !== 'need-more') finish(kind);
    };
    const onEnd = () => finish('need-more');
    const timer = setTimeout(() => finish('need-more'), timeoutMs);
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('close', onEnd);
    socket.resume();
  });
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  407: 'Proxy Authentication Required',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** Writes a local reply as a complete HTTP/1.1 response on a raw socket and closes it. */
export function writeReply(socket: Duplex, reply: LocalReply): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  let head = `HTTP/1.1 ${reply.status} ${STATUS_TEXT[reply.status] ?? 'Error'}\r\n`;
  for (const [name, value] of reply.headers) {
    if (/[\r\n]/.test(name) || /[\r\n]/.test(value)) continue;
    head += `${name}: ${value}\r\n`;
  }
  head += `content-length: ${Buffer.byteLength(reply.body)}\r\nconnection: close\r\n\r\n`;
  socket.end(head + reply.body);
}

/** What the agent sent first on a tunnel. */
export interface Peeked {
  readonly bytes: Buffer;
  /** ClientHello parse result, or "silent" when nothing arrived in time, "closed" when the agent hung up. */
  readonly hello: ClientHelloResult | { readonly kind: 'silent' } | { readonly kind: 'closed' };
}

/**
 * Reads the agent's first bytes without losing them: enough to parse a whole
 * ClientHello (or to see it is not TLS), bounded in size and time. The bytes are
 * returned for the caller to unshift back; the socket is left paused.
 */
export function peekFirstBytes(socket: Duplex, initial: Buffer, timeoutMs: number): Promise<Peeked> {
  return new Promise((resolve) => {
    let bytes = initial;
    let done = false;
    const finish = (hello: Peeked['hello']) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onClose);
      socket.off('close', onClose);
      socket.off('error', onClose);
      socket.pause();
      resolve({ bytes, hello });
    };
    const check = () => {
      if (bytes.length === 0) return;
      const hello = parseClientHello(bytes);
      if (hello.kind !== 'need-more') return finish(hello);
      if (bytes.length > MAX_CLIENT_HELLO + 5 * 8) finish({ kind: 'malformed', reason: 'ClientHello too large' });
    };
    const onData = (chunk: Buffer) => {
      bytes = bytes.length === 0 ? chunk : Buffer.concat([bytes, chunk]);
      check();
    };
    const onClose = () =>
      finish(
        bytes.length === 0
          ? { kind: 'closed' }
          : { kind: 'malformed', reason: 'connection closed inside the ClientHello' },
      );
    const timer = setTimeout(
      () =>
        finish(
          bytes.length === 0
            ? { kind: 'silent' }
            : { kind: 'malformed', reason: 'incomplete ClientHello at the timeout' },
        ),
      timeoutMs,
    );
    socket.on('data', onData);
    socket.on('end', onClose);
    socket.on('close', onClose);
    socket.on('error', onClose);
    check();
    if (!done) socket.resume();
  });
}

/**
 * After a silent start the policy allowed as "opaque" (a server-speaks-first protocol):
 * the upstream's bytes flow to the agent while the agent's first bytes are awaited and
 * returned for classification before any of them is relayed, so an opaque decision
 * covers only bytes classified opaque (HTTP sent after a pause is still HTTP).
 */
export async function awaitAfterSilence(socket: Duplex, upstream: Duplex, timeoutMs: number): Promise<Peeked> {
  const gone = () => socket.destroy();
  upstream.on('error', gone);
  upstream.on('close', gone);
  upstream.pipe(socket, { end: false });
  try {
    for (;;) {
      const peeked = await peekFirstBytes(socket, Buffer.alloc(0), timeoutMs);
      if (peeked.hello.kind !== 'silent') return peeked;
    }
  } finally {
    upstream.unpipe(socket);
    upstream.off('error', gone);
    upstream.off('close', gone);
  }
}

/** Opens the upstream TCP connection for a tunnel (static resolve overrides apply). */
export function connectUpstream(config: Config, host: string, port: number): Promise<Socket> {
  const override = config.proxy.resolve[`${host}:${port}`];
  const target = override === undefined ? { host, port } : splitHostPort(override);
  const own = ownLiteralTarget(target.host, target.port);
  if (own !== undefined) return Promise.reject(own);
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: target.host, port: target.port, lookup: guardedLookup(target.port) });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        wrapError(
          'TG_ERR_UPSTREAM_TIMEOUT',
          'upstream connect timed out',
          new Error(`${host}:${port} after ${config.proxy.upstreamConnectTimeoutMs} ms`),
        ),
      );
    }, config.proxy.upstreamConnectTimeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve(socket);
    });
    const onError = (err: Error) => {
      clearTimeout(timer);
      reject(wrapError('TG_ERR_UPSTREAM', `upstream connect to ${host}:${port} failed`, err));
    };
    socket.once('error', onError);
  });
}

/** Relays bytes both ways until either side closes; errors end both sides. */
export function relay(client: Duplex, upstream: Duplex, first?: Buffer): void {
  const end = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', end);
  upstream.on('error', end);
  // A side that closed without ending cleanly (reset, timeout) takes the other down;
  // a clean end is passed on by pipe() and the other side flushes before closing.
  client.on('close', () => {
    if (!upstream.writableEnded) upstream.destroy();
  });
  upstream.on('close', () => {
    if (!client.writableEnded) client.destroy();
  });
  if (first !== undefined && first.length > 0) upstream.write(first);
  client.pipe(upstream);
  upstream.pipe(client);
  client.resume();
}
