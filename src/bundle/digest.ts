/**
 * File digests as OPA computes them for bundle signatures (v1/bundle/hash.go):
 * unstructured files (policy.wasm, *.rego) are hashed byte for byte; structured
 * files (data.json, .manifest) are parsed and hashed in a canonical form — objects
 * with keys sorted bytewise, no whitespace, strings as Go's encoding/json writes
 * them (SetEscapeHTML(false)), numbers as their literal text (json.Number) — so a
 * signature does not depend on formatting.
 */
import { createHash } from 'node:crypto';

/** Hash algorithms OPA's signer may name, as node:crypto calls them. */
const ALGORITHMS: Record<string, string> = {
  MD5: 'md5',
  'SHA-1': 'sha1',
  'SHA-224': 'sha224',
  'SHA-256': 'sha256',
  'SHA-384': 'sha384',
  'SHA-512': 'sha512',
  'SHA-512-224': 'sha512-224',
  'SHA-512-256': 'sha512-256',
};

/** True for files OPA hashes in canonical JSON form (IsStructuredDoc). */
export function isStructuredDoc(path: string): boolean {
  const base = path.slice(path.lastIndexOf('/') + 1);
  return base === 'data.json' || base === '.manifest';
}

// Go's encoding/json string escaping with EscapeHTML off: short escapes for " \ \b \f \n \r \t,
// \u00xx for other control characters, and U+2028/U+2029 always escaped.
function goString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (c < 0x20) {
      out +=
        ch === '\n'
          ? '\\n'
          : ch === '\r'
            ? '\\r'
            : ch === '\t'
              ? '\\t'
              : ch === '\b'
                ? '\\b'
                : ch === '\f'
                  ? '\\f'
                  : `\\u00${c.toString(16).padStart(2, '0')}`;
    } else if (c === 0x2028 || c === 0x2029) out += `\\u${c.toString(16)}`;
    else if (c >= 0xd800 && c <= 0xdfff) out += '\\ufffd';
    else out += ch;
  }
  return `${out}"`;
}

/** A minimal JSON reader that keeps number literals as written and yields the canonical text. */
function canonicalize(text: string): string {
  let i = 0;
  const ws = (): void => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\n' || text[i] === '\r' || text[i] === '\t')) i++;
  };
  const fail = (what: string): never => {
    throw new SyntaxError(`invalid JSON at offset ${i}: ${what}`);
  };
  const str = (): string => {
    const start = i;
    i++;
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    if (i >= text.length) fail('unterminated string');
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const value = (): string => {
    ws();
    const ch = text[i];
    if (ch === '{') {
      i++;
      const entries = new Map<string, string>();
      ws();
      if (text[i] === '}') i++;
      else {
        for (;;) {
          ws();
          if (text[i] !== '"') fail('expected a key');
          const key = str();
          ws();
          if (text[i++] !== ':') fail('expected ":"');
          entries.set(key, value()); // duplicate keys: the last wins, as in Go maps
          ws();
          if (text[i] === ',') i++;
          else if (text[i] === '}') {
            i++;
            break;
          } else fail('expected "," or "}"');
        }
      }
      const keys = [...entries.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
      return `{${keys.map((k) => `${goString(k)}:${entries.get(k)}`).join(',')}}`;
    }
    if (ch === '[') {
      i++;
      const items: string[] = [];
      ws();
      if (text[i] === ']') i++;
      else {
        for (;;) {
          items.push(value());
          ws();
          if (text[i] === ',') i++;
          else if (text[i] === ']') {
            i++;
            break;
          } else fail('expected "," or "]"');
        }
      }
      return `[${items.join(',')}]`;
    }
    if (ch === '"') return goString(str());
    const m = /^(?:true|false|null|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?)/.exec(text.slice(i, i + 400));
    if (m === null) return fail('unexpected token');
    i += m[0].length;
    return m[0];
  };
  const out = value();
  ws();
  if (i !== text.length) fail('trailing data');
  return out;
}

/** The canonical JSON text OPA hashes for a structured file (BOM stripped). */
export function canonicalJson(bytes: Buffer): string {
  let text = bytes.toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  return canonicalize(text);
}

/** The hex digest of a bundle file as OPA's signer computes it; throws on an unknown algorithm or unparseable JSON. */
export function fileDigest(path: string, bytes: Buffer, algorithm: string): string {
  const name = ALGORITHMS[algorithm];
  if (name === undefined) throw new Error(`unsupported hashing algorithm ${JSON.stringify(algorithm)}`);
  return createHash(name)
    .update(isStructuredDoc(path) ? Buffer.from(canonicalJson(bytes), 'utf8') : bytes)
    .digest('hex');
}

/**
 * True when a file matches a signed digest. For structured files the raw bytes are tried
 * first: `opa build` writes data.json compact with sorted keys, which usually *is* the
 * canonical form, and equal SHA digests mean equal bytes — so the (slow, ~65 ms per MB)
 * canonicalisation only runs for files formatted differently.
 */
export function digestMatches(path: string, bytes: Buffer, algorithm: string, expected: string): boolean {
  const want = expected.toLowerCase();
  if (isStructuredDoc(path)) {
    const name = ALGORITHMS[algorithm];
    // opa writes compact JSON plus a trailing newline; whitespace around the value is not hashed.
    let start = 0;
    let end = bytes.length;
    while (
      start < end &&
      (bytes[start] === 0x20 || bytes[start] === 0x0a || bytes[start] === 0x0d || bytes[start] === 0x09)
    )
      start++;
    while (
      end > start &&
      (bytes[end - 1] === 0x20 || bytes[end - 1] === 0x0a || bytes[end - 1] === 0x0d || bytes[end - 1] === 0x09)
    )
      end--;
    if (name !== undefined && createHash(name).update(bytes.subarray(start, end)).digest('hex') === want) return true;
  }
  return fileDigest(path, bytes, algorithm) === want;
}
