/**
 * gRPC over HTTP/2, server side, as the ext_authz listener needs it: unary methods
 * (Authorization/Check, Health/Check), a server-streaming one (Health/Watch) and a
 * bidirectional one (reflection), on node:http2 directly. A Check is one small request and one
 * small response on a long-lived Envoy connection: a general gRPC stack's per-call layers
 * (interceptors, metadata objects, channelz, stream decoders) cost more CPU and garbage than
 * deciding does.
 *
 * What it implements of the protocol (grpc/doc/PROTOCOL-HTTP2.md), answering as grpc-go does:
 *   - POST only (else HTTP 405); content-type application/grpc or application/grpc+proto
 *     (else HTTP 415, INVALID_ARGUMENT); a malformed grpc-timeout is HTTP 400, INTERNAL;
 *   - length-prefixed messages, compressed ones in gzip or deflate (grpc-encoding), anything
 *     else UNIMPLEMENTED with grpc-accept-encoding; a message whose length prefix is over the
 *     limit RESOURCE_EXHAUSTED at once (its bytes are read and dropped), a compressed one also
 *     after decompression; a message is joined from its DATA frames once, when complete;
 *   - exactly one request message for unary and server-streaming methods, else INTERNAL
 *     "cardinality violation"; a streaming call stops reading while its answers wait to be sent;
 *   - grpc-timeout is the client's to enforce: at its deadline it cancels the call (RST_STREAM)
 *     and the answer is dropped, so no timer is kept per call;
 *   - answers as HEADERS, DATA, trailers (grpc-status, percent-encoded grpc-message), errors
 *     as trailers-only; an unknown service or method UNIMPLEMENTED;
 *   - a cancelled call is dropped quietly, and cancellations at any plausible rate never end
 *     the connection (Envoy cancels a Check at each of its timeouts); a broken connection only
 *     ends its own calls.
 */
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { gunzipSync, inflateSync } from 'node:zlib';

/** gRPC status codes (google.rpc.Code) this layer answers with itself. */
const STATUS = {
  OK: 0,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
} as const;

/** A gRPC status with its message, thrown by a handler to answer with it. */
export class GrpcStatusError extends Error {
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.code = code;
  }
}

/** A unary method: one request message in, one response message out (or a thrown status). */
export type UnaryHandler = (request: Buffer) => Buffer | Promise<Buffer>;

/** The server's side of a streaming call. */
export interface ServerStream {
  /** Sends one message (headers first, on the first one). Ignored once the call is over. */
  send(message: Buffer): void;
  /** Ends the call with a status (OK by default). */
  end(code?: number, message?: string): void;
  /** The call is over (ended here, cancelled by the client, or the connection went away). */
  readonly done: boolean;
  /** Called once when the call is over, however it ended. */
  onDone(listener: () => void): void;
}

/** A streaming method's handler: called with each request message. */
export type StreamingHandler = (request: Buffer, call: ServerStream) => void;

export interface GrpcServerOptions {
  /** Largest request message accepted, in bytes, after decompression. */
  readonly maxReceiveBytes: number;
  /** A connection- or stream-level failure, for the log. */
  readonly onError?: (err: Error) => void;
}

const ACCEPT_ENCODING = 'identity,deflate,gzip';
const GRPC_CONTENT_TYPE = /^application\/grpc(?:\+proto)?(?:;|$)/;
const GRPC_TIMEOUT = /^\d{1,8}[HMSmun]$/;

