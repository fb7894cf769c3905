/**
 * Strict JSON (RFC 8259 with the I-JSON restrictions of RFC 7493): a body is read only
 * when every JSON parser a tool may use reads it as the policy does. A linear,
 * tokenizer-level validator refuses what parsers read differently, then JSON.parse
 * builds the value (faster than building it here: see docs/body-reading.md).
 *
 * Refused, each with TG_ERR_AMBIGUOUS_BODY naming the place:
 *   - duplicate member names (JSON.parse and Python keep the last, some keep the first,
 *     RFC 8259 §4 leaves it open), and names equal under Unicode simple case folding
 *     (Go's encoding/json matches struct fields with bytes.EqualFold: "Amount" fills
 *     the field "amount"; K, k and U+212A KELVIN SIGN are one letter to it);
 *   - escapes of lone surrogates (Go writes U+FFFD, Python keeps the surrogate; RFC 7493 §2.1);
 *   - numbers that do not reach the policy unchanged: integers beyond ±2^53, literals
 *     whose decimal value is not the shortest round-trip value of their double
 *     (500.000000000000001 is 500 to JSON.parse, more than 500 to Java BigDecimal and
 *     Python Decimal), overflow to Infinity, underflow to 0 (RFC 7493 §2.2);
 *   - everything that is not RFC 8259 JSON, which lenient parsers still accept: NaN,
 *     Infinity, comments, single quotes, trailing commas, trailing content;
 *   - the member name "__proto__", which JavaScript readers drop or turn into a prototype.
 * UTF-8 validity and the byte order mark are checked on the bytes by the caller.
 */
import { TollgateError } from '../errors.ts';
import { buildJson, skipWs } from './exact-json.ts';

function ambiguous(message: string): TollgateError {
  return new TollgateError('TG_ERR_AMBIGUOUS_BODY', message);
}

// Refusals for text no JSON parser a tool may use (JSON.parse, Go, Python) accepts either.
const SYNTAX_ONLY = new WeakSet<TollgateError>();

function syntax(message: string): TollgateError {
  const err = ambiguous(message);
  SYNTAX_ONLY.add(err);
  return err;
}

/** A refusal for what is not JSON to JSON.parse, Go or Python either (as opposed to JSON they read differently, or leniently). */
export function isSyntaxOnly(err: unknown): boolean {
  return err instanceof TollgateError && SYNTAX_ONLY.has(err);
}

/** An unexpected character: NaN and Infinity are JSON to Python's json; the rest to none of the tools' parsers. */
function unexpected(text: string, at: number): TollgateError {
  const message = describe(text, at);
  return /^(NaN|Infinity) literal/.test(message) ? ambiguous(message) : syntax(message);
}

function describe(text: string, at: number): string {
  if (at >= text.length) return 'unexpected end of JSON';
  const ch = text[at]!;
  const rest = text.slice(at, at + 8);
  if (rest.startsWith('NaN') || rest.startsWith('-NaN')) return `NaN literal at offset ${at}`;
  if (rest.startsWith('Infinity') || rest.startsWith('-Infinit') || rest.startsWith('+Infinit'))
    return `Infinity literal at offset ${at}`;
  if (rest.startsWith('//') || rest.startsWith('/*')) return `comment at offset ${at}`;
  if (ch === "'") return `single-quoted string at offset ${at}`;
  return `unexpected ${JSON.stringify(ch)} at offset ${at} (not RFC 8259 JSON)`;
}

/**
 * The key Go's bytes.EqualFold would compare: each code point mapped through its simple
 * case folding orbit to one representative (upper, then lower, per code point, so no
 * context such as the final sigma applies). K, k and U+212A fold together, as do s, S and
 * U+017F LONG S, ß and U+1E9E.
 */
export function foldKey(key: string): string {
  let ascii = true;
  for (let i = 0; i < key.length; i++) {
    if (key.charCodeAt(i) > 0x7f) {
      ascii = false;
      break;
    }
  }
  if (ascii) return key.toLowerCase();
  let out = '';
  for (const ch of key) {
    const upper = ch.toUpperCase();
    const mid = [...upper].length === 1 ? upper : ch;
    const lower = mid.toLowerCase();
    out += [...lower].length === 1 ? lower : mid;
  }
  return out;
}

