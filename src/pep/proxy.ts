/**
 * The outbound listener (the PEP): accepts explicit-proxy (absolute-form) and
 * origin-form requests, normalises them, asks the PDP, then denies with a reason
 * or forwards exactly what was decided on and streams the answer back.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { newUuid } from '../runtime/uuid.ts';
import type { AddressInfo, Socket } from 'node:net';
import { Readable, type Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { TollgateError, wrapError } from '../errors.ts';
import type { Config } from '../config/schema.ts';
import { normalizeRequest, type CanonicalRequest, type RawRequest } from '../http/normalize.ts';
import { stripHopByHopResponse } from '../http/hop-by-hop.ts';
import type { Decision } from '../pdp/types.ts';
import { errorReply, type LocalReply, DECISION_ID_HEADER } from '../enforce/reply.ts';
import { verdictReply, type DecisionStep } from '../enforce/decide.ts';
import { applyQueryChanges } from '../enforce/mutate.ts';
import type { Upstreams } from '../upstream/pool.ts';
import { Exchange, type ExchangeHooks } from '../upstream/exchange.ts';
import { appendVia, viaLoopError } from '../upstream/loop-guard.ts';
import { splitHostPort } from '../config/load.ts';
import { bufferBody, forwardBody, type BodyHead } from './body.ts';
import { createNoopObserver, type Observer } from '../telemetry/observer.ts';
import { mtlsContext, peerOf, peerSpiffeId, watchMtls } from '../identity/mtls.ts';
import { createServer as createTlsServer } from 'node:https';
import type { CallTrace } from '../telemetry/spans.ts';
import type { ResponseRelay, ResponseStage } from '../mcp/response-relay.ts';
import type { PolicyInput } from '../input/build.ts';

/** Options of createProxy. */
export interface ProxyOptions {
  readonly config: Config;
  /** The one decision step every door calls. */
  readonly step: DecisionStep;
  readonly upstreams: Upstreams;
  readonly logger: Logger;
  /** Spans, metrics and the decision log (default: records nothing). */
  readonly observer?: Observer;
  /** Response decisions and tool pinning on MCP answers (absent: answers are relayed untouched). */
  readonly responses?: ResponseStage;
}

/** The running outbound listener. */
export interface Proxy {
  listen(): Promise<AddressInfo>;
  close(): Promise<void>;
}

/** Where a request came from: plain HTTP on the listener, or decrypted from an intercepted TLS tunnel. */
export interface RequestContext {
  readonly scheme: 'http' | 'https';
  /** For a request inside an intercepted CONNECT tunnel: the tunnel's authority ("host:port"); its Host must agree. */
  readonly tunnelAuthority?: string;
  /** Set by the tunnel code (src/pep/tunnel.ts): copied into the policy input as input.connect. */
  readonly connect?: Readonly<Record<string, unknown>>;
  /** For a request inside a tunnel: the SPIFFE ID of the SVID the tunnel's connection presented. */
  readonly peerSpiffeId?: string | undefined;
}

/** Handles one HTTP request through the whole pipeline (normalise, decide, deny or forward). */
export type RequestHandler = (req: IncomingMessage, res: ServerResponse, context: RequestContext) => void;

/** Hooks for what the plain listener does not handle itself. */
export interface ProxyHooks {
  /** CONNECT requests; absent: refused with 501. */
  readonly onConnect?: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  /** Upgrade requests (WebSocket); absent: refused with 501. */
  readonly onUpgrade?: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
}

function send(res: ServerResponse, reply: LocalReply, close = false): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of reply.headers) {
    const prior = headers[name];
    headers[name] = prior === undefined ? value : Array.isArray(prior) ? [...prior, value] : [prior, value];
  }
  headers['content-length'] = String(Buffer.byteLength(reply.body));
  if (close) headers.connection = 'close';
  res.writeHead(reply.status, headers);
  res.end(reply.body);
}

