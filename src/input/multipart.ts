/**
 * multipart/form-data bodies as opa-envoy-plugin parses them into parsed_body
 * (envoyauth/request.go): Go's mime.ParseMediaType for the boundary, Go's
 * mime/multipart reader for the parts, and for each part with a form name either its
 * text or, when the part's Content-Type contains application/json, its JSON value;
 * values are collected per name as a list. Malformed input throws TG_ERR_BAD_REQUEST,
 * where opa-envoy-plugin answers request_parse_error. Not reproduced: Go's transparent
 * quoted-printable decoding of parts that declare Content-Transfer-Encoding.
 */
import { TollgateError } from '../errors.ts';
import { parseJson as parseExactJson } from './exact-json.ts';

function bad(message: string): TollgateError {
  return new TollgateError('TG_ERR_BAD_REQUEST', `multipart body: ${message}`);
}

const TSPECIALS = '()<>@,;:\\"/[]?=';

function isTokenChar(ch: string): boolean {
  const code = ch.charCodeAt(0);
  return code > 0x20 && code < 0x7f && !TSPECIALS.includes(ch);
}

function consumeToken(v: string): [string, string] {
  let i = 0;
  while (i < v.length && isTokenChar(v[i]!)) i++;
  return [v.slice(0, i), v.slice(i)];
}

function consumeValue(v: string): [string, string] {
  if (v === '') return ['', v];
  if (v[0] !== '"') return consumeToken(v);
  let out = '';
  for (let i = 1; i < v.length; i++) {
    const ch = v[i]!;
    if (ch === '"') return [out, v.slice(i + 1)];
    // Go keeps a backslash before a non-special character (MSIE file paths); it escapes only tspecials.
    if (ch === '\\' && i + 1 < v.length && TSPECIALS.includes(v[i + 1]!)) {
      out += v[++i];
      continue;
    }
    if (ch === '\r' || ch === '\n') return ['', v];
    out += ch;
  }
  return ['', v];
}

/** Go's mime.ParseMediaType (without RFC 2231 continuations): the lowercase media type and its parameters. */
export function parseMediaType(value: string): { mediaType: string; params: Record<string, string> } {
  const semi = value.indexOf(';');
  const mediaType = (semi === -1 ? value : value.slice(0, semi)).toLowerCase().trim();
  const [major, rest] = consumeToken(mediaType);
  if (major === '') throw bad('no media type');
  if (
    rest !== '' &&
    (rest[0] !== '/' || consumeToken(rest.slice(1))[0] === '' || consumeToken(rest.slice(1))[1] !== '')
  )
    throw bad('expected token after slash');
  const params: Record<string, string> = {};
  let v = semi === -1 ? '' : value.slice(semi);
  for (;;) {
    v = v.trimStart();
    if (v === '') break;
    // consumeMediaParam: ";" spaces key spaces "=" spaces value
    let rest = v;
    let key = '';
    let val = '';
    if (rest.startsWith(';')) {
      rest = rest.slice(1).trimStart();
      [key, rest] = consumeToken(rest);
      key = key.toLowerCase();
      if (key !== '') {
        rest = rest.trimStart();
        if (rest.startsWith('=')) {
          rest = rest.slice(1).trimStart();
          let consumed: string;
          [val, consumed] = consumeValue(rest);
          if (val === '' && consumed === rest) key = '';
          else rest = consumed;
        } else key = '';
      }
    }
    if (key === '') {
      if (v.trim() === ';') break;
      throw bad('invalid media parameter');
    }
    if (key in params) throw bad('duplicate parameter name');
    params[key] = val;
    v = rest;
  }
  return { mediaType, params };
}

function isLwsp(ch: string): boolean {
  return ch === ' ' || ch === '\t';
}

/**
 * Parses a multipart/form-data payload into name -> values, as opa-envoy-plugin does.
 * `parseJson` reads the JSON parts (the strict reading passes its strict parser).
 */
