/**
 * The encoding Python's json.loads(bytes) reads a body in (json.detect_encoding, after
 * RFC 4627 §3): a UTF-32 or UTF-16 byte order mark, else the pattern of NUL bytes in the
 * first four bytes. Starlette's request.json() and FastAPI hand the raw body to it whatever
 * the Content-Type says, so a body the policy reads as UTF-8 text can be JSON to the tool.
 */

/** A body Python would decode as UTF-16 or UTF-32: the encoding it picks and the text it reads. */
export interface WideJsonText {
  readonly encoding: 'utf-16-le' | 'utf-16-be' | 'utf-32-le' | 'utf-32-be';
  readonly text: string;
}

/** Python's json.detect_encoding, UTF-16/32 outcomes only; the offset past a BOM it strips. */
function detect(b: Uint8Array): [WideJsonText['encoding'], number] | undefined {
  const n = b.length;
  if (n >= 4 && b[0] === 0xff && b[1] === 0xfe && b[2] === 0 && b[3] === 0) return ['utf-32-le', 4];
  if (n >= 4 && b[0] === 0 && b[1] === 0 && b[2] === 0xfe && b[3] === 0xff) return ['utf-32-be', 4];
  if (n >= 2 && b[0] === 0xff && b[1] === 0xfe) return ['utf-16-le', 2];
  if (n >= 2 && b[0] === 0xfe && b[1] === 0xff) return ['utf-16-be', 2];
  if (n >= 4) {
    if (b[0] === 0) return [b[1] !== 0 ? 'utf-16-be' : 'utf-32-be', 0];
    if (b[1] === 0) return [b[2] !== 0 || b[3] !== 0 ? 'utf-16-le' : 'utf-32-le', 0];
  } else if (n === 2) {
    if (b[0] === 0) return ['utf-16-be', 0];
    if (b[1] === 0) return ['utf-16-le', 0];
  }
  return undefined;
}

function decodeUtf32(b: Uint8Array, from: number, bigEndian: boolean): string {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let out = '';
  for (let i = from; i + 4 <= b.length; i += 4) {
    const cp = view.getUint32(i, !bigEndian);
    out += cp > 0x10ffff ? '\ufffd' : String.fromCodePoint(cp);
  }
  return out;
}

/**
 * The text Python's json.loads(bytes) would read, when it decodes the body as UTF-16 or
 * UTF-32; undefined when it decodes it as UTF-8. Decoding errors become U+FFFD (a prefix
 * of a longer body may end inside a character).
 */
export function wideJsonText(bytes: Uint8Array): WideJsonText | undefined {
  const found = detect(bytes);
  if (found === undefined) return undefined;
  const [encoding, from] = found;
  const body = bytes.subarray(from);
  const text =
    encoding === 'utf-16-le' || encoding === 'utf-16-be'
      ? new TextDecoder(encoding === 'utf-16-le' ? 'utf-16le' : 'utf-16be', { ignoreBOM: true }).decode(body)
      : decodeUtf32(body, 0, encoding === 'utf-32-be');
  return { encoding, text };
}