/** grpc-message: printable ASCII except '%' as is, everything else as %XX of its UTF-8 bytes. */
export function percentEncode(text: string): string {
  if (/^[\x20-\x24\x26-\x7e]*$/.test(text)) return text;
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function frame(message: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
}

/** Cuts the request's DATA into messages: each byte is copied at most once, when its message is complete. */
class MessageReader {
  readonly max: number;
  readonly encoding: string;
  #chunks: Buffer[] = [];
  #bytes = 0;
  /** The current message's length with its prefix, once the prefix is in; -1 before. */
  #need = -1;
  #compressed = false;
  #dropping = false;

  constructor(max: number, encoding: string) {
    this.max = max;
    this.encoding = encoding;
  }

  /** Bytes of an incomplete message held at the end of the stream. */
  get leftover(): number {
    return this.#bytes;
  }

  /** The messages completed by this chunk; throws a GrpcStatusError for a bad one. */
  push(chunk: Buffer): Buffer[] {
    if (this.#dropping || chunk.length === 0) return [];
    this.#chunks.push(chunk);
    this.#bytes += chunk.length;
    let out: Buffer[] | undefined;
    for (;;) {
      if (this.#need < 0) {
        if (this.#bytes < 5) break;
        const head = this.#chunks[0]!.length >= 5 ? this.#chunks[0]! : this.#peek(5);
        const flag = head[0]!;
        const length = head.readUInt32BE(1);
        if (flag > 1) this.#fail(STATUS.INTERNAL, `message prefix has an unknown flag ${flag}`);
        if (length > this.max)
          this.#fail(STATUS.RESOURCE_EXHAUSTED, `Received message larger than max (${length} vs. ${this.max})`);
        this.#need = 5 + length;
        this.#compressed = flag === 1;
      }
      if (this.#bytes < this.#need) break;
      const payload = this.#take(this.#need).subarray(5);
      this.#need = -1;
      (out ??= []).push(this.#compressed ? this.#decompress(payload) : payload);
    }
    return out ?? [];
  }

  /** The first n bytes (n is small), leaving the chunks as they are. */
  #peek(n: number): Buffer {
    return Buffer.concat(this.#chunks, this.#bytes).subarray(0, n);
  }

  /** Removes and returns the first n bytes. */
  #take(n: number): Buffer {
    const first = this.#chunks[0]!;
    let taken: Buffer;
    if (first.length >= n) {
      taken = first.subarray(0, n);
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
    } else {
      taken = Buffer.allocUnsafe(n);
      let at = 0;
      while (at < n) {
        const chunk = this.#chunks[0]!;
        const part = Math.min(chunk.length, n - at);
        chunk.copy(taken, at, 0, part);
        at += part;
        if (part === chunk.length) this.#chunks.shift();
        else this.#chunks[0] = chunk.subarray(part);
      }
    }
    this.#bytes -= n;
    return taken;
  }

  #decompress(payload: Buffer): Buffer {
    const options = { maxOutputLength: this.max + 1 };
    let out: Buffer;
    try {
      if (this.encoding === 'gzip') out = gunzipSync(payload, options);
      else if (this.encoding === 'deflate') out = inflateSync(payload, options);
      else return this.#fail(STATUS.INTERNAL, 'compressed flag set with identity or empty encoding');
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE')
        return this.#fail(
          STATUS.RESOURCE_EXHAUSTED,
          `Received message after decompression larger than max (${this.max})`,
        );
      return this.#fail(STATUS.INTERNAL, `cannot decompress the message (${this.encoding}): ${(err as Error).message}`);
    }
    if (out.length > this.max)
      return this.#fail(STATUS.RESOURCE_EXHAUSTED, `Received message larger than max (${out.length} vs. ${this.max})`);
    return out;
  }

  #fail(code: number, message: string): never {
    this.#dropping = true;
    this.#chunks = [];
    this.#bytes = 0;
    throw new GrpcStatusError(code, message);
  }
}

type Method =
  | { readonly kind: 'unary'; readonly handler: UnaryHandler }
  | { readonly kind: 'server-streaming'; readonly handler: StreamingHandler }
  | { readonly kind: 'bidi'; readonly handler: StreamingHandler };

/** A gRPC server on node:http2 (cleartext HTTP/2, as Envoy's ext_authz cluster speaks it). */
export class GrpcServer {
  readonly options: GrpcServerOptions;
  readonly #methods = new Map<string, Method>();
  readonly #services = new Set<string>();
  readonly #sessions = new Set<http2.ServerHttp2Session>();
  readonly #server: http2.Http2Server;
  /** One listener for every stream's errors (none made per call). */
  readonly #onStreamError: (err: Error) => void;

  constructor(options: GrpcServerOptions) {
    this.options = options;
    this.#server = http2.createServer({
      // Node's default (10 MB per connection) would end Envoy's one connection, and every
      // call on it, under a burst of large CheckRequests; messages are limited per call instead.
      maxSessionMemory: Number.MAX_SAFE_INTEGER,
      // Node ends a connection whose client cancels more than 33 streams a second after a
      // burst of 1000 (a defence against rapid resets). Envoy cancels a Check at each of its
      // timeouts: under a slow policy that rate is legitimate, and ending the connection would
      // fail every Check in flight on it. A cancelled Check costs this server next to nothing.
      streamResetBurst: 100_000,
      streamResetRate: 100_000,
    });
    this.#server.on('session', (session) => {
      this.#sessions.add(session);
      session.on('error', (err) => options.onError?.(err));
      session.once('close', () => this.#sessions.delete(session));
    });
    this.#server.on('sessionError', (err) => options.onError?.(err));
    this.#server.on('stream', (stream, headers) => this.#onStream(stream, headers));
    this.#onStreamError = (err: Error) => options.onError?.(err);
  }

  /** Serves a unary method at /service/method. */
  unary(service: string, method: string, handler: UnaryHandler): void {
    this.#add(service, method, { kind: 'unary', handler });
  }

  /** Serves a server-streaming method: one request, answered with messages until the call ends. */
  serverStreaming(service: string, method: string, handler: StreamingHandler): void {
    this.#add(service, method, { kind: 'server-streaming', handler });
  }

  /** Serves a bidirectional method: each request message as it arrives; the client's half-close ends the call with OK. */
  bidiStreaming(service: string, method: string, handler: StreamingHandler): void {
    this.#add(service, method, { kind: 'bidi', handler });
  }

  #add(service: string, method: string, entry: Method): void {
    this.#services.add(service);
    this.#methods.set(`/${service}/${method}`, entry);
  }

  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.#server.once('error', onError);
      this.#server.listen(port, host, () => {
        this.#server.off('error', onError);
        resolve(this.#server.address() as AddressInfo);
      });
    });
  }

  /** Stops accepting connections, lets calls in flight finish (GOAWAY), and ends the rest after graceMs. */
  close(graceMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        for (const session of this.#sessions) session.destroy();
      }, graceMs);
      this.#server.close(() => {
        clearTimeout(timer);
        resolve();
      });
      for (const session of this.#sessions) session.close();
    });
  }

  #onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    stream.on('error', this.#onStreamError);
    const refusal = refuse(headers);
    if (refusal !== undefined) {
      trailersOnly(stream, refusal.code, refusal.message, refusal.httpStatus);
      stream.resume();
      return;
    }
    const path = headers[':path'] ?? '';
    const method = this.#methods.get(path);
    if (method === undefined) {
      const [, service = '', name = ''] = /^\/([^/]*)\/(.*)$/.exec(path) ?? [];
      trailersOnly(
        stream,
        STATUS.UNIMPLEMENTED,
        this.#services.has(service) ? `unknown method ${name} for service ${service}` : `unknown service ${service}`,
      );
      stream.resume();
      return;
    }
    const reader = new MessageReader(this.options.maxReceiveBytes, (headers['grpc-encoding'] as string) ?? 'identity');
    if (method.kind === 'bidi') serveBidi(stream, reader, method.handler);
    else readOne(stream, reader, method);
  }
}