/** Writes a complete HTTP/1.1 reply on a raw socket and closes it. */
export function rawSocketReply(socket: Duplex, status: number, text: string, body: Record<string, unknown>): void {
  const payload = JSON.stringify(body);
  if (socket.writable) {
    socket.end(
      `HTTP/1.1 ${status} ${text}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(payload)}\r\nconnection: close\r\n\r\n${payload}`,
    );
  } else {
    socket.destroy();
  }
}

/** What the normaliser gets from a Node request on any listener. */
export function rawRequestOf(req: IncomingMessage, context: RequestContext, id: string): RawRequest {
  const socket = req.socket;
  return {
    id,
    method: req.method ?? 'GET',
    target: req.url ?? '',
    rawHeaders: req.rawHeaders,
    httpVersion: req.httpVersion,
    scheme: context.scheme,
    // Always present (undefined outside a tunnel): one object shape for every request.
    tunnelAuthority: context.tunnelAuthority,
    source: { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 },
    destination: { address: socket.localAddress ?? '', port: socket.localPort ?? 0 },
  };
}

/** The body of a request that has none (shared: never mutated). */
const NO_BODY: BodyHead = Object.freeze({ chunks: [], bytes: Buffer.alloc(0), truncated: false });

/** What an exchange carries for the head and error hooks (one object per forwarded request). */
interface Forwarded {
  readonly authority: string;
  readonly host: string;
  readonly decision: Decision | undefined;
  readonly decisionId: string;
  readonly trace: CallTrace;
  readonly relay: ResponseRelay | undefined;
}

/** The response's exchange state, read by the one shared 'close' listener (no closure per request). */
const kTrace = Symbol('tollgate.trace');
const kExchange = Symbol('tollgate.exchange');
interface TrackedResponse extends ServerResponse {
  [kTrace]?: CallTrace;
  [kExchange]?: Exchange<Forwarded>;
}

/** Whatever ends the exchange first: the tool's answer, Tollgate's own reply, or the agent going away. */
function onResponseClose(this: TrackedResponse): void {
  this[kTrace]?.end(this.headersSent ? { statusCode: this.statusCode } : { errorType: 'client_closed' });
  // An exchange that completed ignores abort(), so no test of how the close came is needed
  // (writableFinished cannot tell: an HTTP/2 stream torn down with its session reports itself finished).
  this[kExchange]?.abort();
}

