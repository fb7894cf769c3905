/**
 * The local certificate authority that TLS interception signs leaf certificates
 * with: ECDSA P-256 keys, SHA-256 signatures, certificates written with the small
 * DER builder in der.ts (no shell-out to openssl). Profiles follow RFC 5280 and the
 * CA/Browser Forum baseline: the CA has basicConstraints CA:TRUE (critical, pathLen 0)
 * and keyUsage keyCertSign|cRLSign; a leaf has SAN (DNS or IP), serverAuth EKU,
 * digitalSignature, SKI/AKI — what OpenSSL 3, Python's VERIFY_X509_STRICT and Node accept.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign,
  X509Certificate,
  type KeyObject,
} from 'node:crypto';
import { isIP } from 'node:net';
import { TollgateError } from '../errors.ts';
import {
  bitString,
  boolean,
  explicit,
  integer,
  octetString,
  oid,
  pem,
  sequence,
  set,
  time,
  tlv,
  utf8String,
} from './der.ts';

const ECDSA_SHA256 = sequence(oid('1.2.840.10045.4.3.2'));
const OID = {
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  subjectKeyId: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyId: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
} as const;

/** A loaded CA: its certificate and signing key. */
export interface CertificateAuthority {
  readonly cert: X509Certificate;
  readonly certPem: string;
  readonly key: KeyObject;
  /** SHA-1 of the CA public key (its SKI, the leaves' AKI). */
  readonly keyId: Buffer;
}

/** A certificate and its private key, PEM-encoded. */
export interface PemPair {
  readonly certPem: string;
  readonly keyPem: string;
}

function name(commonName: string, organization = 'Tollgate'): Buffer {
  const rdn = (type: string, value: string) => set(sequence(oid(type), utf8String(value)));
  return sequence(rdn(OID.organization, organization), rdn(OID.commonName, commonName.slice(0, 64)));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? sequence(oid(id), boolean(true), octetString(value)) : sequence(oid(id), octetString(value));
}

function publicPoint(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  return Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
}

/** RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey bits. */
function keyIdentifier(publicKey: KeyObject): Buffer {
  return createHash('sha1').update(publicPoint(publicKey)).digest();
}

function serial(): Buffer {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f; // positive
  b[0] = b[0]! | 0x01; // never a leading zero octet to strip
  return b;
}

function signCertificate(tbs: Buffer, signingKey: KeyObject): Buffer {
  const signature = sign('sha256', tbs, { key: signingKey, dsaEncoding: 'der' });
  return sequence(tbs, ECDSA_SHA256, bitString(signature));
}

function tbsCertificate(options: {
  issuer: Buffer;
  subject: Buffer;
  notBefore: Date;
  notAfter: Date;
  publicKey: KeyObject;
  extensions: Buffer[];
}): Buffer {
  return sequence(
    explicit(0, integer(2)),
    integer(serial()),
    ECDSA_SHA256,
    options.issuer,
    sequence(time(options.notBefore), time(options.notAfter)),
    options.subject,
    options.publicKey.export({ type: 'spki', format: 'der' }),
    explicit(3, sequence(...options.extensions)),
  );
}

/** Creates a new self-signed CA (ECDSA P-256). */
export function generateCa(options: { commonName?: string; validDays?: number; now?: Date } = {}): PemPair {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const now = options.now ?? new Date();
  const subject = name(options.commonName ?? 'Tollgate local CA');
  const tbs = tbsCertificate({
    issuer: subject,
    subject,
    notBefore: new Date(now.getTime() - 3600_000),
    notAfter: new Date(now.getTime() + (options.validDays ?? 3650) * 86400_000),
    publicKey,
    extensions: [
      extension(OID.basicConstraints, true, sequence(boolean(true), integer(0))),
      // keyCertSign (bit 5) | cRLSign (bit 6): 0b00000110, one unused bit.
      extension(OID.keyUsage, true, bitString(Buffer.from([0x06]), 1)),
      extension(OID.subjectKeyId, false, octetString(keyIdentifier(publicKey))),
    ],
  });
  return {
    certPem: pem('CERTIFICATE', signCertificate(tbs, privateKey)),
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
  };
}

