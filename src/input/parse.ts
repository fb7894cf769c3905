/**
 * The parsing rules opa-envoy-plugin applies to a CheckRequest (parsed_path,
 * parsed_query, parsed_body), reimplemented so a policy sees the same values.
 * Go's url.PathUnescape / url.ParseQuery semantics are followed, including their errors.
 */
import { TollgateError } from '../errors.ts';
import { parseMultipart } from './multipart.ts';
import { checkEnvoyBody, readBodyStrict, type BodyReadingResult } from './body-reading.ts';
import { parseJson } from './exact-json.ts';

const decoder = new TextDecoder('utf-8');
const fatalDecoder = new TextDecoder('utf-8', { fatal: true });

function percentDecode(text: string, plusIsSpace: boolean, what: string, strict = false): string {
  if (!text.includes('%') && !(plusIsSpace && text.includes('+'))) return text;
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '%') {
      const hex = text.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) {
        throw new TollgateError(
          'TG_ERR_BAD_REQUEST',
          `invalid percent-encoding in ${what}: ${JSON.stringify(text.slice(i, i + 3))}`,
        );
      }
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else if (plusIsSpace && ch === '+') {
      bytes.push(0x20);
    } else {
      for (const b of Buffer.from(ch, 'utf8')) bytes.push(b);
    }
  }
  if (!strict) return decoder.decode(Uint8Array.from(bytes));
  try {
    return fatalDecoder.decode(Uint8Array.from(bytes));
  } catch (cause) {
    throw new TollgateError('TG_ERR_AMBIGUOUS_BODY', `percent-escapes in ${what} decode to invalid UTF-8`, { cause });
  }
}

/** parsed_path: the decoded path, leading slashes trimmed, split on "/". */
export function parsePath(path: string): string[] {
  const q = path.indexOf('?');
  const rawPath = q === -1 ? path : path.slice(0, q);
  return percentDecode(rawPath, false, 'path').replace(/^\/+/, '').split('/');
}

/**
 * Go's url.ParseQuery: key → list of values; a ";" separator is an error. With `strict`
 * (form bodies in the strict reading) escapes that decode to invalid UTF-8 are refused
 * instead of becoming U+FFFD.
 */
export function parseQuery(rawQuery: string, strict = false): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  if (rawQuery === '') return out;
  for (const part of rawQuery.split('&')) {
    if (part === '') continue;
    if (part.includes(';')) throw new TollgateError('TG_ERR_BAD_REQUEST', 'invalid semicolon separator in query');
    const eq = part.indexOf('=');
    const what = strict ? 'form body' : 'query';
    const key = percentDecode(eq === -1 ? part : part.slice(0, eq), true, what, strict);
    const value = eq === -1 ? '' : percentDecode(part.slice(eq + 1), true, what, strict);
    (out[key] ??= []).push(value);
  }
  return out;
}

/** parsed_query of a path with an optional "?query". */
export function parsePathQuery(path: string): Record<string, string[]> {
  const q = path.indexOf('?');
  return parseQuery(q === -1 ? '' : path.slice(q + 1));
}

/** Go's strconv.ParseInt(s, 10, 64) accepts an optional sign and decimal digits only. */
const GO_INT = /^[+-]?\d+$/;

/**
 * How a body is read: 'strict' (the HTTP PEP: one meaning or refused, docs/body-reading.md)
 * or 'envoy' (the ext_authz server: opa-envoy-plugin's parsed_body, input.mcp by content,
 * JSON-looking bodies held to the strict reading).
 */
export type BodyReading = 'strict' | 'envoy';

/** Options of parseBody. */
export interface ParseBodyOptions {
  /** The reading; 'envoy' when absent. */
  readonly reading?: BodyReading;
  /** The buffer limit (proxy.maxRequestBytes), named when a JSON-RPC body is past it. */
  readonly limit?: number;
}

