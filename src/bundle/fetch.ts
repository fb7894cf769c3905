/**
 * OPA's bundle protocol client (https://www.openpolicyagent.org/docs/management-bundles):
 * GET the bundle URL with If-None-Match: <etag of the active bundle>; 304 = unchanged,
 * 200 = a new .tar.gz. Between polls a random delay in [minDelay, maxDelay] (jitter, so a
 * fleet does not poll in step). With long polling, the request carries
 * `Prefer: wait=<seconds>`; a server that supports it holds the request until the bundle
 * changes and answers with Content-Type application/vnd.openpolicyagent.bundles, and the
 * next poll then starts at once. A bearer token is sent when configured. Every failure
 * (status other than 200/304, timeout, oversized body, connection error) is a
 * TG_ERR_BUNDLE_INVALID error; the caller keeps the active policy.
 */
import { TollgateError } from '../errors.ts';

/** The media type of a long-polling bundle server's answers. */
export const LONG_POLL_CONTENT_TYPE = 'application/vnd.openpolicyagent.bundles';

/** Options of one bundle download. */
export interface DownloadOptions {
  readonly url: string;
  readonly token?: string;
  /** ETag of the bundle we hold: sent as If-None-Match. */
  readonly etag?: string;
  /** Time allowed for the whole response (added to the long-poll wait). */
  readonly timeoutMs: number;
  /** Ask the server to hold the request up to this many seconds (Prefer: wait=N); 0 disables. */
  readonly longPollSeconds?: number;
  /** Largest bundle accepted, in bytes. */
  readonly maxBytes: number;
  readonly signal?: AbortSignal;
}

/** The outcome of one download. */
export type Download =
  | {
      readonly status: 'modified';
      readonly bytes: Buffer;
      readonly etag: string | undefined;
      readonly longPolling: boolean;
    }
  | { readonly status: 'not-modified'; readonly longPolling: boolean };

function fail(url: string, message: string, cause?: unknown): TollgateError {
  return new TollgateError('TG_ERR_BUNDLE_INVALID', `bundle server ${url}: ${message}`, { cause });
}

/** Downloads the bundle once, following OPA's bundle protocol. */
export async function downloadBundle(options: DownloadOptions): Promise<Download> {
  const headers: Record<string, string> = { accept: 'application/gzip, application/octet-stream, */*' };
  if (options.etag !== undefined) headers['if-none-match'] = options.etag;
  if (options.token !== undefined && options.token !== '') headers.authorization = `Bearer ${options.token}`;
  const wait = options.longPollSeconds ?? 0;
  if (wait > 0) headers.prefer = `wait=${wait}`;
  const timeout = AbortSignal.timeout(options.timeoutMs + wait * 1000);
  const signal = options.signal === undefined ? timeout : AbortSignal.any([timeout, options.signal]);
  let res: Response;
  try {
    res = await fetch(options.url, { headers, signal, redirect: 'follow' });
  } catch (cause) {
    const why = timeout.aborted
      ? `no answer within ${options.timeoutMs + wait * 1000} ms`
      : `unreachable (${(cause as Error).cause instanceof Error ? ((cause as Error).cause as Error).message : (cause as Error).message})`;
    throw fail(options.url, why, cause);
  }
  const longPolling = (res.headers.get('content-type') ?? '').startsWith(LONG_POLL_CONTENT_TYPE);
  if (res.status === 304) {
    await res.body?.cancel();
    return { status: 'not-modified', longPolling };
  }
  if (res.status !== 200) {
    const text = await res.text().catch(() => '');
    throw fail(
      options.url,
      `answered ${res.status}${text === '' ? '' : `: ${text.slice(0, 200).replace(/\s+/g, ' ')}`}`,
    );
  }
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > options.maxBytes) {
    await res.body?.cancel();
    throw fail(options.url, `bundle of ${declared} bytes exceeds the ${options.maxBytes}-byte limit`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of res.body ?? []) {
      size += (chunk as Uint8Array).byteLength;
      if (size > options.maxBytes) throw fail(options.url, `bundle exceeds the ${options.maxBytes}-byte limit`);
      chunks.push(Buffer.from(chunk as Uint8Array));
    }
  } catch (cause) {
    if (cause instanceof TollgateError) throw cause;
    throw fail(
      options.url,
      timeout.aborted
        ? `body not received within ${options.timeoutMs + wait * 1000} ms`
        : `body interrupted (${(cause as Error).message})`,
      cause,
    );
  }
  return { status: 'modified', bytes: Buffer.concat(chunks), etag: res.headers.get('etag') ?? undefined, longPolling };
}

