/**
 * gRPC over HTTP/2, server side, as the ext_authz listener needs it: unary methods
 * (Authorization/Check, Health/Check) and streams of messages (Health/Watch, reflection),
 * on node:http2 directly. A Check is one small request and one small response on a long-lived
 * Envoy connection: a general gRPC stack's per-call layers (interceptors, metadata objects,
 * channelz, stream decoders) cost more CPU and garbage than deciding does.
 *
 * What it implements of the protocol (grpc/doc/PROTOCOL-HTTP2.md):
 *   - POST only (else HTTP 405), content-type application/grpc[+proto] (else HTTP 415);
 *   - length-prefixed messages, compressed ones in gzip or deflate (grpc-encoding), anything
 *     else UNIMPLEMENTED with grpc-accept-encoding; a message over the limit RESOURCE_EXHAUSTED
 *     as soon as its length prefix arrives, the rest of its bytes read and dropped;
 *   - grpc-timeout is the client's to enforce: at its deadline it cancels the call (RST_STREAM)
 *     and the answer is dropped, so no timer is kept per call;
 *   - answers as HEADERS, DATA, trailers (grpc-status, percent-encoded grpc-message), errors
 *     as trailers-only; an unknown service or method UNIMPLEMENTED, worded as grpc-go words it;
 *   - a cancelled call (RST_STREAM) is dropped quietly; a broken connection only ends its calls.
 */
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { gunzipSync, inflateSync } from 'node:zlib';

