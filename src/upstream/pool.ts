/**
 * Upstream connections: one undici Pool per origin (scheme + connect address),
 * created on first use. TLS certificate verification stays on; the TLS server name
 * is the requested host even when a static resolve override changes the address
 * connected to.
 *
 * Origins come from agent requests, so the set of pools is bounded: a pool with no
 * request in flight and none started for `idleMs` is closed by one periodic sweep
 * (an unref'd timer; the request path only moves its entry to the back of the map),
 * and past `maxPools` the least recently used idle pool is closed when a new one is
 * made. A pool with requests in flight (a long SSE stream, a slow upload) is never
 * closed, so while every pool is busy the count may exceed `maxPools`.
 */
// undici's Pool and connector by their own modules: the package's index also loads fetch, web
// streams, WebSocket, EventSource, the cache and mocks (~90 more modules; ~2 MB of RSS at start
// in the sidecar, which loads tls and http2 anyway) that the sidecar never uses. test/upstream/pool.test.ts holds them to the index's exports.
import buildConnector from 'undici/lib/core/connect.js';
import Pool from 'undici/lib/dispatcher/pool.js';
import { splitHostPort } from '../config/load.ts';
import { guardedLookup, ownLiteralTarget } from './loop-guard.ts';

/** Default of UpstreamOptions.idleMs. */
export const DEFAULT_POOL_IDLE_MS = 60_000;
/** Default of UpstreamOptions.maxPools. */
export const DEFAULT_MAX_POOLS = 1024;

/** Options of createUpstreams. */
export interface UpstreamOptions {
  /** "name:port" → "ip:port" overrides. */
  readonly resolve: Readonly<Record<string, string>>;
  readonly headersTimeoutMs: number;
  readonly connectTimeoutMs: number;
  /** A pool idle (nothing in flight, nothing started) this long is closed. Default 60 s. */
  readonly idleMs?: number;
  /** Most pools kept; past it the least recently used idle one is closed. Default 1024. */
  readonly maxPools?: number;
}

/** An upstream pool: undici's Pool, driven by `dispatch()`. */
export type UpstreamPool = Pool;

/** The pools, keyed by origin. */
export interface Upstreams {
  /** The pool for a request to scheme://host:port; dispatch on it before yielding to the event loop. */
  pool(scheme: 'http' | 'https', host: string, port: number): Pool;
  /** Pools currently kept. */
  size(): number;
  /** Pools closed so far because they were idle or past maxPools. */
  evicted(): number;
  /** Closes idle pools now (what the periodic sweep does). */
  sweep(): void;
  close(): Promise<void>;
}

interface Entry {
  readonly pool: Pool;
  /** performance.now() of the last pool() call for this origin. */
  used: number;
  readonly scheme: 'http' | 'https';
  readonly host: string;
  readonly port: number;
}

/** True when the pool has no request queued, pending or running (a streaming body counts as running). */
function isIdle(pool: Pool): boolean {
  return pool.stats.size === 0;
}

/** Creates the per-origin pool registry. */
export function createUpstreams(options: UpstreamOptions): Upstreams {
  const idleMs = options.idleMs ?? DEFAULT_POOL_IDLE_MS;
  const maxPools = options.maxPools ?? DEFAULT_MAX_POOLS;
  // Insertion order is recency order: pool() re-inserts the entry it returns.
  const pools = new Map<string, Entry>();
  /** The entry at the back of the map. */
  let newest: Entry | undefined;
  let evictions = 0;

  const retire = (key: string, entry: Entry): void => {
    pools.delete(key);
    if (newest === entry) newest = undefined;
    evictions += 1;
    // Graceful: an idle pool has nothing to wait for, so its keep-alive sockets close now.
    entry.pool.close().catch(() => entry.pool.destroy().catch(() => undefined));
  };

  const sweep = (): void => {
    const cutoff = performance.now() - idleMs;
    for (const [key, entry] of pools) {
      // Recency order: once one entry is recent, all after it are.
      if (entry.used > cutoff) break;
      if (isIdle(entry.pool)) retire(key, entry);
    }
  };

  // Checks often enough that a pool lives at most ~1.5 × idleMs after its last use.
  const timer = setInterval(sweep, Math.max(10, Math.min(idleMs / 2, 30_000)));
  timer.unref();

  /** Makes room for one more pool: closes the least recently used idle pool. */
  const makeRoom = (): void => {
    for (const [key, entry] of pools) {
      if (isIdle(entry.pool)) {
        retire(key, entry);
        return;
      }
    }
  };

  const create = (scheme: 'http' | 'https', host: string, port: number): Pool => {
    const override = options.resolve[`${host}:${port}`];
    const target = override === undefined ? { host, port } : splitHostPort(override);
    const connectHost = target.host.includes(':') && !target.host.startsWith('[') ? `[${target.host}]` : target.host;
    const servername = host.startsWith('[') || /^\d+\.\d+\.\d+\.\d+$/.test(host) ? undefined : host;
    const connector = buildConnector({
      timeout: options.connectTimeoutMs,
      lookup: guardedLookup(target.port),
      ...(scheme === 'https' && servername ? { servername } : {}),
    } as buildConnector.BuildOptions);
    return new Pool(`${scheme}://${connectHost}:${target.port}`, {
      // Never a connection to one of Tollgate's own listeners: checked on the address
      // connected to (an IP literal here, else each address DNS returns).
      connect: (opts, callback) => {
        const own = ownLiteralTarget(target.host, target.port);
        if (own !== undefined) return callback(own, null);
        return connector(opts, callback);
      },
      headersTimeout: options.headersTimeoutMs,
      // Streams (SSE, long downloads) may idle for long; the agent decides when to give up.
      bodyTimeout: 0,
      keepAliveTimeout: 4_000,
    });
  };

  return {
    pool(scheme, host, port) {
      // Already at the back of the map (a sidecar mostly calls one origin): no key, no reinsertion.
      if (newest !== undefined && newest.host === host && newest.port === port && newest.scheme === scheme) {
        newest.used = performance.now();
        return newest.pool;
      }
      const key = `${scheme}://${host}:${port}`;
      let entry = pools.get(key);
      if (entry === undefined) {
        if (pools.size >= maxPools) makeRoom();
        entry = { pool: create(scheme, host, port), used: 0, scheme, host, port };
      } else {
        pools.delete(key);
      }
      entry.used = performance.now();
      pools.set(key, entry);
      newest = entry;
      return entry.pool;
    },
    size: () => pools.size,
    evicted: () => evictions,
    sweep,
    async close() {
      clearInterval(timer);
      const all = [...pools.values()];
      pools.clear();
      newest = undefined;
      await Promise.all(all.map((e) => e.pool.close().catch(() => e.pool.destroy())));
    },
  };
}
