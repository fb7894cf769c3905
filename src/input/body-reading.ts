/**
 * The strict body reading of the HTTP PEP: a body reaches the policy with exactly the
 * meaning the tool's parser will give it, or the request is refused (docs/body-reading.md
 * lists every rule). JSON-RPC is recognised by content, not by Content-Type, because MCP
 * server libraries (Python SDK/Starlette, Go SDK, FastAPI) parse the body whatever the
 * header says. Pure functions: no I/O.
 */
import { isUtf8 } from 'node:buffer';
import { TollgateError } from '../errors.ts';
import { bodyKind, parseMediaType, type BodyKind, type MediaType } from './media-type.ts';
import { parseMultipart } from './multipart.ts';
import { checkMcpHeaders, readJsonRpc, type McpInput } from './mcp.ts';
import { wideJsonText } from './json-encoding.ts';
import { parseMediaType as goParseMediaType } from './multipart.ts';
import { isSyntaxOnly, parseStrictJson, validateStrictJson } from './strict-json.ts';
import { buildJson } from './exact-json.ts';

/** parsed_body, truncated_body and input.mcp as one reading of the body produced them. */
export interface BodyReadingResult {
  readonly parsed: unknown;
  readonly truncated: boolean;
  readonly mcp?: McpInput;
}

/** What a strict reading needs besides the headers. */
export interface StrictBodyInput {
  readonly headers: Record<string, string>;
  /** The body as text (UTF-8 decoded), '' when none. */
  readonly text: string;
  /** The body bytes when known (the text alone cannot show invalid UTF-8). */
  readonly bytes: Buffer | undefined;
  /** True when only a prefix of the body is here. */
  readonly truncated: boolean;
  /** The buffer limit, named when a JSON-RPC body is past it. */
  readonly limit: number | undefined;
  /** JSON.parse of `text` when the caller already has it (saves parsing twice). */
  readonly parsed?: { readonly value: unknown };
}

// "jsonrpc" as a member name in any case, U+017F LONG S included: Go's encoding/json
// matches member names under Unicode simple case folding, where ſ is s.
const JSONRPC_NAME = /"j[s\u017f]onrpc"/i;

/** The first byte after an optional BOM and JSON whitespace opens an object or array. */
function opensJson(text: string): boolean {
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  for (;;) {
    const c = text.charCodeAt(i);
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
    else return c === 0x7b || c === 0x5b;
  }
}

/**
 * Could a server library execute this body as JSON-RPC? It names a "jsonrpc" member (in
 * any case), or opens like JSON and has \u escapes (which can spell that name), or names it
 * in UTF-16 or UTF-32, which Python's json.loads(bytes) detects by the NUL bytes (RFC 4627 §3).
 */
function looksLikeJsonRpc(text: string): boolean {
  if (JSONRPC_NAME.test(text) || (opensJson(text) && text.includes('\\u'))) return true;
  return text.includes('\0') && JSONRPC_NAME.test(text.replaceAll('\0', ''));
}

/**
 * Would Python's json.loads(bytes) read a JSON value from this body in UTF-16 or UTF-32?
 * The decoded text opens like JSON, names "jsonrpc", or is a JSON value whole. Names the
 * encoding, or undefined.
 */
function wideJson(bytes: Buffer): string | undefined {
  const wide = wideJsonText(bytes);
  if (wide === undefined) return undefined;
  const { text } = wide;
  if (opensJson(text) || JSONRPC_NAME.test(text)) return wide.encoding;
  try {
    JSON.parse(text);
    return wide.encoding;
  } catch {
    return undefined;
  }
}

/** A prefix Python's json.loads(bytes) would decode as UTF-16/32 text that opens like JSON or names "jsonrpc". */
function wideOpensJson(prefix: Buffer): boolean {
  const wide = wideJsonText(prefix);
  return wide !== undefined && (opensJson(wide.text) || JSONRPC_NAME.test(wide.text));
}

