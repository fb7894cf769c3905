/**
 * Upstream connections: one undici Pool per origin (scheme + connect address),
 * created on first use and closed with the sidecar. TLS certificate verification
 * stays on; the TLS server name is the requested host even when a static
 * resolve override changes the address connected to.
 */
import { Pool } from 'undici';
import { splitHostPort } from '../config/load.ts';

/** Options of createUpstreams. */
export interface UpstreamOptions {
  /** "name:port" → "ip:port" overrides. */
  readonly resolve: Readonly<Record<string, string>>;
  readonly headersTimeoutMs: number;
  readonly connectTimeoutMs: number;
}

/** The pools, keyed by origin. */
export interface Upstreams {
  /** The pool for a request to scheme://host:port. */
  pool(scheme: 'http' | 'https', host: string, port: number): Pool;
  close(): Promise<void>;
}

/** Creates the per-origin pool registry. */
export function createUpstreams(options: UpstreamOptions): Upstreams {
  const pools = new Map<string, Pool>();
  return {
    pool(scheme, host, port) {
      const key = `${scheme}://${host}:${port}`;
      let pool = pools.get(key);
      if (pool === undefined) {
        const override = options.resolve[`${host}:${port}`];
        const target = override === undefined ? { host, port } : splitHostPort(override);
        const connectHost = target.host.includes(':') && !target.host.startsWith('[') ? `[${target.host}]` : target.host;
        const servername = host.startsWith('[') || /^\d+\.\d+\.\d+\.\d+$/.test(host) ? undefined : host;
        pool = new Pool(`${scheme}://${connectHost}:${target.port}`, {
          connect: { timeout: options.connectTimeoutMs, ...(scheme === 'https' && servername ? { servername } : {}) },
          headersTimeout: options.headersTimeoutMs,
          // Streams (SSE, long downloads) may idle for long; the agent decides when to give up.
          bodyTimeout: 0,
          keepAliveTimeout: 4_000,
        });
        pools.set(key, pool);
      }
      return pool;
    },
    async close() {
      const all = [...pools.values()];
      pools.clear();
      await Promise.all(all.map((p) => p.close().catch(() => p.destroy())));
    },
  };
}
