/**
 * The hash chain shared by the writer (log.ts) and the verifier (verify.ts). Each
 * record carries `seq`, `prev_hash` (the previous record's hash) and `hash`, its last
 * member. How `hash` is taken is named by the file's genesis record (`hash_scheme`):
 *
 * - `sha256-line` (what the writer writes): SHA-256 of the record's line as written, up
 *   to its hash member: the line with its trailing `,"hash":"<hex>"}` replaced by `}`.
 *   Anyone recomputes it from the bytes in the file, with no JSON library at all.
 * - `sha256-jcs` (files whose genesis names no scheme, written by earlier versions):
 *   SHA-256 of the RFC 8785 canonical serialisation (../json/canonical.ts) of the
 *   record without `hash`. Still verified; no longer written, because canonical JSON
 *   cost about twice what JSON.stringify does on every decision.
 */
import { hash as oneShotHash } from 'node:crypto';
import { canonicalJson } from '../json/canonical.ts';

/** prev_hash of the very first genesis record of a chain. */
export const ZERO_HASH = '0'.repeat(64);

/** The scheme the writer seals with, named in every genesis record it writes. */
export const LINE_HASH_SCHEME = 'sha256-line';

/** sha256 hex of a string's UTF-8 bytes (one-shot: no Hash object per record). */
export function sha256Hex(text: string): string {
  return oneShotHash('sha256', text, 'hex');
}

/**
 * The value of a record's `input` member when sealRecordInto is given the input's JSON text:
 * the text is written in its place.
 */
export const INPUT_FROM_TEXT = '\u0000input from text\u0000';
// The member as JSON.stringify writes it. Its first occurrence is the member itself: inside a
// JSON string every quote is escaped, so no string value can contain this text.
const INPUT_VALUE = JSON.stringify(INPUT_FROM_TEXT);
const INPUT_MEMBER = `"input":${INPUT_VALUE}`;

/**
 * A record's JSON text as it is written: JSON.stringify's, its members in the record's
 * order, with `inputJson` (JSON text) in place of an `input` of INPUT_FROM_TEXT. A value
 * nested deeper than JSON.stringify's stack allows (a request body may be) is written by
 * the canonical writer, which has no depth limit: the line is what is hashed, so any
 * faithful JSON text will do.
 */
function recordJson(record: Readonly<Record<string, unknown>>, inputJson: string | undefined): string {
  let text: string;
  try {
    text = JSON.stringify(record);
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    text = canonicalJson(record);
  }
  if (inputJson === undefined || record.input !== INPUT_FROM_TEXT) return text;
  const at = text.indexOf(INPUT_MEMBER) + INPUT_MEMBER.length - INPUT_VALUE.length;
  return text.slice(0, at) + inputJson + text.slice(at + INPUT_VALUE.length);
}

/**
 * Seals a record: returns its hash and its JSON line (the record's text with `hash`
 * appended as the last member), as a string: sealRecordInto into a buffer of its own.
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

// `,"hash":"` + 64 hex digits + `"}`.
const HASH_TAIL_CHARS = 75;
// The same and a newline.
const HASH_TAIL_BYTES = HASH_TAIL_CHARS + 1;

/**
 * sealRecord for a file (scheme `sha256-line`): the record's text (with `inputJson` as its
 * input, when given: see INPUT_FROM_TEXT) is UTF-8 encoded once, straight into the space
 * `room(maxBytes)` gives, hashed there, and completed in place into the line
 * `…,"hash":"<hex>"}\n`. Returns the hash and the line's end (after its newline).
 */
export function sealRecordInto(
  record: Readonly<Record<string, unknown>>,
  room: (maxBytes: number) => LineSpace,
  inputJson?: string,
): { hash: string; bytes: Buffer; start: number; end: number } {
  const body = recordJson(record, inputJson);
  // A UTF-16 code unit is at most 3 UTF-8 bytes.
  const { bytes, at } = room(body.length * 3 + HASH_TAIL_BYTES);
  const length = bytes.write(body, at, 'utf8');
  const hash = oneShotHash('sha256', bytes.subarray(at, at + length), 'hex');
  // The text ends in `}`: the hash member is written over it.
  const tail = body === '{}' ? `"hash":"${hash}"}\n` : `,"hash":"${hash}"}\n`;
  const end = at + length - 1 + bytes.write(tail, at + length - 1, 'latin1');
  return { hash, bytes, start: at, end };
}

/**
 * Whether a line (without its newline) is sealed by `hash` in the `sha256-line` scheme:
 * it ends in the member `"hash":"<hash>"` and the text before that member, closed with
 * `}`, hashes to it.
 */
export function lineHashMatches(line: string, hash: string): boolean {
  if (!/^[0-9a-f]{64}$/.test(hash)) return false;
  const tail = `,"hash":"${hash}"}`;
  if (!line.endsWith(tail)) return false;
  return sha256Hex(`${line.slice(0, line.length - HASH_TAIL_CHARS)}}`) === hash;
}

/** Recomputes a parsed record's hash in the `sha256-jcs` scheme (everything but `hash`). */
export function recomputeHash(record: Readonly<Record<string, unknown>>): string {
  const { hash: _hash, ...rest } = record;
  return sha256Hex(canonicalJson(rest));
}