/** Refuses a body Python's json.loads(bytes) reads as UTF-16/32 JSON while the policy reads other text. */
function checkWideJson(bytes: Buffer, what: string): void {
  const encoding = wideJson(bytes);
  if (encoding !== undefined)
    throw new TollgateError(
      'TG_ERR_UNSUPPORTED_MEDIA',
      `${what} is JSON in ${encoding.toUpperCase()} to Python's json.loads (it detects the encoding from a byte order mark or NUL bytes); only UTF-8 is read`,
    );
}

/**
 * multipart/form-data needs its boundary (RFC 7578 §4.1); without one the policy reads no
 * part while servers that decode the body as JSON read it all. A preamble (the bytes before
 * the first delimiter, RFC 2046 §5.1.1) is skipped by form parsers but is the first JSON
 * value to Go's json.NewDecoder(r.Body): one that opens like JSON or names "jsonrpc" is refused.
 */
function checkMultipart(contentType: string, text: string): void {
  let boundary: string | undefined;
  try {
    boundary = goParseMediaType(contentType).params.boundary;
  } catch {
    boundary = undefined;
  }
  if (boundary === undefined || boundary === '')
    throw new TollgateError(
      'TG_ERR_UNSUPPORTED_MEDIA',
      'multipart/form-data without a boundary parameter: no part can be read, while servers that ignore the label read the body as JSON',
    );
  const dash = `--${boundary}`;
  const first = text.startsWith(dash) ? 0 : text.indexOf(`\n${dash}`);
  const preamble = first === -1 ? text : text.slice(0, first);
  if (opensJson(preamble) || JSONRPC_NAME.test(preamble))
    throw ambiguous(
      'multipart body whose preamble is JSON: form parsers skip it, a JSON decoder reading the body reads it as the value',
    );
}

function ambiguous(message: string): TollgateError {
  return new TollgateError('TG_ERR_AMBIGUOUS_BODY', message);
}

/** RFC 9110 §8.4: a content coding other than identity hides the body from the policy. */
function checkContentEncoding(headers: Record<string, string>): void {
  const coding = headers['content-encoding'];
  if (coding === undefined) return;
  for (const token of coding.split(',')) {
    const name = token.trim().toLowerCase();
    if (name !== 'identity' && name !== '') {
      throw new TollgateError(
        'TG_ERR_UNSUPPORTED_MEDIA',
        `content-encoding ${JSON.stringify(coding)} is refused: the policy cannot read through it as the tool will`,
      );
    }
  }
}

/** Only UTF-8 is read (RFC 8259 §8.1); us-ascii is its subset when every byte is ASCII. */
function checkCharset(media: MediaType | undefined, bytes: Buffer): void {
  const charset = media?.parameters.get('charset')?.toLowerCase();
  if (charset === undefined || charset === 'utf-8' || charset === 'utf8') return;
  if (charset === 'us-ascii' || charset === 'ascii') {
    for (let k = 0; k < bytes.length; k++)
      if (bytes[k]! > 0x7f)
        throw new TollgateError(
          'TG_ERR_UNSUPPORTED_MEDIA',
          `charset ${charset} declared but the body has a non-ASCII byte at offset ${k}`,
        );
    return;
  }
  throw new TollgateError(
    'TG_ERR_UNSUPPORTED_MEDIA',
    `charset ${JSON.stringify(charset)} is refused: only utf-8 is read`,
  );
}

/** The bytes are UTF-8 without a byte order mark (RFC 8259 §8.1: no BOM; Python's json reads through one). */
function checkUtf8(bytes: Buffer, what: string): void {
  if (!isUtf8(bytes)) throw ambiguous(`${what} is not valid UTF-8 (decoders replace or reject the bytes differently)`);
  if (bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf)
    throw ambiguous(`${what} starts with a UTF-8 byte order mark`);
}

