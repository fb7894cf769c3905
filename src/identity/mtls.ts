/**
 * mTLS on the proxy listener: Tollgate presents its own certificate and asks every
 * agent for an X.509 SVID, verified against a SPIFFE trust bundle (PEM CAs, or a
 * SPIFFE bundle's JWKS with x509-svid keys). The files are re-read when they change
 * (SPIRE rotates SVIDs and bundles), without a restart. Node verifies the chain;
 * this module reads the verified SVID's spiffe:// URI SAN once per connection and
 * remembers it, or why the connection has no identity, for every request on it.
 */
import { readFileSync, unwatchFile, watchFile, type Stats } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import type { Server as TlsServer, SecureContextOptions, TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { TollgateError } from '../errors.ts';
import type { MtlsConfig } from '../config/schema.ts';
import { spiffeIdOfCertificate } from './spiffe.ts';

/** What a connection proved: a verified SPIFFE ID, no certificate, or why its certificate is refused. */
export type PeerEvidence =
  | { readonly kind: 'svid'; readonly spiffeId: string }
  | { readonly kind: 'none' }
  | { readonly kind: 'refused'; readonly error: TollgateError };

const peers = new WeakMap<object, PeerEvidence>();

/** The evidence recorded for a connection (sockets of a plain listener have none). */
export function peerOf(socket: object): PeerEvidence | undefined {
  return peers.get(socket);
}

/** The verified SPIFFE ID of a connection, when it presented a trusted SVID. */
export function peerSpiffeId(socket: object): string | undefined {
  const evidence = peers.get(socket);
  return evidence?.kind === 'svid' ? evidence.spiffeId : undefined;
}

/** PEM CA certificates of a trust bundle: PEM as is, or a SPIFFE bundle (JWKS, keys with use x509-svid). */
export function trustBundlePem(text: string, file: string): string {
  const trimmed = text.trim();
  if (!trimmed.startsWith('{')) {
    if (!trimmed.includes('-----BEGIN CERTIFICATE-----'))
      throw new TollgateError('TG_ERR_CONFIG_INVALID', `trust bundle ${file} holds no PEM certificate`);
    return text;
  }
  let keys: Array<{ use?: string; x5c?: string[] }>;
  try {
    keys = (JSON.parse(trimmed) as { keys?: typeof keys }).keys ?? [];
  } catch (err) {
    throw new TollgateError('TG_ERR_CONFIG_INVALID', `trust bundle ${file} is neither PEM nor a SPIFFE bundle`, {
      cause: err,
    });
  }
  const pems = keys
    .filter((key) => key.use === 'x509-svid' && Array.isArray(key.x5c) && key.x5c.length > 0)
    .map((key) => new X509Certificate(Buffer.from(key.x5c![0]!, 'base64')).toString());
  if (pems.length === 0)
    throw new TollgateError('TG_ERR_CONFIG_INVALID', `SPIFFE bundle ${file} has no x509-svid authority`);
  return pems.join('\n');
}

/** The TLS options of the listener, read from the configured files now. */
export function mtlsContext(config: MtlsConfig): SecureContextOptions & { requestCert: true } {
  const read = (file: string, what: string): string => {
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      throw new TollgateError('TG_ERR_CONFIG_INVALID', `agent.identity.mtls.${what} ${file} cannot be read`, {
        cause: err,
      });
    }
  };
  return {
    cert: read(config.certFile, 'certFile'),
    key: read(config.keyFile, 'keyFile'),
    ca: trustBundlePem(read(config.bundleFile, 'bundleFile'), config.bundleFile),
    requestCert: true,
  };
}

/**
 * The evidence of a connection that finished its handshake. Node verifies the chain
 * but is told not to drop the connection (rejectUnauthorized: false), so an agent
 * with a missing or untrusted certificate gets a 401 naming why instead of a bare
 * TLS alert.
 */
export function evidenceOf(socket: TLSSocket, config: MtlsConfig): PeerEvidence {
  const certificate = socket.getPeerCertificate();
  const presented = certificate !== null && Object.keys(certificate).length > 0;
  if (!presented) {
    return config.requireClientCert
      ? {
          kind: 'refused',
          error: new TollgateError('TG_ERR_IDENTITY', 'no client certificate: this listener requires an X.509 SVID'),
        }
      : { kind: 'none' };
  }
  if (!socket.authorized) {
    const reason = String(socket.authorizationError ?? 'unknown reason');
    return {
      kind: 'refused',
      error: new TollgateError(
        'TG_ERR_IDENTITY',
        `client certificate is not trusted by the SPIFFE bundle ${config.bundleFile}: ${reason} (untrusted SVID)`,
      ),
    };
  }
  try {
    return { kind: 'svid', spiffeId: spiffeIdOfCertificate(certificate) };
  } catch (err) {
    return { kind: 'refused', error: err as TollgateError };
  }
}

/** Records each connection's evidence and reloads the files when they change; returns the stop function. */
export function watchMtls(server: TlsServer, config: MtlsConfig, logger: Logger): () => void {
  const log = logger.child({ component: 'mtls' });
  server.on('secureConnection', (socket: TLSSocket) => peers.set(socket, evidenceOf(socket, config)));
  const files = [config.certFile, config.keyFile, config.bundleFile];
  const reload = (current: Stats, previous: Stats): void => {
    if (current.mtimeMs === previous.mtimeMs && current.size === previous.size) return;
    try {
      server.setSecureContext(mtlsContext(config));
      log.info({ files }, 'mTLS certificate, key or trust bundle reloaded');
    } catch (err) {
      // A half-written rotation: keep the last good context, try again on the next change.
      log.warn({ err }, 'mTLS files changed but do not load; the previous ones stay in use');
    }
  };
  for (const file of files) watchFile(file, { interval: 500, persistent: false }, reload);
  return () => {
    for (const file of files) unwatchFile(file, reload);
  };
}
