/**
 * TLS interception: terminates the agent's TLS with a leaf certificate from the
 * local CA and runs every request inside through the same request handler as the
 * plain listener (scheme https, the tunnel's authority pinned), so a $501 refund
 * over TLS meets the same policy as over plain HTTP. Plain HTTP inside a tunnel or
 * on the transparent listener takes the same path with scheme http.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createSecureServer, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import { TollgateError } from '../errors.ts';
import { errorReply } from '../enforce/reply.ts';
import { rawSocketReply, type RequestContext, type RequestHandler } from './proxy.ts';
import { peerSpiffeId } from '../identity/mtls.ts';
import type { LeafCache } from '../tls/certs.ts';
import type { ConnectInput } from './tunnel.ts';
import type { UpgradeHandler } from './upgrade.ts';

/** Options of createInterceptor. */
export interface InterceptorOptions {
  readonly config: Config;
  readonly handler: RequestHandler;
  /** Absent: no CA loaded, serveTls refuses. */
  readonly leaves?: LeafCache;
  readonly logger: Logger;
  /** Upgrade requests (WebSocket) inside a tunnel; absent: refused. */
  readonly onUpgrade?: UpgradeHandler;
}

/** Serves HTTP over sockets handed to it by the CONNECT and transparent listeners. */
export interface Interceptor {
  /** Terminates TLS (leaf for leafHost) on a socket whose first bytes were peeked, then serves HTTP/1.1 or h2 inside. */
  serveTls(
    socket: Duplex,
    options: {
      readonly leafHost: string;
      readonly tunnelAuthority: string;
      readonly connect: ConnectInput;
      readonly firstBytes: Buffer;
    },
  ): void;
  /** Serves plain HTTP/1.1 on a socket whose first bytes were peeked. */
  servePlain(
    socket: Duplex,
    options: { readonly tunnelAuthority?: string; readonly connect: ConnectInput; readonly firstBytes: Buffer },
  ): void;
  /** Connections currently served. */
  active(): number;
  close(): void;
}

const CONTEXT = Symbol('tollgate.requestContext');

/** Idle time after which an intercepted agent connection is closed. */
const IDLE_TIMEOUT_MS = 300_000;

/** HTTP/2 connection-specific headers (RFC 9113 §8.2.2) that an h2 response must not carry. */
const H2_FORBIDDEN = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

/**
 * Adapts an h2 compat request to what the handler reads: the h2 pseudo-headers
 * become the request line and Host, as an HTTP/1.1 request would carry them; the
 * response drops connection-specific headers h2 forbids.
 */
function adaptH2(req: Http2ServerRequest, res: Http2ServerResponse): TollgateError | undefined {
  const raw = req.rawHeaders;
  const rawHeaders: string[] = [];
  let authority: string | undefined;
  let host: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name === ':authority') authority = raw[i + 1];
    else if (!name.startsWith(':')) {
      if (name.toLowerCase() === 'host') {
        if (host !== undefined)
          return new TollgateError('TG_ERR_AMBIGUOUS_TARGET', 'h2 request carries more than one host header');
        host = raw[i + 1]!;
      }
      rawHeaders.push(name, raw[i + 1]!);
    }
  }
  // RFC 9113 §8.3.1: a Host that names another entity than :authority makes the request
  // malformed; the policy would decide on one and an upstream could route by the other.
  if (authority !== undefined && host !== undefined && authority.toLowerCase() !== host.toLowerCase()) {
    return new TollgateError(
      'TG_ERR_AMBIGUOUS_TARGET',
      `h2 request :authority ${JSON.stringify(authority.slice(0, 64))} and host ${JSON.stringify(host.slice(0, 64))} disagree`,
    );
  }
  if (host === undefined && authority !== undefined) rawHeaders.unshift('host', authority);
  // RFC 9113 §8.1: an h2 body may come without content-length (DATA frames until
  // END_STREAM). Say so the HTTP/1.1 way, so code that infers "no body" from the
  // absence of both headers still reads (and decides on) this one.
  const headers = { ...req.headers } as Record<string, string | string[] | undefined>;
  if (!req.stream.endAfterHeaders && headers['content-length'] === undefined) {
    rawHeaders.push('transfer-encoding', 'chunked');
    headers['transfer-encoding'] = 'chunked';
  }
  Object.defineProperty(req, 'rawHeaders', { value: rawHeaders });
  Object.defineProperty(req, 'headers', { value: headers });
  const writeHead = res.writeHead.bind(res) as (status: number, headers?: Record<string, unknown>) => unknown;
  Object.defineProperty(res, 'writeHead', {
    value: (status: number, headers: Record<string, unknown> = {}) => {
      const out: Record<string, unknown> = {};
      for (const [name, value] of Object.entries(headers)) if (!H2_FORBIDDEN.has(name.toLowerCase())) out[name] = value;
      writeHead(status, out);
      return res;
    },
  });
  if (typeof (res as unknown as { flushHeaders?: unknown }).flushHeaders !== 'function') {
    Object.defineProperty(res, 'flushHeaders', { value: () => undefined });
  }
  return undefined;
}

