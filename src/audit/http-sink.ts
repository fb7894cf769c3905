/**
 * Ships decision records to an HTTP endpoint in OPA's decision-log upload format: a
 * POST whose body is a gzip-compressed JSON array of events (`Content-Type:
 * application/json`, `Content-Encoding: gzip`), as OPA sends to `<service>/logs`.
 * Records are buffered (bounded; new ones are dropped and counted while the endpoint
 * stays down) and flushed every flushIntervalMs or when a batch is full. Failures are
 * retried on the next tick and reported by a rate-limited warn line; nothing here
 * ever blocks or fails a request.
 */
import { gzip } from 'node:zlib';
import { promisify } from 'node:util';

const gzipAsync = promisify(gzip);

/** Options of createHttpSink. */
export interface HttpSinkOptions {
  /** Full upload URL, e.g. "https://logs.example/logs". */
  readonly url: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** Default 5000. */
  readonly flushIntervalMs?: number;
  /** Uncompressed bytes per upload (OPA's upload_size_limit_bytes). Default 1 MiB. */
  readonly maxBatchBytes?: number;
  /** Records held while the endpoint is down; beyond it new records are dropped (and counted). Default 10000. */
  readonly maxBufferRecords?: number;
  /** Per-upload timeout. Default 10000. */
  readonly timeoutMs?: number;
  readonly onDropped: (count: number) => void;
  readonly warn: (obj: object, msg: string) => void;
}

/** The HTTP sink: takes sealed JSON lines. */
export interface HttpSink {
  add(lines: readonly string[]): void;
  /** Uploads everything buffered (one attempt per batch). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** Creates an HTTP sink with its periodic flush timer. */
export function createHttpSink(options: HttpSinkOptions): HttpSink {
  const maxBatchBytes = options.maxBatchBytes ?? 1024 * 1024;
  const maxBuffer = options.maxBufferRecords ?? 10000;
  const timeoutMs = options.timeoutMs ?? 10000;
  let buffer: string[] = [];
  let bufferedBytes = 0;
  let inFlight: Promise<void> | undefined;
  let lastWarn = 0;
  let failures = 0;

  const timer = setInterval(() => void flush(), options.flushIntervalMs ?? 5000);
  timer.unref();

  async function upload(batch: readonly string[]): Promise<boolean> {
    try {
      const body = await gzipAsync(Buffer.from(`[${batch.join(',')}]`, 'utf8'));
      const res = await fetch(options.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-encoding': 'gzip', ...options.headers },
        body,
        signal: AbortSignal.timeout(timeoutMs),
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) return true;
      throw new Error(`upload answered ${res.status}`);
    } catch (err) {
      failures++;
      const now = Date.now();
      if (now - lastWarn >= 30_000) {
        lastWarn = now;
        options.warn(
          {
            component: 'decision-log',
            url: options.url,
            err: err instanceof Error ? err.message : String(err),
            failures,
            buffered: buffer.length,
          },
          'decision log upload failed; will retry',
        );
        failures = 0;
      }
      return false;
    }
  }

  async function drain(): Promise<void> {
    while (buffer.length > 0) {
      let bytes = 0;
      let count = 0;
      while (count < buffer.length && (count === 0 || bytes + buffer[count]!.length + 1 <= maxBatchBytes)) {
        bytes += buffer[count]!.length + 1;
        count++;
      }
      const batch = buffer.slice(0, count);
      if (!(await upload(batch))) return;
      buffer = buffer.slice(count);
      bufferedBytes -= bytes;
    }
  }

  function flush(): Promise<void> {
    inFlight ??= drain().finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  }

  return {
    add(lines) {
      let dropped = 0;
      for (const line of lines) {
        // Full: the newest records are refused, as the decision log's own queue does, so
        // an upload in flight (holding the front of the buffer) is never disturbed.
        if (buffer.length >= maxBuffer) {
          dropped++;
          continue;
        }
        buffer.push(line);
        bufferedBytes += line.length + 1;
      }
      if (dropped > 0) options.onDropped(dropped);
      if (bufferedBytes >= maxBatchBytes) void flush();
    },
    flush,
    async close() {
      clearInterval(timer);
      if (inFlight !== undefined) await inFlight;
      await flush();
      if (buffer.length > 0) {
        options.onDropped(buffer.length);
        options.warn(
          { component: 'decision-log', url: options.url, dropped: buffer.length },
          'decision log records not uploaded before shutdown',
        );
        buffer = [];
      }
    },
  };
}