/** The JSON value of a JSON or JSON-RPC body, read strictly. */
function readJson(
  bytes: Buffer,
  text: string,
  known: { readonly value: unknown } | undefined,
): { parsed: unknown; mcp?: McpInput; jsonRpc: boolean } {
  checkUtf8(bytes, 'JSON body');
  let parsed: unknown;
  if (known === undefined) parsed = parseStrictJson(text);
  else parsed = validateStrictJson(text) ? buildJson(text) : known.value;
  const rpc = readJsonRpc(parsed);
  if (rpc === undefined) return { parsed, jsonRpc: false };
  return rpc.mcp === undefined ? { parsed, jsonRpc: true } : { parsed, mcp: rpc.mcp, jsonRpc: true };
}

function declaredLonger(headers: Record<string, string>, byteLength: number): boolean {
  const declared = headers['content-length'];
  if (declared === undefined) return false;
  if (!/^[+-]?\d+$/.test(declared))
    throw new TollgateError('TG_ERR_BAD_REQUEST', `invalid content-length ${JSON.stringify(declared)}`);
  const cl = Number(declared);
  return cl !== -1 && cl > byteLength;
}

/** Reads a body strictly (see the module comment); throws the TollgateError that names why it cannot be read in one way. */
export function readBodyStrict(input: StrictBodyInput, parseForm: (text: string) => unknown): BodyReadingResult {
  const { headers, text } = input;
  const bytes = input.bytes ?? Buffer.from(text, 'utf8');
  // A bodyless request skips every rule: nothing can be read differently.
  if (bytes.length === 0 && !input.truncated) return { parsed: null, truncated: false };
  checkContentEncoding(headers);
  const contentType = headers['content-type'];
  const media = contentType === undefined ? undefined : parseMediaType(contentType);
  const kind: BodyKind = bodyKind(media);
  // x-envoy-auth-partial-body is not read here: only Envoy sets it, on the ext_authz door
  // (envoyBody); from an agent it would mark any body as cut short and hide it from the policy.
  const partial = input.truncated || declaredLonger(headers, bytes.length);
  if (partial) {
    // A JSON-RPC call may put "jsonrpc" and the tool name after the limit (member order is
    // free), so any prefix that opens like JSON (except under form types) is refused too.
    if (
      kind !== 'multipart' &&
      ((kind !== 'form' && opensJson(text.slice(0, 64).replaceAll('\0', ''))) ||
        looksLikeJsonRpc(text) ||
        wideOpensJson(bytes.subarray(0, 256)))
    ) {
      const limit = input.limit ?? bytes.length;
      throw new TollgateError(
        'TG_ERR_BODY_TOO_LARGE',
        `a JSON body (possibly JSON-RPC) is larger than the ${limit}-byte buffer limit (proxy.maxRequestBytes) and cannot be decided on whole`,
      );
    }
    checkMcpHeaders(headers, undefined);
    return { parsed: null, truncated: true };
  }
  const result = readKind(kind, media, contentType, text, bytes, input.parsed, parseForm);
  checkMcpHeaders(headers, result.jsonRpc ? result.parsed : undefined);
  return result.mcp === undefined
    ? { parsed: result.parsed, truncated: false }
    : { parsed: result.parsed, truncated: false, mcp: result.mcp };
}