/** sign, significant digits and exponent of a decimal literal: equal keys mean equal values. */
function decimalKey(literal: string): string {
  let i = 0;
  let sign = '';
  if (literal[0] === '-') {
    sign = '-';
    i = 1;
  }
  let digits = '';
  let exponent = 0;
  let fraction = false;
  for (; i < literal.length; i++) {
    const ch = literal[i]!;
    if (ch === '.') fraction = true;
    else if (ch === 'e' || ch === 'E') {
      exponent += Number(literal.slice(i + 1));
      break;
    } else {
      digits += ch;
      if (fraction) exponent--;
    }
  }
  let start = 0;
  while (start < digits.length && digits[start] === '0') start++;
  let end = digits.length;
  while (end > start && digits[end - 1] === '0') {
    end--;
    exponent++;
  }
  if (start === end) return '0';
  return `${sign}${digits.slice(start, end)}e${exponent}`;
}

/** Refuses a number literal that does not reach the policy with the value it spells. */
function checkNumber(literal: string, integer: boolean, at: number): void {
  const value = Number(literal);
  if (!Number.isFinite(value)) throw ambiguous(`number ${literal} at offset ${at} overflows to Infinity`);
  // Past 2^53 doubles skip integers: a policy's arithmetic and comparisons are no longer exact.
  if (integer && Math.abs(value) > 2 ** 53)
    throw ambiguous(`integer ${literal} at offset ${at} is beyond ±2^53 and is not read exactly by every parser`);
  // Number#toString is the shortest decimal that round-trips (ECMA-262 Number::toString).
  if (decimalKey(literal) !== decimalKey(String(value))) {
    throw ambiguous(
      `number ${literal} at offset ${at} reads as ${String(value)} in the policy but exactly in decimal parsers`,
    );
  }
}

const OBJECT = 0;
const ARRAY = 1;
// Members compared one by one up to this count; a Set beyond it keeps large objects linear.
const LINEAR_MAX = 12;

function hex4(text: string, at: number): number {
  let v = 0;
  for (let k = 0; k < 4; k++) {
    const c = text.charCodeAt(at + k);
    const d =
      c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x41 && c <= 0x46 ? c - 0x37 : c >= 0x61 && c <= 0x66 ? c - 0x57 : -1;
    if (d < 0) throw syntax(`invalid \\u escape at offset ${at - 2}`);
    v = v * 16 + d;
  }
  return v;
}

// What the last scanString saw, read by the caller for member names (no allocation per string).
const ESCAPED = 1;
const UPPER = 2;
const NON_ASCII = 4;
let stringFlags = 0;

/** Scans the string whose opening quote is at `i`; returns the index of its closing quote. */
function scanString(text: string, i: number): number {
  const open = i++;
  let flags = 0;
  for (;;) {
    const c = text.charCodeAt(i);
    // Most characters are lower-case letters and digits: one comparison each.
    if (c > 0x5c) {
      if (c > 0x7f) flags |= NON_ASCII;
      i++;
      continue;
    }
    if (c === 0x22) break;
    if (c !== c) throw syntax(`unterminated string starting at offset ${open}`);
    if (c < 0x20) throw syntax(`unescaped control character in a string at offset ${i}`);
    if (c === 0x5c) {
      flags |= ESCAPED;
      const e = text.charCodeAt(i + 1);
      if (e === 0x75) {
        const unit = hex4(text, i + 2);
        if (unit >= 0xd800 && unit <= 0xdbff) {
          // RFC 8259 §8.2 / RFC 7493 §2.1: a high surrogate escape must pair with a low one.
          if (text.charCodeAt(i + 6) !== 0x5c || text.charCodeAt(i + 7) !== 0x75)
            throw ambiguous(`lone surrogate escape at offset ${i}`);
          const low = hex4(text, i + 8);
          if (low < 0xdc00 || low > 0xdfff) throw ambiguous(`lone surrogate escape at offset ${i}`);
          i += 12;
        } else if (unit >= 0xdc00 && unit <= 0xdfff) throw ambiguous(`lone surrogate escape at offset ${i}`);
        else i += 6;
        continue;
      }
      // " \ / b f n r t
      if (
        e === 0x22 ||
        e === 0x5c ||
        e === 0x2f ||
        e === 0x62 ||
        e === 0x66 ||
        e === 0x6e ||
        e === 0x72 ||
        e === 0x74
      ) {
        i += 2;
        continue;
      }
      throw syntax(`invalid escape at offset ${i}`);
    }
    if (c >= 0x41 && c <= 0x5a) flags |= UPPER;
    else if (c > 0x7f) flags |= NON_ASCII;
    i++;
  }
  stringFlags = flags;
  return i;
}