/** A random delay in [min, max] ms: OPA's polling jitter. */
export function jitterDelay(minMs: number, maxMs: number, random: () => number = Math.random): number {
  return minMs + Math.floor(random() * (Math.max(maxMs, minMs) - minMs + 1));
}

/** Options of createBundlePoller. */
export interface PollerOptions extends Omit<DownloadOptions, 'etag' | 'signal'> {
  readonly minDelayMs: number;
  readonly maxDelayMs: number;
  /** ETag of a bundle already active (e.g. from last-known-good). */
  readonly etag?: string;
  /** Activates a downloaded bundle; a rejection keeps the old ETag, so the next poll fetches again. */
  onBundle(bytes: Buffer, etag: string | undefined): Promise<void>;
  /** Called for every failed poll (download or activation). */
  onError(error: TollgateError): void;
}

/** A running poll loop. */
export interface BundlePoller {
  /** Polls once now (awaitable: tests and start-up). Resolves to the outcome; never throws. */
  pollOnce(): Promise<'activated' | 'not-modified' | 'failed'>;
  /** Starts the background loop (after an initial delay). */
  start(): void;
  close(): Promise<void>;
}

/** Creates the bundle polling loop. */
export function createBundlePoller(options: PollerOptions): BundlePoller {
  let etag = options.etag;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  // With long polling configured, the first poll goes out at once: the server holds it.
  let longPolling = (options.longPollSeconds ?? 0) > 0;
  let loop: Promise<void> | undefined;
  const abort = new AbortController();
  let wake: (() => void) | undefined;

  async function pollOnce(): Promise<'activated' | 'not-modified' | 'failed'> {
    try {
      const got = await downloadBundle({ ...options, ...(etag === undefined ? {} : { etag }), signal: abort.signal });
      longPolling = got.longPolling && (options.longPollSeconds ?? 0) > 0;
      if (got.status === 'not-modified') return 'not-modified';
      await options.onBundle(got.bytes, got.etag);
      etag = got.etag;
      return 'activated';
    } catch (err) {
      longPolling = false;
      if (!closed)
        options.onError(
          err instanceof TollgateError
            ? err
            : new TollgateError('TG_ERR_BUNDLE_INVALID', `bundle server ${options.url}: ${(err as Error).message}`, {
                cause: err,
              }),
        );
      return 'failed';
    }
  }

  function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      wake = resolve;
      timer = setTimeout(resolve, ms);
      timer.unref();
    });
  }

  async function run(): Promise<void> {
    let immediate = longPolling;
    while (!closed) {
      // A long-polling server already waited for a change: ask again at once — unless it
      // answered "unchanged" without holding the request (then a hot loop would follow).
      await sleep(immediate ? 0 : jitterDelay(options.minDelayMs, options.maxDelayMs));
      if (closed) break;
      const started = Date.now();
      const outcome = await pollOnce();
      immediate = longPolling && (outcome === 'activated' || Date.now() - started >= 1000);
    }
  }

  return {
    pollOnce,
    start() {
      if (loop === undefined && !closed) loop = run();
    },
    async close() {
      closed = true;
      abort.abort();
      if (timer !== undefined) clearTimeout(timer);
      wake?.();
      await loop;
    },
  };
}