/** Why the request headers are not a gRPC call this server takes, if they are not. */
function refuse(
  headers: http2.IncomingHttpHeaders,
): { code: number; message: string; httpStatus?: number } | undefined {
  if (headers[':method'] !== 'POST')
    return { code: STATUS.INTERNAL, message: `method ${String(headers[':method'])} is not POST`, httpStatus: 405 };
  const type = headers['content-type'];
  if (typeof type !== 'string' || !GRPC_CONTENT_TYPE.test(type))
    return {
      code: STATUS.INVALID_ARGUMENT,
      message: `invalid gRPC request content-type ${JSON.stringify(type ?? '')}`,
      httpStatus: 415,
    };
  const timeout = headers['grpc-timeout'];
  if (timeout !== undefined && (typeof timeout !== 'string' || !GRPC_TIMEOUT.test(timeout)))
    return { code: STATUS.INTERNAL, message: `malformed grpc-timeout: ${String(timeout)}`, httpStatus: 400 };
  const encoding = headers['grpc-encoding'];
  if (encoding !== undefined && encoding !== 'identity' && encoding !== 'gzip' && encoding !== 'deflate')
    return { code: STATUS.UNIMPLEMENTED, message: `grpc-encoding ${String(encoding)} is not supported` };
  return undefined;
}

/** Reads exactly one request message, as unary and server-streaming methods take it. */
function readOne(stream: http2.ServerHttp2Stream, reader: MessageReader, method: Method): void {
  let request: Buffer | undefined;
  let count = 0;
  let failed = false;
  stream.on('data', (chunk: Buffer) => {
    if (failed) return;
    try {
      for (const message of reader.push(chunk)) {
        count++;
        request = message;
      }
    } catch (err) {
      failed = true;
      const status = err as GrpcStatusError;
      trailersOnly(stream, status.code, status.message);
    }
  });
  stream.on('end', () => {
    if (failed) return;
    if (reader.leftover > 0) return trailersOnly(stream, STATUS.INTERNAL, 'the request ends inside a message');
    if (count !== 1)
      return trailersOnly(
        stream,
        STATUS.INTERNAL,
        count === 0
          ? 'cardinality violation: received no request message from non-client-streaming RPC'
          : 'cardinality violation: received multiple request messages',
      );
    if (method.kind === 'unary') answerUnary(stream, method.handler, request!);
    else method.handler(request!, new Call(stream));
  });
}

function answerUnary(stream: http2.ServerHttp2Stream, handler: UnaryHandler, request: Buffer): void {
  let answer: Buffer | Promise<Buffer>;
  try {
    answer = handler(request);
  } catch (err) {
    return fail(stream, err);
  }
  if (answer instanceof Promise)
    answer.then(
      (response) => respond(stream, response),
      (err: unknown) => fail(stream, err),
    );
  else respond(stream, answer);
}

