/**
 * Bundle signature verification, as OPA does it (v1/bundle/verify.go): /.signatures.json
 * holds exactly one compact JWS whose payload lists every bundle file with its digest
 * ({files: [{name, hash, algorithm}], scope, keyid, iat, iss}). The JWS is checked with
 * node:crypto against the configured public key, the scope must match, then every file
 * read from the bundle must be listed with a matching digest and every listed file must
 * be present. Runs before a bundle is instantiated.
 */
import { createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { TollgateError } from '../errors.ts';
import { digestMatches, fileDigest } from './digest.ts';
import type { Bundle } from './load.ts';

/** JWS algorithms accepted for bundle signatures. */
export const SIGNING_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
] as const;

/** A JWS algorithm name. */
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];

/** The verification key of a bundle signer (OPA's keys.<id> config). */
export interface VerificationKey {
  /** Key id: when the JWT names a key (kid, or the payload's keyid), it must be this one. */
  readonly keyId: string;
  /** PEM public key (or certificate). */
  readonly publicKey: string;
  readonly algorithm: SigningAlgorithm;
  /** Scope the signature must carry ("" when the signer set none). */
  readonly scope: string;
  /** Bundle paths (glob: * and ?) excluded from digest checks, as OPA's verification.exclude_files. */
  readonly excludeFiles?: readonly string[];
}

/** Why a bundle failed verification (for the rejection counter). */
export type VerificationFailure = 'unsigned' | 'bad_signature' | 'digest_mismatch' | 'malformed';

/** A rejected signature: TG_ERR_BUNDLE_INVALID with the failure kind. */
export class SignatureError extends TollgateError {
  readonly failure: VerificationFailure;

  constructor(failure: VerificationFailure, message: string, options?: { cause?: unknown }) {
    super('TG_ERR_BUNDLE_INVALID', message, options);
    this.failure = failure;
  }
}

const HASHES: Record<string, string> = { '256': 'sha256', '384': 'sha384', '512': 'sha512' };

function b64url(part: string): Buffer {
  return Buffer.from(part, 'base64url');
}

function globToRegExp(glob: string): RegExp {
  return new RegExp(
    `^${glob
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '[^/]*')
      .replace(/\?/g, '[^/]')}$`,
  );
}

/**
 * `opa sign --bundle DIR` names files by the path it was given ("DIR/data.json"), and
 * OPA verifies a directory bundle by the same path. Tollgate keys files relative to the
 * bundle root, so a common prefix is stripped when it is a trailing part of the
 * bundle's own path (never an arbitrary prefix).
 */