/**
 * parsed_body, truncated_body and input.mcp in the given reading. Strict: see
 * readBodyStrict. Envoy: parsed_body as opa-envoy-plugin computes it (envoyBody), and
 * input.mcp recognised from the content; a body that looks like JSON to the tool behind
 * Envoy must pass the strict reading (checkEnvoyBody), else its TollgateError is thrown.
 */
export function parseBody(
  headers: Record<string, string>,
  body: string,
  truncated: boolean,
  rawBody?: Buffer,
  options: ParseBodyOptions = {},
): BodyReadingResult {
  if (options.reading === 'strict') {
    const text = body !== '' || rawBody === undefined ? body : rawBody.toString('utf8');
    return readBodyStrict({ headers, text, bytes: rawBody, truncated, limit: options.limit }, (form) =>
      parseQuery(form, true),
    );
  }
  const result = envoyBody(headers, body, truncated, rawBody);
  if (result.truncated) return result;
  const text = body !== '' || rawBody === undefined ? body : rawBody.toString('utf8');
  if (text === '') return result;
  // opa-envoy-plugin's JSON value is JSON.parse of the same text: reuse it.
  const known = (headers['content-type'] ?? '').includes('application/json') ? { value: result.parsed } : undefined;
  const mcp = checkEnvoyBody(headers, text, body !== '' ? undefined : rawBody, result.parsed, known);
  return mcp === undefined ? result : { ...result, mcp };
}

/**
 * parsed_body as opa-envoy-plugin computes it from the content-type: JSON, form,
 * multipart form, or null (envoyauth/request.go getParsedBody). The text is `body`, else `rawBody`
 * (CheckRequest raw_body, sent by Envoy with pack_as_bytes). Returns truncated when
 * the body is known to be partial. Throws TG_ERR_BAD_REQUEST when a JSON or form body
 * does not parse (opa-envoy-plugin errors too).
 */
export function envoyBody(
  headers: Record<string, string>,
  body: string,
  truncated: boolean,
  rawBody?: Buffer,
): { parsed: unknown; truncated: boolean } {
  if (truncated || headers['x-envoy-auth-partial-body'] === 'true') return { parsed: null, truncated: true };
  const contentType = headers['content-type'];
  if (contentType === undefined) return { parsed: null, truncated: false };
  const isJson = contentType.includes('application/json');
  // application/grpc bodies are only decoded by opa-envoy-plugin when given a proto
  // descriptor set (proto-descriptor), which Tollgate does not offer: parsed_body stays null.
  const isGrpc = !isJson && contentType.includes('application/grpc');
  const isForm = !isJson && !isGrpc && contentType.includes('application/x-www-form-urlencoded');
  const isMultipart = !isJson && !isGrpc && !isForm && contentType.includes('multipart/form-data');
  if (!isJson && !isForm && !isMultipart) return { parsed: null, truncated: false };
  let text = body;
  let byteLength: number;
  if (text !== '') byteLength = Buffer.byteLength(text, 'utf8');
  else if (rawBody !== undefined && rawBody.length > 0) {
    text = rawBody.toString('utf8');
    byteLength = rawBody.length;
  } else return { parsed: null, truncated: false };
  const declared = headers['content-length'];
  if (declared !== undefined) {
    if (!GO_INT.test(declared))
      throw new TollgateError('TG_ERR_BAD_REQUEST', `invalid content-length ${JSON.stringify(declared)}`);
    const cl = Number(declared);
    if (cl !== -1 && cl > byteLength) return { parsed: null, truncated: true };
  }
  if (isJson) {
    try {
      return { parsed: parseJson(text), truncated: false };
    } catch (cause) {
      throw new TollgateError(
        'TG_ERR_BAD_REQUEST',
        `request body is not valid JSON although content-type is ${contentType}`,
        { cause },
      );
    }
  }
  if (isMultipart) return { parsed: parseMultipart(contentType, text), truncated: false };
  return { parsed: parseQuery(text), truncated: false };
}
