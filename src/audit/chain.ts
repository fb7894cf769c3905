/**
 * The hash chain shared by the writer (log.ts) and the verifier (verify.ts). Each
 * record carries `seq`, `prev_hash` (the previous record's hash) and `hash` =
 * sha256 over the canonical serialisation (RFC 8785, ../json/canonical.ts) of the
 * record without `hash`.
 */
import { hash as oneShotHash } from 'node:crypto';
import { canonicalJson } from '../json/canonical.ts';

/** prev_hash of the very first genesis record of a chain. */
export const ZERO_HASH = '0'.repeat(64);

/** sha256 hex of a string's UTF-8 bytes (one-shot: no Hash object per record). */
export function sha256Hex(text: string): string {
  return oneShotHash('sha256', text, 'hex');
}

/**
 * Seals a record: returns its hash and its JSON line (canonical body with `hash` appended as
 * the last member), as a string: sealRecordInto into a buffer of its own.
 */
export function sealRecord(record: Readonly<Record<string, unknown>>): { hash: string; line: string } {
  const { hash, bytes, start, end } = sealRecordInto(record, (maxBytes) => ({
    bytes: Buffer.allocUnsafe(maxBytes),
    at: 0,
  }));
  return { hash, line: bytes.toString('utf8', start, end - 1) };
}

/** Where a sealed line is written: `bytes` with at least the asked-for room free from `at`. */
export interface LineSpace {
  readonly bytes: Buffer;
  readonly at: number;
}

// `,"hash":"` + 64 hex digits + `"}` + newline.
const HASH_TAIL_BYTES = 76;

/**
 * sealRecord for a file: the canonical body is UTF-8 encoded once, straight into the space
 * `room(maxBytes)` gives, hashed there, and completed in place into the line
 * `…,"hash":"<hex>"}\n`. Returns the hash and the line's end (after its newline). One
 * encoding per record, where a string line is flattened and encoded again for its hash,
 * for its length and for the file.
 */
export function sealRecordInto(
  record: Readonly<Record<string, unknown>>,
  room: (maxBytes: number) => LineSpace,
): { hash: string; bytes: Buffer; start: number; end: number } {
  const body = canonicalJson(record);
  // A UTF-16 code unit is at most 3 UTF-8 bytes.
  const { bytes, at } = room(body.length * 3 + HASH_TAIL_BYTES);
  const length = bytes.write(body, at, 'utf8');
  const hash = oneShotHash('sha256', bytes.subarray(at, at + length), 'hex');
  // The body ends in `}`: the hash member is written over it.
  const tail = body === '{}' ? `"hash":"${hash}"}\n` : `,"hash":"${hash}"}\n`;
  const end = at + length - 1 + bytes.write(tail, at + length - 1, 'latin1');
  return { hash, bytes, start: at, end };
}

/** Recomputes a parsed record's hash (everything but `hash`). */
export function recomputeHash(record: Readonly<Record<string, unknown>>): string {
  const { hash: _hash, ...rest } = record;
  return sha256Hex(canonicalJson(rest));
}