/** The folded member name of the string scanned from `open` to the quote at `close`. */
function memberName(text: string, open: number, close: number): string {
  const flags = stringFlags;
  if (flags & ESCAPED) return foldKey(JSON.parse(text.slice(open, close + 1)) as string);
  const raw = text.slice(open + 1, close);
  if (flags & NON_ASCII) return foldKey(raw);
  return flags & UPPER ? raw.toLowerCase() : raw;
}

function skipDigits(text: string, i: number): number {
  for (;;) {
    const c = text.charCodeAt(i);
    if (c >= 0x30 && c <= 0x39) i++;
    else return i;
  }
}

/** Scans the number starting at `start`; returns the index after it. */
function scanNumber(text: string, start: number): number {
  let i = start;
  if (text.charCodeAt(i) === 0x2d) i++;
  const first = text.charCodeAt(i);
  const intStart = i;
  if (first === 0x30) i++;
  else if (first >= 0x31 && first <= 0x39) i = skipDigits(text, i + 1);
  else throw unexpected(text, start);
  let digits = i - intStart;
  let integer = true;
  if (text.charCodeAt(i) === 0x2e) {
    const end = skipDigits(text, i + 1);
    if (end === i + 1) throw syntax(`number without fraction digits at offset ${start}`);
    digits += end - i - 1;
    i = end;
    integer = false;
  }
  const e = text.charCodeAt(i);
  if (e === 0x65 || e === 0x45) {
    i++;
    const sign = text.charCodeAt(i);
    if (sign === 0x2b || sign === 0x2d) i++;
    const end = skipDigits(text, i);
    if (end === i) throw syntax(`number without exponent digits at offset ${start}`);
    checkNumber(text.slice(start, end), false, start);
    return end;
  }
  // Without an exponent, up to 15 digits lie in the normal range and round-trip exactly
  // (DBL_DIG is 15): the common case needs no check.
  if (digits > 15) checkNumber(text.slice(start, i), integer, start);
  return i;
}

/**
 * Validates `text` as strict JSON; throws TG_ERR_AMBIGUOUS_BODY naming the first problem.
 * Iterative (an explicit stack), so deep nesting cannot overflow the call stack; one pass,
 * no allocation but member names of objects with two or more members. Returns whether a
 * member name holds an escape: then JSON.parse may misread it (exact-json.ts) and the
 * value is built with buildJson.
 */