/** Creates the request pipeline shared by every listener. */
export function createRequestHandler(options: ProxyOptions): RequestHandler {
  const { config, upstreams, step } = options;
  const observer = options.observer ?? createNoopObserver();
  const log = options.logger.child({ component: 'pep' });
  const denyStatus = config.proxy.denyStatus;
  const pathOptions = { pathNormalization: config.proxy.pathNormalization } as const;

  async function handle(req: IncomingMessage, res: ServerResponse, context: RequestContext): Promise<void> {
    const requestId = newUuid();
    let request: CanonicalRequest;
    try {
      request = normalizeRequest(rawRequestOf(req, context, requestId), pathOptions);
    } catch (err) {
      send(res, errorReply(wrapError('TG_ERR_BAD_REQUEST', 'bad request', err)), true);
      return;
    }
    const loop = viaLoopError(request.headers.via);
    if (loop !== undefined) {
      send(res, errorReply(loop), true);
      return;
    }

    let head: BodyHead;
    try {
      // RFC 9112 §6.3: framing from the request as sent (Node's req.headers would be a second header map).
      head = request.hasBody ? await bufferBody(req, config.proxy.maxRequestBytes) : NO_BODY;
    } catch (err) {
      log.debug({ err }, 'request body could not be read');
      res.destroy();
      return;
    }

    const tr = observer.tracing.startCall({
      method: request.method,
      scheme: request.scheme,
      authority: request.authority,
      target: request.path,
      headers: request.headers,
    });
    (res as TrackedResponse)[kTrace] = tr;
    res.on('close', onResponseClose);
    const peer = context.peerSpiffeId ?? peerSpiffeId(req.socket);
    const verdict = await step.decide(
      { request, body: head, trace: tr, connect: context.connect, peerSpiffeId: peer },
      'http',
    );
    if (verdict.kind !== 'allow') {
      const reply = verdictReply(verdict, denyStatus);
      if (verdict.kind === 'fail') tr.end({ statusCode: reply.status, errorType: verdict.error.code });
      else if (verdict.kind === 'deny') tr.end({ statusCode: reply.status });
      send(res, reply, head.truncated || verdict.kind === 'refuse');
      return;
    }
    forward(req, res, request, head, verdict.decision, verdict.decisionId, tr, verdict.input);
  }

  function forward(
    req: IncomingMessage,
    res: ServerResponse,
    request: CanonicalRequest,
    head: BodyHead,
    decision: Decision | undefined,
    decisionId: string,
    tr: CallTrace,
    input: PolicyInput,
  ): void {
    const headers: Record<string, string> = { ...request.headers };
    if (decision !== undefined) {
      for (const name of decision.requestHeadersToRemove) delete headers[name.toLowerCase()];
      // OkHttpResponse.headers: append defaults to false, so a policy header overrides.
      for (const [name, value] of decision.headers) headers[name.toLowerCase()] = value;
    }
    const path =
      decision === undefined
        ? request.path
        : applyQueryChanges(request.path, decision.queryParametersToSet, decision.queryParametersToRemove);
    const hasBody = head.truncated || head.bytes.length > 0;
    const body = head.truncated
      ? Readable.from(forwardBody(head, req), { objectMode: false })
      : hasBody
        ? head.bytes
        : null;
    if (!head.truncated && hasBody) headers['content-length'] = String(head.bytes.length);
    headers.via = appendVia(headers.via);
    // After the policy's header changes: the tool sees Tollgate's CLIENT span as its parent.
    tr.forward(headers, path === request.path ? undefined : `${request.scheme}://${request.authority}${path}`);
    const relay = options.responses?.relay({
      input,
      decisionId,
      server: request.authority,
      trace: tr,
      requestedBy: request.source.address,
    });
    // The answer is read by Tollgate: ask for it uncompressed (a compressed one cannot be inspected).
    if (relay !== undefined) headers['accept-encoding'] = 'identity';
    const exchange = new Exchange<Forwarded>(hooks, res, {
      authority: request.authority,
      host: request.host,
      decision,
      decisionId,
      trace: tr,
      relay,
    });
    (res as TrackedResponse)[kExchange] = exchange;
    exchange.send(upstreams.pool(request.scheme, request.host, request.port), {
      path,
      method: request.method,
      headers,
      body,
    });
  }

  /** Shared by every exchange of this listener. */
  const hooks: ExchangeHooks = {
    onHead(exchange, statusCode, upstreamHeaders, seconds) {
      const { res } = exchange;
      const { decision, decisionId, relay, trace } = exchange.data as Forwarded;
      trace.end({ statusCode });
      observer.metrics.recordUpstream((exchange.data as Forwarded).authority, statusCode, seconds);
      decision?.onUpstream?.(statusCode);
      const out = stripHopByHopResponse(upstreamHeaders as Record<string, string | string[] | undefined>);
      if (decision !== undefined) {
        for (const [name, value] of decision.responseHeadersToAdd) {
          const key = name.toLowerCase();
          const prior = out[key];
          out[key] = prior === undefined ? value : Array.isArray(prior) ? [...prior, value] : [prior, value];
        }
      }
      out[DECISION_ID_HEADER] = decisionId;
      // An MCP answer with response decisions or pinning: the relay writes the head itself.
      if (relay !== undefined) return relay.start(statusCode, out, res, () => exchange.abort());
      res.writeHead(statusCode, out);
      // A streamed answer (SSE, or chunked with no length) must reach the agent before its
      // first event: send the head now. Otherwise it leaves with the first body chunk,
      // saving a write per response.
      const contentType = upstreamHeaders['content-type'];
      if (
        upstreamHeaders['content-length'] === undefined ||
        (typeof contentType === 'string' && contentType.startsWith('text/event-stream'))
      ) {
        res.flushHeaders();
      }
      return res;
    },
    onError(exchange, error, seconds) {
      const { res } = exchange;
      const data = exchange.data as Forwarded;
      if (!res.headersSent) {
        data.decision?.onUpstream?.(undefined);
        data.trace.end({ errorType: error.code });
        observer.metrics.recordUpstream(data.authority, undefined, seconds);
      }
      log.debug({ err: error, host: data.host }, 'upstream failed');
      send(res, errorReply(error, data.decisionId), true);
    },
  };

  return (req, res, context) => {
    handle(req, res, context).catch((err: unknown) => {
      log.error({ err }, 'unexpected error while handling a request');
      send(res, errorReply(wrapError('TG_ERR_UPSTREAM', 'internal error', err)), true);
    });
  };
}

