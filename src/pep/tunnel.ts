/**
 * What CONNECT tunnels and transparent connections share: the policy input for a
 * tunnel decision (the CheckRequest Envoy sends for CONNECT — `:method CONNECT`,
 * `:authority host:port`, no path — built by the one input builder, plus
 * `input.connect`), the decision with the failure mode applied, the per-destination
 * mode, a bounded peek at the agent's first bytes, and the byte relay.
 */
import { connect as netConnect, isIP, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { wrapError } from '../errors.ts';
import type { Config } from '../config/schema.ts';
import { splitHostPort } from '../config/load.ts';
import { inputFromCheckRequest, type AgentIdentity, type PolicyInput } from '../input/build.ts';
import type { Decision, Pdp } from '../pdp/types.ts';
import { denyReply, failureReply, type LocalReply } from '../enforce/reply.ts';
import { failureMode } from '../enforce/failure-mode.ts';
import { isHopByHop } from '../http/hop-by-hop.ts';
import { MAX_CLIENT_HELLO, parseClientHello, type ClientHelloResult } from '../tls/sni.ts';
import { decisionMeta, recordDecision, recordFailure, type Observer } from '../telemetry/observer.ts';
import type { TollgateError } from '../errors.ts';

/** How a destination's tunnel is served. */
export type TunnelMode = 'tunnel' | 'intercept';

/**
 * input.connect: present on every decision about a tunnel and on every request
 * decided inside an intercepted one. `phase` says which decision this is:
 * "connect" the CONNECT itself (before any byte flows), "tls" the ClientHello seen
 * inside the tunnel when its SNI differs from the CONNECT host (or the host is an IP),
 * "transparent" a redirected connection, "request" an HTTP request inside.
 */
export interface ConnectInput {
  phase: 'connect' | 'tls' | 'transparent' | 'request';
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
}

/** Dependencies of the tunnel code. */
export interface TunnelDeps {
  readonly config: Config;
  readonly pdp: Pdp;
  readonly logger: Logger;
  /** True when a local CA is loaded, so interception is possible. */
  readonly canIntercept: boolean;
  /** Spans, metrics and the decision log (absent: nothing recorded). */
  readonly observer?: Observer;
}

/** A decision, or the failure and the failure mode that applied. */
export type Observed = { readonly decision: Decision } | { readonly error: TollgateError; readonly mode: 'allow' | 'deny' };

/**
 * Asks the PDP and records the outcome the way the request handler does (decision
 * span, metric, decision-log record), so tunnel and upgrade decisions are audited
 * like every other. Never rejects: a PDP failure comes back with its failure mode.
 */
export async function decideObserved(
  deps: { readonly config: Config; readonly pdp: Pdp; readonly logger: Logger; readonly observer?: Observer },
  input: PolicyInput,
  host: string,
  decisionId: string,
): Promise<Observed> {
  const http = input.attributes.request.http;
  const source = input.attributes.source.address.socketAddress;
  const tr = deps.observer?.tracing.startCall({ method: http.method, scheme: http.scheme === 'https' ? 'https' : 'http', authority: http.host, ...(http.path === undefined ? {} : { target: http.path }), headers: http.headers });
  const info = deps.pdp.info();
  const policyPath = info?.decisionPath ?? '';
  const span = tr?.startDecision(decisionMeta(decisionId, policyPath, input, http.host));
  const started = process.hrtime.bigint();
  const facts = () => ({ decisionId, policyPath, input, destination: http.host, span: span!, seconds: Number(process.hrtime.bigint() - started) / 1e9, requestedBy: source.address });
  try {
    const decision = await deps.pdp.decide(input, decisionId);
    if (deps.observer !== undefined) recordDecision(deps.observer, facts(), decision);
    tr?.end({ statusCode: decision.allowed ? 200 : decision.httpStatus ?? deps.config.proxy.denyStatus });
    return { decision };
  } catch (err) {
    const error = wrapError('TG_ERR_POLICY_EVAL', 'policy decision failed', err);
    const mode = failureMode(deps.config.pdp, host);
    if (deps.observer !== undefined) recordFailure(deps.observer, facts(), error, mode, info?.revision ?? '');
    tr?.end({ statusCode: mode === 'allow' ? 200 : 403, errorType: error.code });
    deps.logger.warn({ err: error, code: error.code, decisionId, host, failureMode: mode }, 'no policy decision for a tunnel or upgrade');
    return { error, mode };
  }
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

/** Builds the policy input for a tunnel decision through the shared CheckRequest builder. */
export function tunnelInput(options: {
  id: string;
  authority: string;
  headers: Record<string, string>;
  source: Peer;
  destination: Peer;
  connect: ConnectInput;
  agent: AgentIdentity;
  now?: number;
}): PolicyInput {
  const headers: Record<string, string> = { ':authority': options.authority, ':method': 'CONNECT' };
  for (const [name, value] of Object.entries(options.headers)) {
    if (name === 'host' || isHopByHop(name)) continue;
    headers[name] = value;
  }
  const now = options.now ?? Date.now();
  const seconds = Math.floor(now / 1000);
  const nanos = (now % 1000) * 1_000_000;
  const socketAddress = (p: Peer) => ({ address: { socketAddress: { address: p.address, portValue: p.port } } });
  const input = inputFromCheckRequest(
    {
      attributes: {
        source: socketAddress(options.source),
        destination: socketAddress(options.destination),
        // Envoy's CONNECT CheckRequest: method and authority, no path and no scheme.
        request: { time: nanos === 0 ? { seconds } : { seconds, nanos }, http: { id: options.id, method: 'CONNECT', headers, host: options.authority, protocol: 'HTTP/1.1' } },
      },
    },
    options.agent,
  );
  (input as PolicyInput & { connect: ConnectInput }).connect = options.connect;
  return input;
}

/** The outcome of a tunnel decision. */
export type TunnelVerdict = { readonly allowed: true; readonly decision?: Decision } | { readonly allowed: false; readonly reply: LocalReply; readonly reasons: readonly string[] };

/** Asks the PDP about a tunnel; a PDP failure applies the failure mode of the host (default deny). */
export async function decideTunnel(deps: TunnelDeps, input: PolicyInput, host: string, decisionId: string): Promise<TunnelVerdict> {
  const observed = await decideObserved(deps, input, host, decisionId);
  if ('decision' in observed) {
    const { decision } = observed;
    if (decision.allowed) return { allowed: true, decision };
    return { allowed: false, reply: denyReply(decision, deps.config.proxy.denyStatus, undefined), reasons: decision.reasons };
  }
  switch (observed.mode) {
    case 'allow':
      return { allowed: true };
    case 'deny':
      return { allowed: false, reply: failureReply(observed.error, decisionId, 403), reasons: [observed.error.message] };
    default:
      return observed.mode satisfies never;
  }
}

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 407: 'Proxy Authentication Required', 429: 'Too Many Requests', 500: 'Internal Server Error', 501: 'Not Implemented', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout' };

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
    const onClose = () => finish(bytes.length === 0 ? { kind: 'closed' } : { kind: 'malformed', reason: 'connection closed inside the ClientHello' });
    const timer = setTimeout(() => finish(bytes.length === 0 ? { kind: 'silent' } : { kind: 'malformed', reason: 'incomplete ClientHello at the timeout' }), timeoutMs);
    socket.on('data', onData);
    socket.on('end', onClose);
    socket.on('close', onClose);
    socket.on('error', onClose);
    check();
    if (!done) socket.resume();
  });
}

/** Opens the upstream TCP connection for a tunnel (static resolve overrides apply). */
export function connectUpstream(config: Config, host: string, port: number): Promise<Socket> {
  const override = config.proxy.resolve[`${host}:${port}`];
  const target = override === undefined ? { host, port } : splitHostPort(override);
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: target.host, port: target.port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(wrapError('TG_ERR_UPSTREAM_TIMEOUT', 'upstream connect timed out', new Error(`${host}:${port} after ${config.proxy.upstreamConnectTimeoutMs} ms`)));
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
