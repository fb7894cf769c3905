/**
 * Canonical JSON, RFC 8785 (JCS) for JSON data: object keys sorted by UTF-16 code units, no
 * whitespace, numbers and strings as ECMAScript's JSON.stringify writes them, so a reader in
 * any language that implements JCS recomputes the same bytes. What an approval's call digest
 * and a pinned tool's fingerprint are taken over, and what decision-log files of the earlier
 * `sha256-jcs` scheme are verified against (their records of any depth too).
 */

/** A JSON scalar as canonical JSON (undefined, functions and symbols as null, as in an array). */
function scalarJson(value: unknown): string {
  if (value === undefined || typeof value === 'function' || typeof value === 'symbol') return 'null';
  if (typeof value === 'bigint') return value.toString();
  return JSON.stringify(value);
}

/** Omitted from an object, as JSON.stringify omits them. */
function omitted(member: unknown): boolean {
  return member === undefined || typeof member === 'function' || typeof member === 'symbol';
}

// What JSON.stringify escapes in a string: quote, backslash, control characters, and lone
// surrogates (tested as any surrogate; a string with a pair is handed to JSON.stringify too).
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** A string as JSON writes it: quoted directly when nothing in it needs an escape. */
function stringJson(text: string): string {
  return NEEDS_ESCAPE.test(text) ? JSON.stringify(text) : `"${text}"`;
}

// Records repeat their member names (OPA's fields, the input's, header names): each is quoted
// once. Bounded, so names an agent makes up cannot grow it.
const QUOTED_MAX = 4096;
const quotedKeys = new Map<string, string>();

function keyJson(key: string): string {
  let quoted = quotedKeys.get(key);
  if (quoted === undefined) {
    quoted = stringJson(key);
    if (quotedKeys.size < QUOTED_MAX) quotedKeys.set(key, quoted);
  }
  return quoted;
}

/**
 * An object's keys in code-unit order. Records are mostly small objects whose keys arrive
 * nearly in order: an insertion sort there costs a few comparisons, where the built-in sort
 * pays its set-up on every object (the same order: both compare strings by code units).
 */
function sortedKeys(record: object): string[] {
  const keys = Object.keys(record);
  const n = keys.length;
  if (n > 16) return keys.sort();
  for (let i = 1; i < n; i++) {
    const key = keys[i]!;
    let j = i - 1;
    if (keys[j]! < key) continue;
    while (j >= 0 && keys[j]! > key) {
      keys[j + 1] = keys[j]!;
      j--;
    }
    keys[j + 1] = key;
  }
  return keys;
}

// Nesting the recursive writer handles; deeper values go to the iterative one.
const RECURSION_MAX = 200;
const TOO_DEEP = Symbol('too deep');

/** The common case: recursion and string concatenation, no work items (every decision is sealed). */
function recursiveJson(value: unknown, depth: number): string {
  let v = value;
  while (v !== null && typeof v === 'object' && typeof (v as { toJSON?: unknown }).toJSON === 'function')
    v = (v as { toJSON: () => unknown }).toJSON();
  if (typeof v === 'string') return stringJson(v);
  if (typeof v === 'number') return Number.isFinite(v) ? `${v}` : 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (v === null || typeof v !== 'object') return scalarJson(v);
  if (depth >= RECURSION_MAX) throw TOO_DEEP;
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    let out = '[' + recursiveJson(v[0], depth + 1);
    for (let i = 1; i < v.length; i++) out += ',' + recursiveJson(v[i], depth + 1);
    return out + ']';
  }
  const record = v as Record<string, unknown>;
  const keys = sortedKeys(record);
  let out = '{';
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    const member = record[key];
    if (omitted(member)) continue;
    out += (out.length === 1 ? '' : ',') + keyJson(key) + ':' + recursiveJson(member, depth + 1);
  }
  return out + '}';
}

/**
 * RFC 8785 canonical JSON of a JSON value (undefined members omitted, as JSON does).
 * A decision record holds whatever nesting a request body had, and a deeply nested body must
 * not overflow the stack and leave its decision unrecorded: past RECURSION_MAX levels the
 * value is written again by an iterative writer, which has no depth limit.
 */
export function canonicalJson(value: unknown): string {
  try {
    return recursiveJson(value, 0);
  } catch (err) {
    if (err !== TOO_DEEP) throw err;
    return iterativeJson(value);
  }
}

/** canonicalJson with an explicit stack: any depth. */
function iterativeJson(value: unknown): string {
  const out: string[] = [];
  // Work items, last first: a value to write, or literal text (brackets, commas, keys).
  const work: Array<{ readonly text: string } | { readonly value: unknown }> = [{ value }];
  while (work.length > 0) {
    const item = work.pop()!;
    if ('text' in item) {
      out.push(item.text);
      continue;
    }
    let v = item.value;
    while (v !== null && typeof v === 'object' && typeof (v as { toJSON?: unknown }).toJSON === 'function')
      v = (v as { toJSON: () => unknown }).toJSON();
    if (v === null || typeof v !== 'object') {
      out.push(scalarJson(v));
      continue;
    }
    if (Array.isArray(v)) {
      work.push({ text: ']' });
      for (let i = v.length - 1; i >= 0; i--) {
        work.push({ value: v[i] });
        if (i > 0) work.push({ text: ',' });
      }
      work.push({ text: '[' });
      continue;
    }
    const record = v as Record<string, unknown>;
    const keys = Object.keys(record)
      .filter((key) => !omitted(record[key]))
      .sort();
    work.push({ text: '}' });
    for (let i = keys.length - 1; i >= 0; i--) {
      work.push({ value: record[keys[i]!] });
      work.push({ text: `${i > 0 ? ',' : ''}${JSON.stringify(keys[i])}:` });
    }
    work.push({ text: '{' });
  }
  return out.join('');
}
