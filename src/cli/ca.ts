/**
 * `tollgate ca init --out DIR`: creates the local CA that TLS interception signs
 * leaf certificates with — DIR/ca.crt (give it to agents: NODE_EXTRA_CA_CERTS,
 * SSL_CERT_FILE, REQUESTS_CA_BUNDLE) and DIR/ca.key (mode 0600, created with that
 * mode so it is never readable by others, even briefly). Existing files are kept
 * unless --force.
 */
import { mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { TollgateError } from '../errors.ts';
import { generateCa } from '../tls/ca.ts';

/** Options of caInit. */
export interface CaInitOptions {
  readonly out: string;
  readonly force?: boolean;
  readonly commonName?: string;
  readonly validDays?: number;
}

/** What caInit wrote. */
export interface CaInitResult {
  readonly certFile: string;
  readonly keyFile: string;
  /** SHA-256 fingerprint of the CA certificate. */
  readonly fingerprint: string;
}

async function writeNew(path: string, text: string, mode: number, force: boolean): Promise<void> {
  let handle;
  try {
    handle = await open(path, force ? 'w' : 'wx', mode);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST')
      throw new TollgateError('TG_ERR_INPUT_INVALID', `${path} exists; pass --force to replace it`, { cause: err });
    throw new TollgateError('TG_ERR_INPUT_INVALID', `cannot write ${path} (${code ?? 'error'})`, { cause: err });
  }
  try {
    await handle.chmod(mode); // an existing file replaced with --force keeps no wider mode
    await handle.writeFile(text);
  } finally {
    await handle.close();
  }
}

/** Creates an ECDSA P-256 CA in options.out. */
export async function caInit(options: CaInitOptions): Promise<CaInitResult> {
  await mkdir(options.out, { recursive: true, mode: 0o755 });
  const pair = generateCa({
    ...(options.commonName === undefined ? {} : { commonName: options.commonName }),
    ...(options.validDays === undefined ? {} : { validDays: options.validDays }),
  });
  const certFile = join(options.out, 'ca.crt');
  const keyFile = join(options.out, 'ca.key');
  const force = options.force ?? false;
  await writeNew(keyFile, pair.keyPem, 0o600, force);
  await writeNew(certFile, pair.certPem, 0o644, force);
  return { certFile, keyFile, fingerprint: new X509Certificate(pair.certPem).fingerprint256 };
}
