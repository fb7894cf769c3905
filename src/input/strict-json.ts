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
 *   - numbers that do not reach the policy unchanged: integers outside ±(2^53−1), literals
 *     whose decimal value is not the shortest round-trip value of their double
 *     (500.000000000000001 is 500 to JSON.parse, more than 500 to Java BigDecimal and
 *     Python Decimal), overflow to Infinity, underflow to 0 (RFC 7493 §2.2);
 *   - everything that is not RFC 8259 JSON, which lenient parsers still accept: NaN,
 *     Infinity, comments, single quotes, trailing commas, trailing content.
 * UTF-8 validity and the byte order mark are checked on the bytes by the caller.
 */
import { TollgateError } from '../errors.ts';

function ambiguous(message: string): TollgateError {
  return new TollgateError('TG_ERR_AMBIGUOUS_BODY', message);
}

function describe(text: string, at: number): string {
  if (at >= text.length) return 'unexpected end of JSON';
  const ch = text[at]!;
  const rest = text.slice(at, at + 8);
  if (rest.startsWith('NaN') || rest.startsWith('-NaN')) return `NaN literal at offset ${at}`;
  if (rest.startsWith('Infinity') || rest.startsWith('-Infinit') || rest.startsWith('+Infinit')) return `Infinity literal at offset ${at}`;
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
  if (integer) {
    if (!Number.isSafeInteger(value)) throw ambiguous(`integer ${literal} at offset ${at} is beyond ±(2^53-1) and is not read exactly by every parser`);
    return;
  }
  // Number#toString is the shortest decimal that round-trips (ECMA-262 Number::toString).
  if (decimalKey(literal) !== decimalKey(String(value))) {
    throw ambiguous(`number ${literal} at offset ${at} reads as ${String(value)} in the policy but exactly in decimal parsers`);
  }
}

const OBJECT = 0;
const ARRAY = 1;

/**
 * Validates `text` as strict JSON; throws TG_ERR_AMBIGUOUS_BODY naming the first problem.
 * Iterative (an explicit stack), so deep nesting cannot overflow the call stack.
 */