export function validateStrictJson(text: string): boolean {
  let escapedNames = false;
  const n = text.length;
  const kinds: number[] = [];
  // Folded member names of the open objects, one flat stack; each open object's first
  // index in `starts`. Small objects are searched linearly (no allocation); from
  // LINEAR_MAX members on, an object gets a Set in `sets`.
  const keys: string[] = [];
  const starts: number[] = [];
  const sets: Array<Set<string> | undefined> = [];
  let i = 0;
  let c = 0;
  for (;;) {
    // A value is expected at i; c === 0x3a means "member name expected first".
    i = skipWs(text, i);
    if (c === 0x3a) {
      if (text.charCodeAt(i) !== 0x22)
        throw syntax(
          i >= n
            ? 'unexpected end of JSON'
            : `expected a member name at offset ${i}${text[i] === '}' ? ' (trailing comma)' : ''}`,
        );
      const close = scanString(text, i);
      if (stringFlags & ESCAPED) escapedNames = true;
      const name = memberName(text, i, close);
      if (name === '__proto__') checkProto(text, i, close);
      const top = starts.length - 1;
      const set = sets[top];
      if (set !== undefined) {
        if (set.has(name)) throw collision(text, i, close);
        set.add(name);
      } else {
        const start = starts[top]!;
        const end = keys.length;
        for (let k = start; k < end; k++) if (keys[k] === name) throw collision(text, i, close);
        if (end - start >= LINEAR_MAX) {
          sets[top] = new Set(keys.slice(start)).add(name);
          keys.length = start;
        } else keys.push(name);
      }
      i = skipWs(text, close + 1);
      if (text.charCodeAt(i) !== 0x3a) throw syntax(`expected ":" at offset ${i}`);
      i = skipWs(text, i + 1);
    }
    c = text.charCodeAt(i);
    if (c === 0x7b) {
      i = skipWs(text, i + 1);
      if (text.charCodeAt(i) !== 0x7d) {
        kinds.push(OBJECT);
        starts.push(keys.length);
        sets.push(undefined);
        c = 0x3a;
        continue;
      }
      i++;
    } else if (c === 0x5b) {
      i = skipWs(text, i + 1);
      if (text.charCodeAt(i) !== 0x5d) {
        kinds.push(ARRAY);
        c = 0;
        continue;
      }
      i++;
    } else if (c === 0x22) i = scanString(text, i) + 1;
    else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) i = scanNumber(text, i);
    else if (c === 0x74 && text.startsWith('true', i)) i += 4;
    else if (c === 0x66 && text.startsWith('false', i)) i += 5;
    else if (c === 0x6e && text.startsWith('null', i)) i += 4;
    else throw unexpected(text, i);
    // After a value: close containers, or move on to the next element or member.
    c = 0;
    for (;;) {
      i = skipWs(text, i);
      const depth = kinds.length;
      if (depth === 0) {
        if (i !== n) throw ambiguous(`content after the JSON value at offset ${i}: ${describe(text, i)}`);
        return escapedNames;
      }
      const d = text.charCodeAt(i);
      const kind = kinds[depth - 1];
      if (d === 0x2c) {
        i++;
        if (kind === OBJECT) c = 0x3a;
        break;
      }
      if (kind === OBJECT ? d === 0x7d : d === 0x5d) {
        kinds.pop();
        if (kind === OBJECT) {
          keys.length = starts.pop()!;
          sets.pop();
        }
        i++;
        continue;
      }
      throw syntax(
        i >= n
          ? 'unexpected end of JSON'
          : `expected "," or "${kind === OBJECT ? '}' : ']'}" at offset ${i}: ${describe(text, i)}`,
      );
    }
  }
}

/**
 * "__proto__" is a member to JSON.parse, Go and Python, but JavaScript readers that copy
 * or validate objects (the MCP TypeScript SDK's zod schemas, object spread into a new
 * object, Object.assign) set the prototype with it or drop it: the policy would read a
 * member the tool never sees. Only the exact name is special (ECMA-262 B.3.1).
 */
function checkProto(text: string, open: number, close: number): void {
  if ((JSON.parse(text.slice(open, close + 1)) as string) !== '__proto__') return;
  throw ambiguous(
    `member name "__proto__" at offset ${open}: JavaScript readers drop it or take it for the object's prototype`,
  );
}

function collision(text: string, open: number, close: number): TollgateError {
  const raw = JSON.parse(text.slice(open, close + 1)) as string;
  return ambiguous(
    `member name ${JSON.stringify(raw)} at offset ${open} repeats a name of its object, exactly or as a case-insensitive decoder would fold it`,
  );
}

/** Parses `text` as strict JSON (validateStrictJson, then JSON.parse or buildJson); throws TG_ERR_AMBIGUOUS_BODY. */
export function parseStrictJson(text: string): unknown {
  return validateStrictJson(text) ? buildJson(text) : JSON.parse(text);
}
