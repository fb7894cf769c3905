/**
 * The two ways an MCP answer's body is relayed once the response stage took it over:
 * application/json (buffered up to the limit, decided whole, re-framed with its new
 * Content-Length) and text/event-stream (relayed event by event, only the event being
 * decided held, chunked). What cannot be inspected is blocked or passed as configured.
 */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { Writable } from 'node:stream';
import type { Logger } from 'pino';
import type { Metrics } from '../telemetry/metrics.ts';
import { parseJson } from '../input/exact-json.ts';

/** One answer being relayed, and what the sinks need of the response stage. */
export interface Answer {
  readonly status: number;
  /** The head to relay (hop-by-hop stripped, decision id added). */
  readonly headers: OutgoingHttpHeaders;
  readonly res: ServerResponse;
  /** Stops the upstream exchange after Tollgate answered on its own. */
  readonly abort: () => void;
  readonly maxBytes: number;
  readonly onUninspectable: 'block' | 'pass';
  readonly metrics: Pick<Metrics, 'recordResponseDecision'>;
  readonly log: Logger;
  /** The request's decision id (logs). */
  readonly decisionId: string;
  /** Decides one parsed message; `changed` says whether it must be re-serialised. */
  decide(message: unknown): Promise<{ out: unknown; changed: boolean }>;
  /** JSON-RPC errors, one per request id not answered yet. */
  blockedFor(reason: string): unknown[];
  /** Marks a response id as answered (SSE). */
  answered(id: unknown): void;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Writes and waits for the socket to take more (or to be gone). */
function write(res: ServerResponse, data: string | Buffer): Promise<void> {
  if (res.write(data) || res.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}

/** A sink that drops what undici still writes after Tollgate answered. */
export const discard = (): Writable =>
  new Writable({
    write(_chunk, _encoding, callback) {
      callback();
    },
  });

// SSE (WHATWG HTML §9.2.6): events end at a blank line; lines end in CRLF, LF or CR.
const EVENT_END = /\r\n\r\n|\n\n|\r\r/;

/** Tollgate's own answer in place of one it could not inspect (status kept: the exchange itself succeeded). */
export function replyBlocked(
  res: ServerResponse,
  status: number,
  headers: OutgoingHttpHeaders,
  messages: unknown[],
  sse: boolean,
): void {
  const payload = JSON.stringify(messages.length === 1 ? messages[0] : messages);
  const out: OutgoingHttpHeaders = { ...headers };
  delete out['content-encoding'];
  delete out['content-length'];
  if (sse) {
    const body = `event: message\ndata: ${payload}\n\n`;
    out['content-length'] = String(Buffer.byteLength(body));
    res.writeHead(status, out);
    res.end(body);
    return;
  }
  out['content-type'] = 'application/json';
  out['content-length'] = String(Buffer.byteLength(payload));
  res.writeHead(status < 300 ? status : 200, out);
  res.end(payload);
}

/** The body of an application/json answer: buffered (bounded), decided, sent with its new Content-Length. */
export function jsonSink(a: Answer): Writable {
  const { status, headers, res } = a;
  const chunks: Buffer[] = [];
  let size = 0;
  let passing = false;
  let finished = false;
  const uninspectable = (reason: string): void => {
    if (a.onUninspectable === 'pass') {
      a.metrics.recordResponseDecision('uninspectable_passed');
      passing = true;
      res.writeHead(status, headers);
      for (const c of chunks) res.write(c);
      chunks.length = 0;
      return;
    }
    a.metrics.recordResponseDecision('uninspectable_blocked');
    a.log.debug({ reason, decisionId: a.decisionId }, 'uninspectable response blocked');
    finished = true;
    replyBlocked(res, status, headers, a.blockedFor(reason), false);
    a.abort();
  };
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      if (finished) return callback();
      if (passing) return void write(res, chunk).then(() => callback());
      size += chunk.length;
      chunks.push(chunk);
      if (size > a.maxBytes) {
        uninspectable(`the response is larger than mcp.response.maxMessageBytes (${a.maxBytes} bytes)`);
      }
      callback();
    },
    final(callback) {
      if (finished) return callback();
      if (passing) {
        res.end();
        return callback();
      }
      const raw = Buffer.concat(chunks);
      if (raw.length === 0) {
        // No message (a 204, an empty 200): nothing to decide.
        res.writeHead(status, headers);
        res.end();
        return callback();
      }
      let parsed: unknown;
      try {
        parsed = parseJson(new TextDecoder('utf-8', { fatal: true }).decode(raw));
      } catch {
        uninspectable('the response body is not valid UTF-8 JSON');
        if (passing) res.end(raw);
        return callback();
      }
      void (async () => {
        let changed = false;
        if (Array.isArray(parsed)) {
          for (let i = 0; i < parsed.length; i++) {
            const r = await a.decide(parsed[i]);
            parsed[i] = r.out;
            changed ||= r.changed;
          }
        } else {
          const r = await a.decide(parsed);
          parsed = r.out;
          changed = r.changed;
        }
        const body = changed ? Buffer.from(JSON.stringify(parsed)) : raw;
        const out: OutgoingHttpHeaders = { ...headers, 'content-length': String(body.length) };
        delete out['transfer-encoding'];
        res.writeHead(status, out);
        res.end(body);
      })().then(
        () => callback(),
        (err: unknown) => callback(err as Error),
      );
    },
  });
}

