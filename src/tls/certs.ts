/**
 * Leaf certificates for intercepted hosts: issued on first use by the local CA,
 * kept as ready TLS secure contexts in a bounded LRU so that thousands of distinct
 * SNI names (a scan, or an attack) cost at most `maxEntries` contexts of memory.
 */
import { createSecureContext, type SecureContext } from 'node:tls';
import type { KeyObject } from 'node:crypto';
import { generateLeafKey, issueLeaf, type CertificateAuthority } from './ca.ts';

/** Options of createLeafCache. */
export interface LeafCacheOptions {
  readonly ca: CertificateAuthority;
  /** Most secure contexts kept; the least recently used one is dropped past it. */
  readonly maxEntries: number;
  /** Validity of each leaf in days (renewed a day before it ends). */
  readonly validDays?: number;
}

/** The leaf certificate cache. */
export interface LeafCache {
  /** A secure context presenting a leaf for host (a DNS name or IP literal), ALPN left to the caller. */
  contextFor(host: string): SecureContext;
  /** Entries currently held. */
  size(): number;
  /** Leaves issued since start (a cache miss each). */
  issued(): number;
}

interface Entry {
  readonly context: SecureContext;
  readonly renewAt: number;
}

/** Creates the bounded leaf cache; issuing is synchronous (~0.5 ms for ECDSA P-256). */
export function createLeafCache(options: LeafCacheOptions): LeafCache {
  const entries = new Map<string, Entry>();
  const leaf: { key: KeyObject; keyPem: string } = generateLeafKey();
  let issued = 0;
  const validDays = options.validDays ?? 30;
  return {
    contextFor(host) {
      const key = host.toLowerCase();
      const now = Date.now();
      const hit = entries.get(key);
      if (hit !== undefined && hit.renewAt > now) {
        // Map keeps insertion order: re-inserting marks it most recently used.
        entries.delete(key);
        entries.set(key, hit);
        return hit.context;
      }
      const { certPem, notAfter } = issueLeaf(options.ca, key, leaf.key, { validDays });
      issued++;
      const context = createSecureContext({ cert: certPem, key: leaf.keyPem, minVersion: 'TLSv1.2' });
      entries.delete(key);
      entries.set(key, { context, renewAt: Math.min(notAfter.getTime() - 86400_000, now + validDays * 86400_000) });
      while (entries.size > options.maxEntries) {
        const oldest = entries.keys().next().value as string;
        entries.delete(oldest);
      }
      return context;
    },
    size: () => entries.size,
    issued: () => issued,
  };
}