/** The body read by its kind: parsed_body, input.mcp, and whether it is JSON-RPC. */
function readKind(
  kind: BodyKind,
  media: MediaType | undefined,
  contentType: string | undefined,
  text: string,
  bytes: Buffer,
  known: { readonly value: unknown } | undefined,
  parseForm: (text: string) => unknown,
): { parsed: unknown; mcp?: McpInput; jsonRpc: boolean } {
  const none = { parsed: null, jsonRpc: false };
  switch (kind) {
    case 'json': {
      checkCharset(media, bytes);
      return readJson(bytes, text, known);
    }
    case 'form': {
      // JSON labelled as a form is read as JSON by servers that ignore the label (Go
      // handlers decoding r.Body, Starlette's request.json()): the policy's form reading
      // would be the only one. No form body opens with "{" or "[".
      if (!looksLikeJsonRpc(text)) checkWideJson(bytes, 'form body');
      if (opensJson(text))
        throw ambiguous(
          looksLikeJsonRpc(text)
            ? 'a JSON-RPC message sent as application/x-www-form-urlencoded'
            : 'a JSON body sent as application/x-www-form-urlencoded',
        );
      checkCharset(media, bytes);
      if (!isUtf8(bytes)) throw ambiguous('form body is not valid UTF-8');
      return { parsed: parseForm(text), jsonRpc: false };
    }
    case 'multipart':
      if (!looksLikeJsonRpc(text)) checkWideJson(bytes, 'multipart body');
      checkMultipart(contentType!, text);
      // Parts are often binary files, so UTF-8 is not demanded; JSON parts are read strictly.
      return { parsed: parseMultipart(contentType!, text, parseStrictJson), jsonRpc: false };
    case 'other': {
      // Tools read JSON whatever the label: Go handlers decode r.Body, Starlette's
      // request.json() and FastAPI without a Content-Type parse it, MCP SDKs dispatch it.
      // So a body that opens like JSON (or names jsonrpc) is read as JSON here too.
      const jsonRpcLike = looksLikeJsonRpc(text);
      if (!jsonRpcLike) checkWideJson(bytes, 'body');
      if (!jsonRpcLike && !opensJson(text)) return none;
      try {
        checkCharset(media, bytes);
        return readJson(bytes, text, known);
      } catch (err) {
        // Not JSON to any tool's parser either (and not JSON-RPC-like): opaque bytes.
        if (!jsonRpcLike && isSyntaxOnly(err)) return none;
        throw err;
      }
    }
    default:
      return kind satisfies never;
  }
}

/**
 * The strict reading's check of a body the ext_authz door reads as opa-envoy-plugin does:
 * Envoy forwards the body to a tool that reads JSON whatever the label, so a body that
 * opens like JSON, names "jsonrpc", is UTF-16/32 JSON to Python, or comes with Mcp-Method /
 * Mcp-Name headers must pass the strict reading (its TollgateError is thrown: the server
 * answers request_parse_error, 400). Returns input.mcp when the body is JSON-RPC. A JSON
 * value the strict reading finds where opa-envoy-plugin's parsed_body is null (no or a
 * non-JSON Content-Type) is refused too: the policy would decide blind on what the tool reads.
 */
export function checkEnvoyBody(
  headers: Record<string, string>,
  text: string,
  bytes: Buffer | undefined,
  envoyParsed: unknown,
  parsed?: { readonly value: unknown },
): McpInput | undefined {
  const jsonLike =
    opensJson(text) ||
    looksLikeJsonRpc(text) ||
    // Detection needs four bytes: the whole body is decoded only when they are UTF-16/32.
    (wideJsonText((bytes ?? Buffer.from(text.slice(0, 4), 'utf8')).subarray(0, 4)) !== undefined &&
      wideJson(bytes ?? Buffer.from(text, 'utf8')) !== undefined) ||
    headers['mcp-method'] !== undefined ||
    headers['mcp-name'] !== undefined;
  if (!jsonLike) return undefined;
  const result = readBodyStrict(
    { headers, text, bytes, truncated: false, limit: undefined, ...(parsed === undefined ? {} : { parsed }) },
    () => null,
  );
  if (result.mcp === undefined && result.parsed !== null && envoyParsed === null) {
    const type = headers['content-type'];
    throw ambiguous(
      `a JSON body ${type === undefined ? 'without a content-type' : `under content-type ${JSON.stringify(type)}`}: opa-envoy-plugin's parsed_body is null for it, while the tool behind Envoy reads the JSON`,
    );
  }
  return result.mcp;
}
