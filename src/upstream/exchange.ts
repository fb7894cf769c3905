/**
 * One forwarded request on an undici Pool, driven through `dispatch()` with a handler
 * object rather than `pool.stream()`: no per-request Promise, AbortController or
 * closures. Why it matters: a sidecar at a paced 1,000 req/s spends its tail in
 * young-generation GC, and per-request objects reachable from long-lived ones (the
 * keep-alive socket, the pool's queue, listener arrays) survive scavenges although they
 * are already dead; the state of one exchange lives in this one object and its methods
 * are on the prototype.
 *
 * The response head goes through `onHead` (a per-listener function, not per request);
 * the body is written to the sink it returns (the agent's response, or an MCP relay),
 * pausing the upstream while the sink is full. The agent going away aborts the upstream
 * request (the caller calls abort() from a shared 'close' listener).
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Readable, Writable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { UpstreamPool } from './pool.ts';
import { wrapError, type TollgateError } from '../errors.ts';

/** What one listener hands every exchange (shared, created once). */
export interface ExchangeHooks {
  /**
   * The upstream answered with a head: write it (or hand it to a relay) and return where
   * the body goes. `seconds` is the time since forwarding started.
   */
  onHead(exchange: Exchange, statusCode: number, headers: IncomingHttpHeaders, seconds: number): Writable;
  /** The upstream failed before or during the answer (not after the agent went away). */
  onError(exchange: Exchange, error: TollgateError, seconds: number): void;
}

/** What is sent upstream. */
export interface ExchangeRequest {
  readonly path: string;
  readonly method: string;
  readonly headers: OutgoingHttpHeaders | Record<string, string>;
  readonly body: Buffer | Readable | null;
}

/** The reason given to undici when the agent is gone (one shared object; its stack is never read). */
const CLIENT_GONE = new Error('the agent closed the connection');

/** Upstream error → 502 / 504 (one mapping). */
export function upstreamError(err: unknown): TollgateError {
  const code = (err as { code?: string }).code ?? '';
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return wrapError('TG_ERR_UPSTREAM_TIMEOUT', 'upstream timed out', err);
  }
  return wrapError('TG_ERR_UPSTREAM', 'upstream request failed', err);
}

/** One request forwarded upstream and its answer relayed: undici's dispatch handler. */
export class Exchange<T = unknown> implements Dispatcher.DispatchHandler {
  /** The agent's response. */
  readonly res: ServerResponse;
  /** The caller's per-request data (what onHead / onError need), kept as given. */
  readonly data: T;
  private readonly hooks: ExchangeHooks;
  private readonly started = performance.now();
  private controller: Dispatcher.DispatchController | undefined = undefined;
  private sink: Writable | undefined = undefined;
  private aborted = false;
  private done = false;
  private resumeUpstream: (() => void) | undefined = undefined;

  constructor(hooks: ExchangeHooks, res: ServerResponse, data: T) {
    this.hooks = hooks;
    this.res = res;
    this.data = data;
  }

  /** Sends the request on the pool. */
  send(pool: UpstreamPool, request: ExchangeRequest): void {
    const options: Dispatcher.DispatchOptions = {
      path: request.path,
      method: request.method as Dispatcher.HttpMethod,
      headers: request.headers as Record<string, string>,
      body: request.body,
    };
    try {
      pool.dispatch(options, this);
    } catch (err) {
      this.onResponseError(undefined, err as Error);
    }
  }

  /** The agent is gone (or a relay gave up): stop the upstream request; nothing more is written. */
  abort(): void {
    if (this.aborted || this.done) return;
    this.aborted = true;
    this.controller?.abort(CLIENT_GONE);
  }

  /** True once the answer was relayed completely or failed. */
  get finished(): boolean {
    return this.done;
  }

  /** Seconds since the request was handed to the pool. */
  elapsed(): number {
    return (performance.now() - this.started) / 1000;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.aborted) controller.abort(CLIENT_GONE);
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    if (this.aborted) return;
    // 1xx informational heads other than 101 are not relayed (undici does not pass them on either).
    const sink = this.hooks.onHead(this, statusCode, headers, this.elapsed());
    this.sink = sink;
    if (sink !== (this.res as unknown as Writable)) {
      // A relay of its own: its failure or early close stops the upstream (as stream() did).
      sink.on('error', () => this.abort());
      sink.on('close', () => {
        if (!this.done) this.abort();
      });
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    const sink = this.sink;
    if (sink === undefined || this.aborted) return;
    if (!sink.write(chunk)) {
      controller.pause();
      // Only a slow agent pays for this closure; the fast path allocates none.
      this.resumeUpstream ??= () => this.controller?.resume();
      sink.once('drain', this.resumeUpstream);
    }
  }

  onResponseEnd(): void {
    this.done = true;
    if (this.aborted) return;
    this.sink?.end();
  }

  onResponseError(controller: Dispatcher.DispatchController | undefined, err: Error): void {
    if (this.done) return;
    this.done = true;
    if (this.aborted) return;
    const sink = this.sink;
    if (sink !== undefined && sink !== (this.res as unknown as Writable) && !sink.destroyed) sink.destroy();
    this.hooks.onError(this, upstreamError(err), this.elapsed());
  }
}