function stripDirectoryPrefix(
  source: string,
  listed: Map<string, { name: string; hash: string; algorithm: string }>,
): void {
  if (listed.has('policy.wasm') || listed.has('.manifest') || listed.has('data.json')) return;
  const anchor = [...listed.keys()].find(
    (n) => /(^|\/)(policy\.wasm|\.manifest|data\.json)$/.test(n) && n.split('/').length > 1,
  );
  if (anchor === undefined) return;
  const prefix = anchor.slice(0, anchor.lastIndexOf('/') + 1);
  const dir = `${source.replace(/\/+$/, '')}/`;
  if (!dir.endsWith(prefix.replace(/^\.\//, '')) || ![...listed.keys()].every((n) => n.startsWith(prefix))) return;
  const entries = [...listed.entries()];
  listed.clear();
  for (const [name, f] of entries) listed.set(name.slice(prefix.length), f);
}

/** A prepared verifier: parse the key once, check many bundles. */
export interface BundleVerifier {
  /** Throws SignatureError when the bundle is unsigned, tampered or signed by another key. */
  verify(bundle: Bundle): void;
}

/** Creates a verifier for one key. Throws TG_ERR_CONFIG_INVALID when the key does not parse. */
export function createBundleVerifier(key: VerificationKey): BundleVerifier {
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey(key.publicKey);
  } catch (cause) {
    throw new TollgateError('TG_ERR_CONFIG_INVALID', `bundle verification key "${key.keyId}" is not a PEM public key`, {
      cause,
    });
  }
  const excluded = (key.excludeFiles ?? []).map(globToRegExp);
  const hash = HASHES[key.algorithm.slice(2)]!;
  const family = key.algorithm.slice(0, 2);

  function checkJws(
    source: string,
    token: string,
  ): { files: Array<{ name: string; hash: string; algorithm: string }> } {
    const parts = token.split('.');
    if (parts.length !== 3)
      throw new SignatureError('malformed', `${source}: .signatures.json: the signature is not a compact JWS`);
    const [h, p, s] = parts as [string, string, string];
    let header: { alg?: unknown; kid?: unknown };
    let payload: { files?: unknown; scope?: unknown; keyid?: unknown };
    try {
      header = JSON.parse(b64url(h).toString('utf8'));
      payload = JSON.parse(b64url(p).toString('utf8'));
    } catch (cause) {
      throw new SignatureError('malformed', `${source}: .signatures.json: the JWS header or payload is not JSON`, {
        cause,
      });
    }
    // OPA uses the configured key id first; a signature that names a different key is refused
    // outright (stricter than OPA, which would try the configured key anyway and fail later).
    const kid =
      typeof header.kid === 'string' && header.kid !== ''
        ? header.kid
        : typeof payload.keyid === 'string' && payload.keyid !== ''
          ? payload.keyid
          : key.keyId;
    if (kid !== key.keyId)
      throw new SignatureError(
        'bad_signature',
        `${source}: .signatures.json: signed with key "${kid}", only "${key.keyId}" is trusted`,
      );
    if (header.alg !== key.algorithm)
      throw new SignatureError(
        'bad_signature',
        `${source}: .signatures.json: algorithm ${String(header.alg)} does not match the configured ${key.algorithm}`,
      );
    const signed = Buffer.from(`${h}.${p}`, 'ascii');
    const sig = b64url(s);
    let ok: boolean;
    try {
      ok =
        family === 'ES'
          ? cryptoVerify(hash, signed, { key: publicKey, dsaEncoding: 'ieee-p1363' }, sig)
          : family === 'PS'
            ? cryptoVerify(
                hash,
                signed,
                { key: publicKey, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: -1 },
                sig,
              )
            : cryptoVerify(hash, signed, publicKey, sig);
    } catch (cause) {
      throw new SignatureError(
        'bad_signature',
        `${source}: .signatures.json: the signature could not be checked with key "${key.keyId}"`,
        { cause },
      );
    }
    if (!ok)
      throw new SignatureError(
        'bad_signature',
        `${source}: .signatures.json: failed to verify the JWT signature with key "${key.keyId}"`,
      );
    const scope = typeof payload.scope === 'string' ? payload.scope : '';
    if (scope !== key.scope)
      throw new SignatureError(
        'bad_signature',
        `${source}: .signatures.json: scope mismatch (signed "${scope}", expected "${key.scope}")`,
      );
    if (!Array.isArray(payload.files))
      throw new SignatureError('malformed', `${source}: .signatures.json: the payload lists no files`);
    return payload as { files: Array<{ name: string; hash: string; algorithm: string }> };
  }

  return {
    verify(bundle) {
      const files = bundle.files;
      if (files === undefined)
        throw new SignatureError('malformed', `${bundle.source}: the bundle's files were not kept; cannot verify`);
      const sigFile = files.get('/.signatures.json');
      if (sigFile === undefined)
        throw new SignatureError(
          'unsigned',
          `${bundle.source}: bundle missing .signatures.json file (a verification key is configured)`,
        );
      let doc: { signatures?: unknown };
      try {
        doc = JSON.parse(sigFile.toString('utf8'));
      } catch (cause) {
        throw new SignatureError('malformed', `${bundle.source}: .signatures.json is not valid JSON`, { cause });
      }
      const tokens = doc.signatures;
      if (!Array.isArray(tokens) || tokens.length === 0)
        throw new SignatureError('unsigned', `${bundle.source}: .signatures.json: missing JWT (expected exactly one)`);
      if (tokens.length > 1)
        throw new SignatureError(
          'malformed',
          `${bundle.source}: .signatures.json: multiple JWTs not supported (expected exactly one)`,
        );
      if (typeof tokens[0] !== 'string')
        throw new SignatureError('malformed', `${bundle.source}: .signatures.json: the signature is not a string`);
      const payload = checkJws(bundle.source, tokens[0]);
      const listed = new Map(payload.files.map((f) => [String(f.name).replace(/^\/+/, ''), f]));
      stripDirectoryPrefix(bundle.source, listed);
      for (const [path, bytes] of files) {
        const name = path.replace(/^\/+/, '');
        if (name === '.signatures.json' || name.endsWith('/.signatures.json')) continue;
        if (excluded.some((re) => re.test(name))) {
          listed.delete(name);
          continue;
        }
        const entry = listed.get(name);
        if (entry === undefined)
          throw new SignatureError(
            'digest_mismatch',
            `${bundle.source}: file ${name} is not included in the bundle signature`,
          );
        let matches: boolean;
        try {
          matches = digestMatches(name, bytes, entry.algorithm, String(entry.hash));
        } catch (cause) {
          throw new SignatureError(
            'digest_mismatch',
            `${bundle.source}: ${name}: cannot compute the ${entry.algorithm} digest (${(cause as Error).message})`,
            { cause },
          );
        }
        if (!matches)
          throw new SignatureError(
            'digest_mismatch',
            `${bundle.source}: ${name}: digest mismatch (signed ${entry.hash}, got ${fileDigest(name, bytes, entry.algorithm)})`,
          );
        listed.delete(name);
      }
      if (listed.size > 0)
        throw new SignatureError(
          'digest_mismatch',
          `${bundle.source}: file(s) ${[...listed.keys()].join(', ')} specified in the bundle signature but not found in the bundle`,
        );
    },
  };
}