/** The body of a text/event-stream answer: relayed event by event, each decided as it completes. */
export function sseSink(a: Answer): Writable {
  const { status, headers, res } = a;
  // Rewritten events change the length: the answer goes out chunked.
  const out: OutgoingHttpHeaders = { ...headers };
  delete out['content-length'];
  res.writeHead(status, out);
  res.flushHeaders();
  const decoder = new TextDecoder('utf-8');
  let pending = '';
  let passing = false;
  let finished = false;

  /** One complete event (without its blank line) → the text to relay; undefined when its data is not JSON. */
  async function relayEvent(event: string, end: string): Promise<string | undefined> {
    const lines = event.split(/\r\n|\r|\n/);
    const data: string[] = [];
    const others: string[] = [];
    for (const line of lines) {
      if (line.startsWith('data:')) data.push(line.slice(line.startsWith('data: ') ? 6 : 5));
      else others.push(line);
    }
    const text = data.join('\n');
    if (text.trim() === '') return event + end; // a priming or keep-alive event
    let parsed: unknown;
    try {
      parsed = parseJson(text);
    } catch {
      return undefined;
    }
    let changed = false;
    const messages = Array.isArray(parsed) ? parsed : [parsed];
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i];
      if (isObject(m) && 'id' in m && !('method' in m)) a.answered(m.id);
      const r = await a.decide(m);
      messages[i] = r.out;
      changed ||= r.changed;
    }
    if (!changed) return event + end;
    const payload = JSON.stringify(Array.isArray(parsed) ? messages : messages[0]);
    return [...others, `data: ${payload}`].join('\n') + '\n\n';
  }

  async function uninspectable(reason: string, rest: string): Promise<void> {
    if (a.onUninspectable === 'pass') {
      a.metrics.recordResponseDecision('uninspectable_passed');
      passing = true;
      await write(res, rest);
      return;
    }
    a.metrics.recordResponseDecision('uninspectable_blocked');
    a.log.debug({ reason, decisionId: a.decisionId }, 'uninspectable event blocked');
    finished = true;
    const messages = a.blockedFor(reason);
    if (messages.length > 0)
      await write(res, `event: message\ndata: ${JSON.stringify(messages.length === 1 ? messages[0] : messages)}\n\n`);
    res.end();
    a.abort();
  }

  async function take(chunk: Buffer): Promise<void> {
    if (finished) return;
    if (passing) return write(res, chunk);
    pending += decoder.decode(chunk, { stream: true });
    for (;;) {
      const match = EVENT_END.exec(pending);
      if (match === null) break;
      const event = pending.slice(0, match.index);
      const end = match[0];
      if (Buffer.byteLength(event) > a.maxBytes) {
        await uninspectable(`an event is larger than mcp.response.maxMessageBytes (${a.maxBytes} bytes)`, pending);
        pending = '';
        return;
      }
      pending = pending.slice(match.index + end.length);
      const text = await relayEvent(event, end);
      if (text === undefined) {
        await uninspectable('an event carries data that is not JSON', event + end + pending);
        pending = '';
        return;
      }
      await write(res, text);
    }
    if (Buffer.byteLength(pending) > a.maxBytes) {
      await uninspectable(`an event is larger than mcp.response.maxMessageBytes (${a.maxBytes} bytes)`, pending);
      pending = '';
    }
  }

  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      take(chunk).then(
        () => callback(),
        (err: unknown) => callback(err as Error),
      );
    },
    final(callback) {
      // An event the stream ended in the middle of is not dispatched by clients (WHATWG
      // §9.2.6), so it is not relayed either: no undecided message slips through.
      if (!finished) res.end();
      callback();
    },
  });
}