export function parseMultipart(
  contentType: string,
  payload: string,
  parseJson: (text: string) => unknown = parseExactJson,
): Record<string, unknown[]> | null {
  const { params } = parseMediaType(contentType);
  const boundary = params.boundary;
  if (boundary === undefined) return null;
  if (boundary === '') throw bad('boundary is empty');
  const dash = `--${boundary}`;
  let nl = '\r\n';
  const values: Record<string, unknown[]> = {};
  let at = 0;
  let partsRead = 0;

  const readLine = (): { line: string; eof: boolean } => {
    const end = payload.indexOf('\n', at);
    if (end === -1) {
      const line = payload.slice(at);
      at = payload.length;
      return { line, eof: true };
    }
    const line = payload.slice(at, end + 1);
    at = end + 1;
    return { line, eof: false };
  };
  const skipLwsp = (rest: string): string => {
    let i = 0;
    while (i < rest.length && isLwsp(rest[i]!)) i++;
    return rest.slice(i);
  };
  const isDelimiter = (line: string): boolean => {
    if (!line.startsWith(dash)) return false;
    const rest = skipLwsp(line.slice(dash.length));
    // On the first part, lines ending in "\n" alone switch the reader to that mode.
    if (partsRead === 0 && rest === '\n') nl = '\n';
    return rest === nl;
  };
  const isFinal = (line: string): boolean => {
    if (!line.startsWith(`${dash}--`)) return false;
    const tail = skipLwsp(line.slice(dash.length + 2));
    return tail === '' || tail === nl;
  };

  for (;;) {
    // NextPart
    let expectNewPart = false;
    let started = false;
    for (;;) {
      const { line, eof } = readLine();
      if (eof && isFinal(line)) return values;
      if (eof) throw bad('unexpected end of body (no closing boundary)');
      if (isDelimiter(line)) {
        partsRead++;
        started = true;
        break;
      }
      if (isFinal(line)) return values;
      if (expectNewPart) throw bad('expecting a new part');
      if (partsRead === 0) continue;
      if (line === nl) {
        expectNewPart = true;
        continue;
      }
      throw bad('unexpected line between parts');
    }
    if (!started) return values;
    // Part headers (textproto MIME header).
    const headers: Record<string, string> = {};
    let lastKey = '';
    for (;;) {
      const { line, eof } = readLine();
      if (eof) throw bad('unexpected end of part headers');
      const text = line.replace(/\r?\n$/, '');
      if (text === '') break;
      if (isLwsp(text[0]!) && lastKey !== '') {
        headers[lastKey] += ` ${text.trim()}`;
        continue;
      }
      const colon = text.indexOf(':');
      const key = colon === -1 ? '' : text.slice(0, colon);
      if (key === '' || !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(key)) throw bad('malformed part header line');
      lastKey = key.toLowerCase();
      if (!(lastKey in headers)) headers[lastKey] = text.slice(colon + 1).trim();
    }
    // Part body: up to nl + dash followed by "--", a space, tab, CR, LF or the end (Go's
    // matchAfterPrefix); an empty body may meet dash at once.
    const boundaryFollows = (i: number): boolean =>
      i >= payload.length || ' \t\r\n'.includes(payload[i]!) || (payload[i] === '-' && payload[i + 1] === '-');
    let end = -1;
    if (payload.startsWith(dash, at) && boundaryFollows(at + dash.length)) end = at;
    for (let from = at; end === -1;) {
      const found = payload.indexOf(nl + dash, from);
      if (found === -1) throw bad('unexpected end of part body');
      if (boundaryFollows(found + nl.length + dash.length)) end = found;
      else from = found + 1;
    }
    const body = payload.slice(at, end);
    at = end;
    let name = '';
    const disposition = headers['content-disposition'];
    if (disposition !== undefined) {
      try {
        const d = parseMediaType(disposition);
        if (d.mediaType === 'form-data') name = d.params.name ?? '';
      } catch {
        name = '';
      }
    }
    if (name === '') continue;
    if ((headers['content-type'] ?? '').includes('application/json')) {
      let value: unknown;
      try {
        value = parseJson(body);
      } catch (cause) {
        if (cause instanceof TollgateError)
          throw new TollgateError(cause.code, `multipart body: part ${JSON.stringify(name)}: ${cause.message}`, {
            cause,
          });
        throw new TollgateError(
          'TG_ERR_BAD_REQUEST',
          `multipart body: part ${JSON.stringify(name)} is not valid JSON`,
          { cause },
        );
      }
      (values[name] ??= []).push(value);
    } else {
      (values[name] ??= []).push(body);
    }
  }
}