/** Each request message to the handler in order; reading stops while answers wait to be sent. */
function serveBidi(stream: http2.ServerHttp2Stream, reader: MessageReader, handler: StreamingHandler): void {
  const call = new Call(stream);
  const queue: Buffer[] = [];
  let next = 0;
  let ended = false;
  let waiting = false;
  const pump = (): void => {
    if (waiting) return;
    while (next < queue.length && !call.done) {
      if (call.blocked) {
        waiting = true;
        stream.pause();
        call.onDrain(() => {
          waiting = false;
          stream.resume();
          pump();
        });
        return;
      }
      handler(queue[next++]!, call);
    }
    queue.length = 0;
    next = 0;
    if (ended && !call.done) call.end();
  };
  stream.on('data', (chunk: Buffer) => {
    if (call.done) return;
    try {
      for (const message of reader.push(chunk)) queue.push(message);
    } catch (err) {
      return call.end((err as GrpcStatusError).code, (err as Error).message);
    }
    pump();
  });
  stream.on('end', () => {
    if (call.done) return;
    if (reader.leftover > 0) return call.end(STATUS.INTERNAL, 'the request ends inside a message');
    ended = true;
    pump();
  });
}

function open(stream: http2.ServerHttp2Stream): boolean {
  return !stream.destroyed && !stream.closed && !stream.headersSent;
}

function trailersOnly(stream: http2.ServerHttp2Stream, code: number, message: string, httpStatus = 200): void {
  if (!open(stream)) return;
  stream.respond(
    {
      ':status': httpStatus,
      'content-type': 'application/grpc',
      'grpc-accept-encoding': ACCEPT_ENCODING,
      'grpc-status': String(code),
      'grpc-message': percentEncode(message),
    },
    { endStream: true },
  );
}

function fail(stream: http2.ServerHttp2Stream, err: unknown): void {
  if (err instanceof GrpcStatusError) trailersOnly(stream, err.code, err.message);
  else trailersOnly(stream, STATUS.UNKNOWN, err instanceof Error ? err.message : String(err));
}

function sendOkTrailers(this: http2.ServerHttp2Stream): void {
  this.sendTrailers({ 'grpc-status': '0' });
}

function respond(stream: http2.ServerHttp2Stream, message: Buffer): void {
  if (!open(stream)) return;
  let data: Buffer;
  try {
    data = frame(message);
  } catch (err) {
    return trailersOnly(stream, STATUS.INTERNAL, `cannot send the answer: ${(err as Error).message}`);
  }
  stream.respond(
    { ':status': 200, 'content-type': 'application/grpc', 'grpc-accept-encoding': ACCEPT_ENCODING },
    { waitForTrailers: true },
  );
  stream.once('wantTrailers', sendOkTrailers);
  stream.end(data);
}

/** A streaming call: headers on the first message, trailers at the end. */
class Call implements ServerStream {
  readonly stream: http2.ServerHttp2Stream;
  #done = false;
  #blocked = false;
  #listeners: (() => void)[] = [];
  #status: { code: number; message: string } | undefined;

  constructor(stream: http2.ServerHttp2Stream) {
    this.stream = stream;
    stream.once('close', () => this.#finish());
  }

  get done(): boolean {
    return this.#done || this.stream.destroyed || this.stream.closed;
  }

  /** Sent messages wait in memory for the client to read them. */
  get blocked(): boolean {
    return this.#blocked;
  }

  /** Called once the waiting messages are sent (not called if the call ends first). */
  onDrain(listener: () => void): void {
    this.stream.once('drain', () => {
      this.#blocked = false;
      if (!this.done) listener();
    });
  }

  onDone(listener: () => void): void {
    if (this.done) listener();
    else this.#listeners.push(listener);
  }

  send(message: Buffer): void {
    if (this.done) return;
    this.#headers();
    if (!this.stream.write(frame(message))) this.#blocked = true;
  }

  end(code: number = STATUS.OK, message = ''): void {
    if (this.done) return;
    if (!this.stream.headersSent && code !== STATUS.OK) {
      trailersOnly(this.stream, code, message);
    } else {
      this.#status = { code, message };
      this.#headers();
      this.stream.end();
    }
    this.#finish();
  }

  #headers(): void {
    if (this.stream.headersSent) return;
    this.stream.respond(
      { ':status': 200, 'content-type': 'application/grpc', 'grpc-accept-encoding': ACCEPT_ENCODING },
      { waitForTrailers: true },
    );
    this.stream.once('wantTrailers', () => {
      const status = this.#status ?? { code: STATUS.OK, message: '' };
      this.stream.sendTrailers({
        'grpc-status': String(status.code),
        ...(status.message === '' ? {} : { 'grpc-message': percentEncode(status.message) }),
      });
    });
  }

  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    const listeners = this.#listeners;
    this.#listeners = [];
    for (const listener of listeners) listener();
  }
}
