/**
 * JSON values whose member names are read from the text itself.
 *
 * V8's JSON.parse (Node 24) can return a wrong member name: while building an object it
 * compares a name's raw text with the names of the shapes it built before, and a shape
 * whose name contains a backslash matches the raw text of an escape. After any earlier
 * object (in the same body or any text parsed before) had the members "a" and "b\\",
 * `{"a":1,"b\u0041":2}` comes back as `{"a":1,"b\\":2}`, where Go, Python and Node 20
 * read "bA". An agent can hide a member from the policy that way (`"amoun\u0074"`
 * read as `amoun\`). Strings, numbers and literals are not affected, nor are names without
 * an escape. So text whose names may hold an escape is built here instead: the
 * structure walked in JavaScript, each string and name decoded by JSON.parse of that
 * string alone, each member created as JSON.parse creates it (the first position, the
 * last value; "__proto__" an own member).
 */

/** The index of the first character at or after `i` that is not JSON whitespace (RFC 8259 §2). */
export function skipWs(text: string, i: number): number {
  let j = i;
  for (;;) {
    const c = text.charCodeAt(j);
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) j++;
    else return j;
  }
}

/** The index of the closing quote of the string opening at `open`. */
function stringEnd(text: string, open: number): number {
  let i = open + 1;
  for (;;) {
    const c = text.charCodeAt(i);
    if (c === 0x22) return i;
    if (c === 0x5c) i += 2;
    else if (Number.isNaN(c)) throw new SyntaxError('unterminated string in JSON');
    else i++;
  }
}

/** The end of the number, literal or other bare token starting at `i`. */
function tokenEnd(text: string, i: number): number {
  let j = i;
  for (;;) {
    const c = text.charCodeAt(j);
    if ((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x7a) || c === 0x2b || c === 0x2d || c === 0x2e || c === 0x45)
      j++;
    else return j;
  }
}

interface Frame {
  readonly container: Record<string, unknown> | unknown[];
  /** The member name the next value is for (objects). */
  name: string;
}

function setMember(target: Record<string, unknown>, name: string, value: unknown): void {
  if (name === '__proto__')
    Object.defineProperty(target, name, { value, enumerable: true, writable: true, configurable: true });
  else target[name] = value;
}

/** Reads a member name and its colon at `i`; returns the index after the colon. */
function readName(text: string, i: number, frame: Frame): number {
  const open = skipWs(text, i);
  if (text.charCodeAt(open) !== 0x22) throw new SyntaxError(`expected a member name at offset ${open}`);
  const close = stringEnd(text, open);
  frame.name = JSON.parse(text.slice(open, close + 1)) as string;
  const colon = skipWs(text, close + 1);
  if (text.charCodeAt(colon) !== 0x3a) throw new SyntaxError(`expected ":" at offset ${colon}`);
  return colon + 1;
}

/**
 * The value of JSON text, as JSON.parse returns it but with every member name decoded on
 * its own. For text already known to be JSON (JSON.parse or the strict validator accepted
 * it); anything else throws a SyntaxError. Iterative: any nesting depth.
 */
export function buildJson(text: string): unknown {
  const stack: Frame[] = [];
  let i = 0;
  for (;;) {
    i = skipWs(text, i);
    const c = text.charCodeAt(i);
    let value: unknown;
    if (c === 0x7b || c === 0x5b) {
      const after = skipWs(text, i + 1);
      const closer = c === 0x7b ? 0x7d : 0x5d;
      if (text.charCodeAt(after) === closer) {
        value = c === 0x7b ? {} : [];
        i = after + 1;
      } else {
        const frame: Frame = { container: c === 0x7b ? {} : [], name: '' };
        stack.push(frame);
        i = c === 0x7b ? readName(text, after, frame) : after;
        continue;
      }
    } else if (c === 0x22) {
      const close = stringEnd(text, i);
      value = JSON.parse(text.slice(i, close + 1));
      i = close + 1;
    } else {
      const end = tokenEnd(text, i);
      if (end === i) throw new SyntaxError(`unexpected character at offset ${i} in JSON`);
      value = JSON.parse(text.slice(i, end));
      i = end;
    }
    // Place the value, then close every container that ends here.
    for (;;) {
      const frame = stack.at(-1);
      if (frame === undefined) {
        if (skipWs(text, i) !== text.length) throw new SyntaxError(`unexpected content at offset ${i} in JSON`);
        return value;
      }
      if (Array.isArray(frame.container)) frame.container.push(value);
      else setMember(frame.container, frame.name, value);
      i = skipWs(text, i);
      const next = text.charCodeAt(i);
      if (next === 0x2c) {
        i = Array.isArray(frame.container) ? i + 1 : readName(text, i + 1, frame);
        break;
      }
      if (next !== (Array.isArray(frame.container) ? 0x5d : 0x7d))
        throw new SyntaxError(`expected "," or a closing bracket at offset ${i} in JSON`);
      i++;
      stack.pop();
      value = frame.container;
    }
  }
}

/**
 * JSON.parse of `text` with member names read from the text: built here when the text has
 * an escape anywhere (only then can a name be misread), else JSON.parse's own value.
 */
export function parseJson(text: string): unknown {
  const value: unknown = JSON.parse(text);
  return text.includes('\\') ? buildJson(text) : value;
}