/** gRPC status codes (google.rpc.Code) this layer answers with itself. */
const STATUS = {
  OK: 0,
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

/** A streaming method: each request message as it arrives, then the client's half-close. */
export interface StreamingHandler {
  message(request: Buffer, call: ServerStream): void;
  /** The client sent its last message; the default ends the call with OK. */
  halfClose?(call: ServerStream): void;
}

export interface GrpcServerOptions {
  /** Largest request message accepted, in bytes, after decompression. */
  readonly maxReceiveBytes: number;
  /** A connection- or stream-level failure, for the log. */
  readonly onError?: (err: Error) => void;
}

const ACCEPT_ENCODING = 'identity,deflate,gzip';

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

/** Cuts the request's DATA into messages, checking sizes and decompressing. */
class MessageReader {
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #dropping = false;

  readonly max: number;
  readonly encoding: string;

  constructor(max: number, encoding: string) {
    this.max = max;
    this.encoding = encoding;
  }

  /** The messages completed by this chunk; throws a GrpcStatusError for a bad one. */
  push(chunk: Buffer): Buffer[] {
    if (this.#dropping) return [];
    let buf: Buffer;
    if (this.#pendingBytes === 0) buf = chunk;
    else {
      this.#pending.push(chunk);
      buf = Buffer.concat(this.#pending, this.#pendingBytes + chunk.length);
      this.#pending = [];
      this.#pendingBytes = 0;
    }
    const out: Buffer[] = [];
    let at = 0;
    while (buf.length - at >= 5) {
      const compressed = buf[at]!;
      const length = buf.readUInt32BE(at + 1);
      if (compressed > 1) return this.#fail(STATUS.INTERNAL, `message prefix has an unknown flag ${compressed}`);
      if (compressed === 0 && length > this.max)
        return this.#fail(STATUS.RESOURCE_EXHAUSTED, `Received message larger than max (${length} vs. ${this.max})`);
      if (buf.length - at - 5 < length) break;
      const payload = buf.subarray(at + 5, at + 5 + length);
      at += 5 + length;
      out.push(compressed === 1 ? this.#decompress(payload) : payload);
    }
    if (at < buf.length) {
      const rest = buf.subarray(at);
      this.#pending.push(rest);
      this.#pendingBytes = rest.length;
      // A compressed message is only limited after decompression; its compressed bytes
      // are bounded by the same limit (compression never helps a message that large).
      if (this.#pendingBytes > this.max + 5)
        return this.#fail(
          STATUS.RESOURCE_EXHAUSTED,
          `Received message larger than max (${this.#pendingBytes - 5} vs. ${this.max})`,
        );
    }
    return out;
  }

  /** Bytes of an incomplete message left at the end of the stream. */
  get leftover(): number {
    return this.#pendingBytes;
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
          `Received message larger than max (after decompression) vs. ${this.max}`,
        );
      return this.#fail(STATUS.INTERNAL, `cannot decompress the message (${this.encoding}): ${(err as Error).message}`);
    }
    if (out.length > this.max)
      return this.#fail(STATUS.RESOURCE_EXHAUSTED, `Received message larger than max (${out.length} vs. ${this.max})`);
    return out;
  }

  #fail(code: number, message: string): never {
    this.#dropping = true;
    this.#pending = [];
    this.#pendingBytes = 0;
    throw new GrpcStatusError(code, message);
  }
}

/** A gRPC server on node:http2 (cleartext HTTP/2, as Envoy's ext_authz cluster speaks it). */
export class GrpcServer {
  readonly #unary = new Map<string, UnaryHandler>();
  readonly #streaming = new Map<string, StreamingHandler>();
  readonly #services = new Set<string>();
  readonly #sessions = new Set<http2.ServerHttp2Session>();
  readonly #server: http2.Http2Server;

  readonly options: GrpcServerOptions;

  constructor(options: GrpcServerOptions) {
    this.options = options;
    this.#server = http2.createServer({
      // Node's default (10 MB per connection) would end Envoy's one connection, and every
      // call on it, under a burst of large CheckRequests; messages are limited per call instead.
      maxSessionMemory: Number.MAX_SAFE_INTEGER,
    });
    this.#server.on('session', (session) => {
      this.#sessions.add(session);
      session.on('error', (err) => options.onError?.(err));
      session.once('close', () => this.#sessions.delete(session));
    });
    this.#server.on('sessionError', (err) => options.onError?.(err));
    this.#server.on('stream', (stream, headers) => this.#onStream(stream, headers));
  }

  /** Serves a unary method at /service/method. */
  unary(service: string, method: string, handler: UnaryHandler): void {
    this.#services.add(service);
    this.#unary.set(`/${service}/${method}`, handler);
  }

  /** Serves a streaming method at /service/method. */
  streaming(service: string, method: string, handler: StreamingHandler): void {
    this.#services.add(service);
    this.#streaming.set(`/${service}/${method}`, handler);
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
    stream.on('error', (err) => this.options.onError?.(err));
    if (headers[':method'] !== 'POST') {
      trailersOnly(stream, STATUS.INTERNAL, `method ${String(headers[':method'])} is not POST`, 405);
      stream.resume();
      return;
    }
    const type = headers['content-type'];
    if (typeof type !== 'string' || !/^application\/grpc(?:[+;]|$)/.test(type)) {
      trailersOnly(stream, STATUS.INTERNAL, `content-type ${String(type)} is not application/grpc`, 415);
      stream.resume();
      return;
    }
    const encoding = (headers['grpc-encoding'] as string | undefined) ?? 'identity';
    if (encoding !== 'identity' && encoding !== 'gzip' && encoding !== 'deflate') {
      trailersOnly(stream, STATUS.UNIMPLEMENTED, `grpc-encoding ${encoding} is not supported`);
      stream.resume();
      return;
    }
    const path = headers[':path'] ?? '';
    const unary = this.#unary.get(path);
    const streaming = unary === undefined ? this.#streaming.get(path) : undefined;
    if (unary === undefined && streaming === undefined) {
      const [, service = '', method = ''] = /^\/([^/]*)\/(.*)$/.exec(path) ?? [];
      trailersOnly(
        stream,
        STATUS.UNIMPLEMENTED,
        this.#services.has(service) ? `unknown method ${method} for service ${service}` : `unknown service ${service}`,
      );
      stream.resume();
      return;
    }
    const reader = new MessageReader(this.options.maxReceiveBytes, encoding);
    if (unary !== undefined) this.#serveUnary(stream, reader, unary);
    else this.#serveStreaming(stream, reader, streaming!);
  }

  #serveUnary(stream: http2.ServerHttp2Stream, reader: MessageReader, handler: UnaryHandler): void {
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
      if (count !== 1 || reader.leftover > 0) {
        const problem =
          reader.leftover > 0 ? 'the request ends inside a message' : `a unary call carries ${count} messages`;
        return trailersOnly(stream, STATUS.INTERNAL, problem);
      }
      let answer: Buffer | Promise<Buffer>;
      try {
        answer = handler(request!);
      } catch (err) {
        return fail(stream, err);
      }
      if (answer instanceof Promise)
        answer.then(
          (response) => respond(stream, response),
          (err: unknown) => fail(stream, err),
        );
      else respond(stream, answer);
    });
  }

  #serveStreaming(stream: http2.ServerHttp2Stream, reader: MessageReader, handler: StreamingHandler): void {
    const call = new Call(stream);
    stream.on('data', (chunk: Buffer) => {
      if (call.done) return;
      try {
        for (const message of reader.push(chunk)) handler.message(message, call);
      } catch (err) {
        call.end((err as GrpcStatusError).code ?? STATUS.INTERNAL, (err as Error).message);
      }
    });
    stream.on('end', () => {
      if (call.done) return;
      if (reader.leftover > 0) return call.end(STATUS.INTERNAL, 'the request ends inside a message');
      if (handler.halfClose === undefined) call.end();
      else handler.halfClose(call);
    });
  }
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
  else trailersOnly(stream, 2, err instanceof Error ? err.message : String(err));
}

function sendOkTrailers(this: http2.ServerHttp2Stream): void {
  this.sendTrailers({ 'grpc-status': '0' });
}

function respond(stream: http2.ServerHttp2Stream, message: Buffer): void {
  if (!open(stream)) return;
  stream.respond(
    { ':status': 200, 'content-type': 'application/grpc', 'grpc-accept-encoding': ACCEPT_ENCODING },
    { waitForTrailers: true },
  );
  stream.once('wantTrailers', sendOkTrailers);
  stream.end(frame(message));
}

/** A streaming call: headers on the first message, trailers at the end. */
class Call implements ServerStream {
  #done = false;
  #listeners: (() => void)[] = [];
  #status: { code: number; message: string } | undefined;

  readonly stream: http2.ServerHttp2Stream;

  constructor(stream: http2.ServerHttp2Stream) {
    this.stream = stream;
    stream.once('close', () => this.#finish());
  }

  get done(): boolean {
    return this.#done || this.stream.destroyed || this.stream.closed;
  }

  onDone(listener: () => void): void {
    if (this.done) listener();
    else this.#listeners.push(listener);
  }

  send(message: Buffer): void {
    if (this.done) return;
    this.#headers();
    this.stream.write(frame(message));
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