export function validateStrictJson(text: string): void {
  const n = text.length;
  const kinds: number[] = [];
  // Folded member names per open object; null until the object's second member.
  const names: Array<Set<string> | string | null> = [];
  let i = 0;
  const ws = (): void => {
    for (;;) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else return;
    }
  };
  // Scans a string starting at the opening quote; returns the folded member name when `key`.
  const string = (key: boolean): string => {
    const start = ++i;
    let escaped = false;
    let upper = false;
    let nonAscii = false;
    for (;;) {
      if (i >= n) throw ambiguous(`unterminated string starting at offset ${start - 1}`);
      const c = text.charCodeAt(i);
      if (c === 0x22) break;
      if (c < 0x20) throw ambiguous(`unescaped control character in a string at offset ${i}`);
      if (c === 0x5c) {
        escaped = true;
        const e = text.charCodeAt(i + 1);
        if (e === 0x75) {
          const unit = hex4(i + 2);
          i += 6;
          if (unit >= 0xd800 && unit <= 0xdbff) {
            if (text.charCodeAt(i) !== 0x5c || text.charCodeAt(i + 1) !== 0x75) throw ambiguous(`lone surrogate escape at offset ${i - 6}`);
            const low = hex4(i + 2);
            if (low < 0xdc00 || low > 0xdfff) throw ambiguous(`lone surrogate escape at offset ${i - 6}`);
            i += 6;
          } else if (unit >= 0xdc00 && unit <= 0xdfff) throw ambiguous(`lone surrogate escape at offset ${i - 6}`);
          continue;
        }
        // " \ / b f n r t
        if (e === 0x22 || e === 0x5c || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) {
          i += 2;
          continue;
        }
        throw ambiguous(`invalid escape at offset ${i}`);
      }
      if (c >= 0x41 && c <= 0x5a) upper = true;
      else if (c > 0x7f) nonAscii = true;
      i++;
    }
    const end = i++;
    if (!key) return '';
    if (escaped) return foldKey(JSON.parse(text.slice(start - 1, end + 1)) as string);
    const raw = text.slice(start, end);
    if (nonAscii) return foldKey(raw);
    return upper ? raw.toLowerCase() : raw;
  };
  const hex4 = (at: number): number => {
    let v = 0;
    for (let k = 0; k < 4; k++) {
      const c = text.charCodeAt(at + k);
      const d = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x41 && c <= 0x46 ? c - 0x37 : c >= 0x61 && c <= 0x66 ? c - 0x57 : -1;
      if (d < 0) throw ambiguous(`invalid \\u escape at offset ${at - 2}`);
      v = v * 16 + d;
    }
    return v;
  };
  const digits = (): number => {
    const start = i;
    for (;;) {
      const c = text.charCodeAt(i);
      if (c >= 0x30 && c <= 0x39) i++;
      else return i - start;
    }
  };
  const number = (): void => {
    const start = i;
    if (text.charCodeAt(i) === 0x2d) i++;
    const first = text.charCodeAt(i);
    if (first === 0x30) i++;
    else if (first >= 0x31 && first <= 0x39) digits();
    else throw ambiguous(describe(text, start));
    let integer = true;
    if (text.charCodeAt(i) === 0x2e) {
      i++;
      integer = false;
      if (digits() === 0) throw ambiguous(`number without fraction digits at offset ${start}`);
    }
    const e = text.charCodeAt(i);
    if (e === 0x65 || e === 0x45) {
      i++;
      integer = false;
      const s = text.charCodeAt(i);
      if (s === 0x2b || s === 0x2d) i++;
      if (digits() === 0) throw ambiguous(`number without exponent digits at offset ${start}`);
    }
    // Up to 15 digits an integer is exact in a double: the common case needs no check.
    if (integer && i - start <= 15) return;
    checkNumber(text.slice(start, i), integer, start);
  };
  const literal = (word: string): void => {
    if (!text.startsWith(word, i)) throw ambiguous(describe(text, i));
    i += word.length;
  };
  const member = (): void => {
    if (text.charCodeAt(i) !== 0x22) throw ambiguous(i >= n ? 'unexpected end of JSON' : `expected a member name at offset ${i}${text[i] === '}' ? ' (trailing comma)' : ''}`);
    const at = i;
    const name = string(true);
    const top = names.length - 1;
    const seen = names[top] as Set<string> | string | null;
    if (seen === null) names[top] = name;
    else if (typeof seen === 'string') {
      if (seen === name) throw collision(at, i);
      names[top] = new Set([seen, name]);
    } else {
      if (seen.has(name)) throw collision(at, i);
      seen.add(name);
    }
    ws();
    if (text.charCodeAt(i) !== 0x3a) throw ambiguous(`expected ":" at offset ${i}`);
    i++;
  };
  const collision = (at: number, end: number): TollgateError => {
    const raw = JSON.parse(text.slice(at, end)) as string;
    return ambiguous(`member name ${JSON.stringify(raw)} at offset ${at} repeats a name of its object, exactly or as a case-insensitive decoder would fold it`);
  };

  ws();
  for (;;) {
    // A value is expected at i.
    ws();
    const c = text.charCodeAt(i);
    if (c === 0x7b) {
      i++;
      ws();
      if (text.charCodeAt(i) === 0x7d) {
        i++;
      } else {
        kinds.push(OBJECT);
        names.push(null);
        member();
        continue;
      }
    } else if (c === 0x5b) {
      i++;
      ws();
      if (text.charCodeAt(i) === 0x5d) {
        i++;
      } else {
        kinds.push(ARRAY);
        continue;
      }
    } else if (c === 0x22) string(false);
    else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) number();
    else if (c === 0x74) literal('true');
    else if (c === 0x66) literal('false');
    else if (c === 0x6e) literal('null');
    else throw ambiguous(describe(text, i));
    // After a value: close containers or move to the next element.
    for (;;) {
      ws();
      const depth = kinds.length;
      if (depth === 0) {
        if (i !== n) throw ambiguous(`content after the JSON value at offset ${i}: ${describe(text, i)}`);
        return;
      }
      const d = text.charCodeAt(i);
      const kind = kinds[depth - 1];
      if (d === 0x2c) {
        i++;
        ws();
        if (kind === OBJECT) member();
        break;
      }
      if (kind === OBJECT && d === 0x7d) {
        kinds.pop();
        names.pop();
        i++;
        continue;
      }
      if (kind === ARRAY && d === 0x5d) {
        kinds.pop();
        i++;
        continue;
      }
      throw ambiguous(i >= n ? 'unexpected end of JSON' : `expected "," or "${kind === OBJECT ? '}' : ']'}" at offset ${i}: ${describe(text, i)}`);
    }
  }
}

/** Parses `text` as strict JSON (validateStrictJson, then JSON.parse); throws TG_ERR_AMBIGUOUS_BODY. */
export function parseStrictJson(text: string): unknown {
  validateStrictJson(text);
  return JSON.parse(text);
}