/** Creates the outbound listener. */
export function createProxy(options: ProxyOptions & { readonly hooks?: ProxyHooks }): Proxy {
  const { config } = options;
  const log = options.logger.child({ component: 'proxy' });
  const { host: listenHost, port: listenPort } = splitHostPort(config.proxy.listen);
  const sockets = new Set<Socket>();
  const observer = options.observer ?? createNoopObserver();
  const handler = createRequestHandler({ ...options, observer });
  const plain: RequestContext = { scheme: 'http' };
  const mtls = config.agent.identity.mtls;
  const serverOptions = { maxHeaderSize: config.proxy.maxHeaderBytes, requestTimeout: 0 };
  // With mTLS, the connection's SVID is the agent; one without a trusted SVID gets a 401 on every door.
  const server: Server =
    mtls === undefined
      ? createServer(serverOptions, (req, res) => handler(req, res, plain))
      : createTlsServer({ ...serverOptions, ...mtlsContext(mtls), rejectUnauthorized: false }, (req, res) => {
          const refused = refusedPeer(req.socket);
          if (refused === undefined) handler(req, res, plain);
          else send(res, refused, true);
        });
  const stopWatching = mtls === undefined ? undefined : watchMtls(server as never, mtls, options.logger);
  function refusedPeer(socket: object): LocalReply | undefined {
    const evidence = peerOf(socket);
    return evidence?.kind === 'refused' ? errorReply(evidence.error) : undefined;
  }
  function refuseRaw(socket: Duplex): boolean {
    const reply = refusedPeer(socket);
    if (reply === undefined) return false;
    rawSocketReply(socket, reply.status, 'Unauthorized', JSON.parse(reply.body) as Record<string, unknown>);
    return true;
  }
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    observer.metrics.connectionOpened('proxy');
    socket.on('close', () => {
      sockets.delete(socket);
      observer.metrics.connectionClosed('proxy');
    });
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
    const error = new TollgateError(
      tooLarge ? 'TG_ERR_HEADERS_TOO_LARGE' : 'TG_ERR_BAD_REQUEST',
      `malformed request: ${err.code ?? err.message}`,
    );
    log.debug({ code: err.code }, 'malformed request rejected');
    rawSocketReply(socket, error.status, tooLarge ? 'Request Header Fields Too Large' : 'Bad Request', {
      error: { code: error.code, message: error.message },
    });
  });
  // CONNECT tunnels and protocol upgrades are not relayed by this listener: refuse
  // them explicitly rather than let any byte through without a decision.
  server.on('connect', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (refuseRaw(socket)) return;
    if (options.hooks?.onConnect) return options.hooks.onConnect(req, socket, head);
    rawSocketReply(socket, 501, 'Not Implemented', {
      error: { code: 'TG_ERR_UNSUPPORTED', message: 'CONNECT tunnels are not served by this listener' },
    });
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (refuseRaw(socket)) return;
    if (options.hooks?.onUpgrade) return options.hooks.onUpgrade(req, socket, head);
    rawSocketReply(socket, 501, 'Not Implemented', {
      error: { code: 'TG_ERR_UNSUPPORTED', message: 'protocol upgrades are not served by this listener' },
    });
  });

  return {
    listen() {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(listenPort, listenHost, () => {
          server.off('error', reject);
          resolve(server.address() as AddressInfo);
        });
      });
    },
    close() {
      stopWatching?.();
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        for (const socket of sockets) socket.destroy();
      });
    },
  };
}