/** Loads a CA from PEM text; throws TG_ERR_CONFIG_INVALID when the pair is not a usable P-256 CA. */
export function loadCa(certPem: string, keyPem: string): CertificateAuthority {
  let cert: X509Certificate;
  let key: KeyObject;
  try {
    cert = new X509Certificate(certPem);
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw new TollgateError(
      'TG_ERR_CONFIG_INVALID',
      `tls ca: cannot parse the certificate or key: ${(err as Error).message}`,
      { cause: err },
    );
  }
  if (!cert.ca)
    throw new TollgateError(
      'TG_ERR_CONFIG_INVALID',
      'tls ca: the certificate is not a CA (basicConstraints CA:TRUE missing)',
    );
  if (!cert.checkPrivateKey(key))
    throw new TollgateError('TG_ERR_CONFIG_INVALID', 'tls ca: the key does not belong to the certificate');
  if (key.asymmetricKeyType !== 'ec')
    throw new TollgateError(
      'TG_ERR_CONFIG_INVALID',
      `tls ca: expected an EC (P-256) key, got ${key.asymmetricKeyType}`,
    );
  return { cert, certPem, key, keyId: keyIdentifier(cert.publicKey) };
}

/** Generates the key every leaf shares (as mitmproxy does): one keygen per process, not per host. */
export function generateLeafKey(): { key: KeyObject; keyPem: string } {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { key: privateKey, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}

function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  // Expand "::" and any embedded IPv4 tail into 8 groups.
  let text = ip;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = v4[1]!.split('.').map(Number);
    text = `${text.slice(0, -v4[1]!.length)}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(Number.parseInt(g, 16), i * 2));
  return out;
}

/**
 * Issues a leaf certificate for one host name or IP literal, signed by the CA.
 * Valid from an hour ago (clock skew) for validDays, never past the CA's own expiry.
 */
export function issueLeaf(
  ca: CertificateAuthority,
  host: string,
  leafKey: KeyObject,
  options: { validDays?: number; now?: Date } = {},
): { certPem: string; notAfter: Date } {
  const now = options.now ?? new Date();
  const bare = host.startsWith('[') ? host.slice(1, -1) : host;
  const ip = isIP(bare) !== 0;
  const caEnd = new Date(ca.cert.validTo);
  const wanted = new Date(now.getTime() + (options.validDays ?? 30) * 86400_000);
  const notAfter = wanted < caEnd ? wanted : caEnd;
  const san = ip ? tlv(0x87, ipBytes(bare)) : tlv(0x82, Buffer.from(bare, 'ascii'));
  const publicKey = publicKeyOf(leafKey);
  const tbs = tbsCertificate({
    issuer: rawSubject(ca.cert),
    subject: name(bare),
    notBefore: new Date(now.getTime() - 3600_000),
    notAfter,
    publicKey,
    extensions: [
      extension(OID.basicConstraints, true, sequence()),
      // digitalSignature (bit 0): 0b10000000, seven unused bits.
      extension(OID.keyUsage, true, bitString(Buffer.from([0x80]), 7)),
      extension(OID.extKeyUsage, false, sequence(oid(OID.serverAuth))),
      extension(OID.subjectAltName, false, sequence(san)),
      extension(OID.subjectKeyId, false, octetString(keyIdentifier(publicKey))),
      extension(OID.authorityKeyId, false, sequence(tlv(0x80, ca.keyId))),
    ],
  });
  return { certPem: pem('CERTIFICATE', signCertificate(tbs, ca.key)), notAfter };
}

function publicKeyOf(key: KeyObject): KeyObject {
  return key.type === 'private' ? createPublicKey(key) : key;
}

/**
 * The issuer Name must be byte-identical to the CA's subject (RFC 5280 §7.1 name
 * chaining compares encodings in practice), so it is copied from the CA's DER.
 */
function rawSubject(cert: X509Certificate): Buffer {
  // Certificate → tbsCertificate → [version, serial, signature, issuer, validity, subject, ...].
  const tbs = children(cert.raw)[0]!;
  const fields = children(tbs);
  if (fields[0]![0] !== 0xa0)
    throw new TollgateError('TG_ERR_CONFIG_INVALID', 'tls ca: expected an X.509 v3 certificate');
  return fields[5]!;
}

/** The complete child TLVs of a constructed DER value. */
function children(value: Buffer): Buffer[] {
  const { headerLength, length } = readHeader(value, 0);
  const out: Buffer[] = [];
  let at = headerLength;
  const end = headerLength + length;
  while (at < end) {
    const h = readHeader(value, at);
    out.push(value.subarray(at, at + h.headerLength + h.length));
    at += h.headerLength + h.length;
  }
  return out;
}

function readHeader(buf: Buffer, at: number): { headerLength: number; length: number } {
  const first = buf[at + 1]!;
  if (first < 0x80) return { headerLength: 2, length: first };
  const n = first & 0x7f;
  let length = 0;
  for (let i = 0; i < n; i++) length = length * 256 + buf[at + 2 + i]!;
  return { headerLength: 2 + n, length };
}
