/**
 * The hash chain shared by the writer (log.ts) and the verifier (verify.ts). Each
 * record carries `seq`, `prev_hash` (the previous record's hash) and `hash` =
 * sha256 over the canonical serialisation of the record without `hash`. Canonical
 * form is RFC 8785 (JCS) for JSON data: object keys sorted by UTF-16 code units, no
 * whitespace, numbers and strings as ECMAScript's JSON.stringify writes them — so a
 * verifier in any language that implements JCS recomputes the same bytes.
 */
import { createHash } from 'node:crypto';

/** prev_hash of the very first genesis record of a chain. */
export const ZERO_HASH = '0'.repeat(64);

/** RFC 8785 canonical JSON of a JSON value (undefined members omitted, as JSON does). */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (value === undefined || typeof value === 'function' || typeof value === 'symbol') return 'null';
    if (typeof value === 'bigint') return value.toString();
    return JSON.stringify(value);
  }
  const withToJson = value as { toJSON?: () => unknown };
  if (typeof withToJson.toJSON === 'function') return canonicalJson(withToJson.toJSON());
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v)).join(',')}]`;
  const record = value as Record<string, unknown>;
  const parts: string[] = [];
  for (const key of Object.keys(record).sort()) {
    const member = record[key];
    if (member === undefined || typeof member === 'function' || typeof member === 'symbol') continue;
    parts.push(`${JSON.stringify(key)}:${canonicalJson(member)}`);
  }
  return `{${parts.join(',')}}`;
}

/** sha256 hex of a string's UTF-8 bytes. */
export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/**
 * Seals a record: returns its hash and the JSON line to write (canonical body with
 * `hash` appended as the last member, so the line is serialised exactly once).
 */
export function sealRecord(record: Readonly<Record<string, unknown>>): { hash: string; line: string } {
  const body = canonicalJson(record);
  const hash = sha256Hex(body);
  return { hash, line: body === '{}' ? `{"hash":"${hash}"}` : `${body.slice(0, -1)},"hash":"${hash}"}` };
}

/** Recomputes a parsed record's hash (everything but `hash`). */
export function recomputeHash(record: Readonly<Record<string, unknown>>): string {
  const { hash: _hash, ...rest } = record;
  return sha256Hex(canonicalJson(rest));
}