/** Answers a malformed h2 request with Tollgate's error reply (the stream ends, the session lives). */
function refuseH2(res: Http2ServerResponse, error: TollgateError): void {
  const reply = errorReply(error);
  const headers: Record<string, string> = {};
  for (const [name, value] of reply.headers) headers[name] = value;
  res.writeHead(reply.status, headers);
  res.end(reply.body);
}

/** Creates the interceptor (one inner HTTP/1.1 server and one h2 server, neither listening). */
export function createInterceptor(options: InterceptorOptions): Interceptor {
  const { config, handler } = options;
  const log = options.logger.child({ component: 'intercept' });
  const contexts = new WeakMap<object, RequestContext>();
  const sockets = new Set<Duplex>();
  const track = (socket: Duplex) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };
  const fallback: RequestContext = { scheme: 'https', tunnelAuthority: 'invalid.invalid:1' };

  const http1 = createServer(
    { maxHeaderSize: config.proxy.maxHeaderBytes, requestTimeout: 0 },
    (req: IncomingMessage, res: ServerResponse) => handler(req, res, contexts.get(req.socket) ?? fallback),
  );
  http1.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
    rawSocketReply(socket, tooLarge ? 431 : 400, tooLarge ? 'Request Header Fields Too Large' : 'Bad Request', {
      error: {
        code: tooLarge ? 'TG_ERR_HEADERS_TOO_LARGE' : 'TG_ERR_BAD_REQUEST',
        message: `malformed request: ${err.code ?? err.message}`,
      },
    });
  });

  http1.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (options.onUpgrade !== undefined) return options.onUpgrade(req, socket, head, contexts.get(socket) ?? fallback);
    rawSocketReply(socket, 501, 'Not Implemented', {
      error: { code: 'TG_ERR_UNSUPPORTED', message: 'protocol upgrades are not served here' },
    });
  });

  // Agents that send SNI: one TLS server, ALPN h2 or http/1.1, leaf chosen by the SNI.
  // Agents without SNI get the CONNECT host's leaf over HTTP/1.1 (serveTls below).
  const secure = createSecureServer(
    {
      allowHTTP1: true,
      ALPNProtocols: ['h2', 'http/1.1'],
      minVersion: 'TLSv1.2',
      handshakeTimeout: config.tls.handshakeTimeoutMs,
      SNICallback: (servername, cb) => {
        try {
          if (options.leaves === undefined) throw new Error('no CA loaded');
          cb(null, options.leaves.contextFor(servername));
        } catch (err) {
          cb(err as Error, undefined);
        }
      },
    },
    (req: Http2ServerRequest | IncomingMessage, res: Http2ServerResponse | ServerResponse) => {
      if (req.httpVersionMajor === 2) {
        const malformed = adaptH2(req as Http2ServerRequest, res as Http2ServerResponse);
        if (malformed !== undefined) {
          log.debug({ code: malformed.code }, 'malformed h2 request refused');
          refuseH2(res as Http2ServerResponse, malformed);
          return;
        }
        // session.socket is a proxy of the TLS socket: the context rides on it as a symbol property.
        const context =
          (
            (req as Http2ServerRequest).stream.session?.socket as unknown as Record<symbol, RequestContext> | undefined
          )?.[CONTEXT] ?? fallback;
        handler(req as unknown as IncomingMessage, res as unknown as ServerResponse, context);
        return;
      }
      handler(req as IncomingMessage, res as ServerResponse, contexts.get(req.socket) ?? fallback);
    },
  );
  // Intercepted connections idle this long are closed (h2 sessions and HTTP/1.1 alike).
  secure.setTimeout(IDLE_TIMEOUT_MS);
  secure.on('secureConnection', (tlsSocket: TLSSocket) => {
    // The TLS server wraps the socket it was handed; its context travels along.
    const parent = (tlsSocket as unknown as { _parent?: object })._parent;
    const context = parent === undefined ? undefined : contexts.get(parent);
    if (context === undefined) {
      tlsSocket.destroy();
      return;
    }
    contexts.set(tlsSocket, context);
    (tlsSocket as unknown as Record<symbol, RequestContext>)[CONTEXT] = context;
    track(tlsSocket);
    // HTTP/2 has no half-closed connection (RFC 9113 §5.1 is per stream): an agent that ends
    // its side has gone, so close the session; its streams close and cancel their upstream
    // calls (an open SSE stream would otherwise hold its upstream request forever).
    tlsSocket.once('end', () => {
      if (tlsSocket.alpnProtocol === 'h2') tlsSocket.destroy();
    });
  });
  secure.on('tlsClientError', (err: NodeJS.ErrnoException) =>
    log.debug({ err: err.message, code: err.code }, 'intercepted TLS handshake failed'),
  );
  secure.on('sessionError', (err: Error) => log.debug({ err }, 'h2 session error'));
  secure.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (options.onUpgrade !== undefined) return options.onUpgrade(req, socket, head, contexts.get(socket) ?? fallback);
    rawSocketReply(socket, 501, 'Not Implemented', {
      error: { code: 'TG_ERR_UNSUPPORTED', message: 'protocol upgrades are not served here' },
    });
  });

  return {
    serveTls(socket, o) {
      if (options.leaves === undefined) {
        socket.destroy();
        return;
      }
      track(socket);
      socket.unshift(o.firstBytes);
      const context: RequestContext = {
        scheme: 'https',
        tunnelAuthority: o.tunnelAuthority,
        connect: { ...o.connect, phase: 'request' },
        // Requests inside the tunnel are the agent whose SVID opened it.
        peerSpiffeId: peerSpiffeId(socket),
      };
      if (o.connect.sni !== undefined) {
        contexts.set(socket, context);
        secure.emit('connection', socket);
        return;
      }
      let done = false;
      const tlsSocket = new TLSSocket(socket as never, {
        isServer: true,
        secureContext: options.leaves.contextFor(o.leafHost),
        ALPNProtocols: ['http/1.1'],
      });
      track(tlsSocket);
      // A client that never finishes the handshake holds nothing for long.
      const timer = setTimeout(() => {
        if (!done) {
          log.debug({ host: o.leafHost }, 'TLS handshake timed out');
          tlsSocket.destroy();
          socket.destroy();
        }
      }, config.tls.handshakeTimeoutMs);
      tlsSocket.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        log.debug({ err: err.message, code: err.code, host: o.leafHost }, 'intercepted TLS connection failed');
        tlsSocket.destroy();
        socket.destroy();
      });
      tlsSocket.once('secure', () => {
        done = true;
        clearTimeout(timer);
        contexts.set(tlsSocket, context);
        http1.emit('connection', tlsSocket);
      });
    },
    servePlain(socket, o) {
      track(socket);
      socket.unshift(o.firstBytes);
      contexts.set(socket, {
        scheme: 'http',
        ...(o.tunnelAuthority === undefined ? {} : { tunnelAuthority: o.tunnelAuthority }),
        connect: { ...o.connect, phase: 'request' },
        peerSpiffeId: peerSpiffeId(socket),
      });
      http1.emit('connection', socket);
      socket.resume();
    },
    active: () => sockets.size,
    close() {
      for (const socket of sockets) socket.destroy();
      sockets.clear();
      http1.close();
      secure.close();
    },
  };
}
