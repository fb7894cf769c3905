/**
 * Content-Type as RFC 9110 §8.3.1 defines it: `type "/" subtype *( OWS ";" OWS [ parameter ] )`,
 * type, subtype and parameter names case-insensitive, parameter values a token or a
 * quoted-string. A parameter is never a type: `text/plain; x=application/json` is text/plain.
 * A value that does not follow the grammar is refused: servers disagree on what it means
 * (Go's mime.ParseMediaType errors, Express's content-type throws, substring matchers guess).
 */
import { TollgateError } from '../errors.ts';

/** A parsed media type; type, subtype and parameter names lower-cased. */
export interface MediaType {
  readonly type: string;
  readonly subtype: string;
  /** Parameter name (lower case) → value (quoted-pairs resolved, case kept). */
  readonly parameters: ReadonlyMap<string, string>;
}

/** How Tollgate reads a body of this media type. */
export type BodyKind = 'json' | 'form' | 'multipart' | 'other';

// RFC 9110 §5.6.2 tchar, as a lookup table by char code.
const TCHAR = new Uint8Array(128);
for (const ch of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
  TCHAR[ch.charCodeAt(0)] = 1;
const isTchar = (ch: string): boolean => TCHAR[ch.charCodeAt(0)] === 1;
const isOws = (ch: string | undefined): boolean => ch === ' ' || ch === '\t';

function malformed(value: string, why: string): TollgateError {
  return new TollgateError('TG_ERR_UNSUPPORTED_MEDIA', `malformed content-type ${JSON.stringify(value)}: ${why}`);
}

/** Parses a Content-Type field value (RFC 9110 §8.3.1); throws TG_ERR_UNSUPPORTED_MEDIA when it is malformed. */
export function parseMediaType(value: string): MediaType {
  let i = 0;
  const n = value.length;
  while (isOws(value[i])) i++;
  const token = (what: string): string => {
    const start = i;
    while (i < n && isTchar(value[i]!)) i++;
    if (i === start) throw malformed(value, `expected a ${what} at offset ${start}`);
    return value.slice(start, i).toLowerCase();
  };
  const type = token('type');
  if (value[i] !== '/') throw malformed(value, 'expected "/" after the type');
  i++;
  const subtype = token('subtype');
  const parameters = new Map<string, string>();
  for (;;) {
    while (isOws(value[i])) i++;
    if (i === n) break;
    if (value[i] !== ';') throw malformed(value, `unexpected ${JSON.stringify(value[i])} at offset ${i}`);
    i++;
    while (isOws(value[i])) i++;
    // RFC 9110 §5.6.6 allows empty parameters ("a/b;;c=d").
    if (i === n || value[i] === ';') continue;
    const name = token('parameter name');
    if (value[i] !== '=') throw malformed(value, `parameter ${name} has no "=" (no whitespace is allowed around it)`);
    i++;
    let paramValue: string;
    if (value[i] === '"') {
      i++;
      let out = '';
      for (;;) {
        if (i >= n) throw malformed(value, `unterminated quoted value of ${name}`);
        const ch = value[i]!;
        if (ch === '"') break;
        if (ch === '\\') {
          i++;
          if (i >= n) throw malformed(value, `unterminated quoted value of ${name}`);
        }
        const code = value.charCodeAt(i);
        // qdtext / quoted-pair: HTAB, SP, VCHAR, obs-text; never other controls.
        if ((code < 0x20 && code !== 0x09) || code === 0x7f)
          throw malformed(value, `control character in the value of ${name}`);
        out += value[i]!;
        i++;
      }
      i++;
      paramValue = out;
    } else {
      const start = i;
      while (i < n && isTchar(value[i]!)) i++;
      if (i === start) throw malformed(value, `parameter ${name} has an empty value`);
      paramValue = value.slice(start, i);
    }
    // Two values for one parameter (two charsets, two boundaries) have no single reading.
    if (parameters.has(name)) throw malformed(value, `parameter ${name} appears twice`);
    parameters.set(name, paramValue);
  }
  return { type, subtype, parameters };
}

/** How a body of this media type is read: JSON (application/json, any `+json` suffix per RFC 6839), form, multipart form, or other. */
export function bodyKind(media: MediaType | undefined): BodyKind {
  if (media === undefined) return 'other';
  if (media.subtype === 'json' || media.subtype.endsWith('+json')) return 'json';
  if (media.type === 'application' && media.subtype === 'x-www-form-urlencoded') return 'form';
  if (media.type === 'multipart' && media.subtype === 'form-data') return 'multipart';
  return 'other';
}
