/**
 * MCP awareness: when a request body is a JSON-RPC 2.0 message (MCP's wire format),
 * the policy sees its method and, for tools/call, the tool name and arguments as
 * input.mcp. A batch exposes every message, so one denied call cannot hide in it.
 */
import { TollgateError } from '../errors.ts';
import { foldKey } from './strict-json.ts';

/** One JSON-RPC message as the policy sees it. */
export interface McpMessage {
  id?: string | number | null;
  method: string;
  tool?: { name: string; arguments: unknown };
}

/**
 * What the transport says about the session a message belongs to. `session_id` is the
 * `Mcp-Session-Id` header (revisions 2025-03-26 to 2025-11-25; 2026-07-28 has no
 * protocol-level sessions): a value the agent sends, carried for the policy and the
 * decision log, never an identity. `protocol_version` is the `MCP-Protocol-Version`
 * header, else the 2026-07-28 `params._meta["io.modelcontextprotocol/protocolVersion"]`,
 * else the version an `initialize` request asks for.
 */
export interface McpTransport {
  protocol_version?: string;
  session_id?: string;
}

/** input.mcp: a single message, or a batch of them, with what the transport says about them. */
export type McpInput = (McpMessage | { method: 'batch'; batch: McpMessage[] }) & McpTransport;

function toMessage(value: unknown): McpMessage | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const msg = value as Record<string, unknown>;
  if (msg.jsonrpc !== '2.0' || typeof msg.method !== 'string') return undefined;
  const out: McpMessage = { method: msg.method };
  if (typeof msg.id === 'string' || typeof msg.id === 'number' || msg.id === null) out.id = msg.id;
  if (msg.method === 'tools/call') {
    const params = (typeof msg.params === 'object' && msg.params !== null ? msg.params : {}) as Record<string, unknown>;
    out.tool = { name: typeof params.name === 'string' ? params.name : '', arguments: params.arguments ?? {} };
  }
  return out;
}

/** Extracts input.mcp from a parsed JSON body leniently (skipping what is not JSON-RPC 2.0), or undefined when it is not JSON-RPC. */
export function extractMcp(parsedBody: unknown): McpInput | undefined {
  if (Array.isArray(parsedBody)) {
    const batch = parsedBody.map(toMessage).filter((m): m is McpMessage => m !== undefined);
    return batch.length === 0 ? undefined : { method: 'batch', batch };
  }
  return toMessage(parsedBody);
}

/** The JSON-RPC ids a deny must answer: one error object per request in the message. */
export function mcpRequestIds(mcp: McpInput): Array<string | number | null> {
  if ('batch' in mcp) return mcp.batch.filter((m) => m.id !== undefined).map((m) => m.id ?? null);
  return mcp.id === undefined ? [] : [mcp.id];
}

const MESSAGE_MEMBERS = new Map(['jsonrpc', 'method', 'params', 'id', 'result', 'error'].map((m) => [m, m]));
const CALL_MEMBERS = new Map(['name', 'arguments'].map((m) => [m, m]));

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** True when a key folds to "jsonrpc" (Go's encoding/json would fill the jsonrpc field from it). */
function hasJsonRpcMember(value: unknown): boolean {
  if (!isObject(value)) return false;
  for (const key of Object.keys(value)) if (key.length === 7 && foldKey(key) === 'jsonrpc') return true;
  return false;
}

/** Refuses keys that a case-insensitive decoder (Go's encoding/json) would take for a member the policy reads. */
function checkSpelling(obj: Record<string, unknown>, members: Map<string, string>, where: string): void {
  for (const key of Object.keys(obj)) {
    const wanted = members.get(foldKey(key));
    if (wanted !== undefined && wanted !== key) {
      throw new TollgateError(
        'TG_ERR_AMBIGUOUS_BODY',
        `${where}: member ${JSON.stringify(key)} is read as "${wanted}" by case-insensitive decoders and ignored by others`,
      );
    }
  }
}

function strictMessage(value: unknown, where: string): McpMessage | undefined {
  const bad = (why: string): TollgateError =>
    new TollgateError('TG_ERR_AMBIGUOUS_BODY', `${where} is not well-formed JSON-RPC 2.0: ${why}`);
  if (!isObject(value)) throw bad('not an object');
  checkSpelling(value, MESSAGE_MEMBERS, where);
  if (value.jsonrpc !== '2.0') throw bad('jsonrpc is not "2.0"');
  const has = (name: string): boolean => Object.hasOwn(value, name);
  const hasId = has('id');
  if (hasId && typeof value.id !== 'string' && typeof value.id !== 'number' && value.id !== null)
    throw bad('id is not a string, number or null');
  if (!has('method')) {
    // A response (MCP clients answer server requests such as sampling by POSTing one).
    if (!hasId || has('result') === has('error'))
      throw bad('neither a request (method) nor a response (id with result or error)');
    return undefined;
  }
  if (typeof value.method !== 'string') throw bad('method is not a string');
  if (has('result') || has('error')) throw bad('a request with result or error');
  if (has('params') && (typeof value.params !== 'object' || value.params === null))
    throw bad('params is not an object or array');
  const out: McpMessage = { method: value.method };
  if (hasId) out.id = value.id as string | number | null;
  if (value.method === 'tools/call') {
    const params = value.params;
    if (!isObject(params)) throw bad('tools/call params is not an object');
    checkSpelling(params, CALL_MEMBERS, `${where} params`);
    if (typeof params.name !== 'string') throw bad('tools/call params.name is not a string');
    if (Object.hasOwn(params, 'arguments') && !isObject(params.arguments))
      throw bad('tools/call params.arguments is not an object');
    out.tool = { name: params.name, arguments: params.arguments ?? {} };
  }
  return out;
}

/**
 * input.mcp from a strictly parsed body: undefined when it is not JSON-RPC (no member
 * named, or folding to, "jsonrpc"); throws TG_ERR_AMBIGUOUS_BODY when it is JSON-RPC but
 * a message or batch element is not well-formed JSON-RPC 2.0 (naming the element), since
 * servers differ on what they execute of it.
 */
export function readJsonRpc(parsedBody: unknown): JsonRpcReading | undefined {
  if (Array.isArray(parsedBody)) {
    // JSON-RPC 2.0 batches do not nest; a server that flattens [[…]] would run what the
    // policy never saw as a call.
    const nested = parsedBody.findIndex(
      (e) => Array.isArray(e) && e.some((m) => hasJsonRpcMember(m) || Array.isArray(m)),
    );
    if (nested !== -1)
      throw new TollgateError(
        'TG_ERR_AMBIGUOUS_BODY',
        `batch element ${nested} is itself a batch: JSON-RPC 2.0 batches do not nest`,
      );
    if (!parsedBody.some(hasJsonRpcMember)) return undefined;
    const batch: McpMessage[] = [];
    parsedBody.forEach((element, index) => {
      const message = strictMessage(element, `batch element ${index}`);
      if (message !== undefined) batch.push(message);
    });
    return batch.length === 0 ? {} : { mcp: { method: 'batch', batch } };
  }
  if (!hasJsonRpcMember(parsedBody)) return undefined;
  const message = strictMessage(parsedBody, 'message');
  return message === undefined ? {} : { mcp: message };
}

/** A body recognised as JSON-RPC: its requests as input.mcp (absent when it holds only responses). */
export interface JsonRpcReading {
  readonly mcp?: McpInput;
}

/**
 * The MCP 2026-07-28 Streamable HTTP transport's HeaderMismatch error (JSON-RPC
 * implementation-defined server error range): an intermediary refuses with HTTP 400.
 */
export const JSONRPC_HEADER_MISMATCH = -32020;
const HEADER_MISMATCH = JSONRPC_HEADER_MISMATCH;

/** The _meta key a 2026-07-28 request names its protocol version under. */
const META_PROTOCOL_VERSION = 'io.modelcontextprotocol/protocolVersion';

/**
 * A refusal of MCP headers that disagree with the body: TG_ERR_AMBIGUOUS_BODY, answered
 * as a JSON-RPC error response (code -32020) carrying the request's id when it has one.
 */
export class McpHeaderMismatchError extends TollgateError {
  /** The JSON-RPC id of the refused request (null when the body has none to answer). */
  readonly jsonRpcId: string | number | null;

  constructor(message: string, jsonRpcId: string | number | null) {
    super('TG_ERR_AMBIGUOUS_BODY', message);
    this.jsonRpcId = jsonRpcId;
  }
}

/** The id of a single JSON-RPC request body, or null. */
function requestId(body: unknown): string | number | null {
  if (!isObject(body)) return null;
  const id = body.id;
  return typeof id === 'string' || typeof id === 'number' ? id : null;
}

/** params._meta of a single message, when it is an object. */
function metaOf(body: unknown): Record<string, unknown> | undefined {
  if (!isObject(body) || !isObject(body.params)) return undefined;
  const meta = body.params._meta;
  return isObject(meta) ? meta : undefined;
}

/**
 * input.mcp with what the transport says: `session_id` from Mcp-Session-Id and
 * `protocol_version` (see McpTransport). `body` is the parsed JSON-RPC body.
 */
export function withTransport(mcp: McpInput, headers: Record<string, string>, body: unknown): McpInput {
  const out: McpInput = { ...mcp };
  const session = headers['mcp-session-id'];
  if (session !== undefined) out.session_id = session;
  let version: unknown = headers['mcp-protocol-version'];
  if (version === undefined) version = metaOf(body)?.[META_PROTOCOL_VERSION];
  if (version === undefined && isObject(body) && body.method === 'initialize' && isObject(body.params))
    version = body.params.protocolVersion;
  if (typeof version === 'string') out.protocol_version = version;
  return out;
}

/** Mcp-Name's value: plain visible ASCII as is, or "=?base64?…?=" around standard Base64 of UTF-8. */
function decodeMcpName(value: string): string | undefined {
  const match = /^=\?base64\?([A-Za-z0-9+/]*={0,2})\?=$/.exec(value);
  if (match === null) return value.startsWith('=?base64?') ? undefined : value;
  const payload = match[1]!;
  if (payload.length % 4 !== 0) return undefined;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(payload, 'base64'));
  } catch {
    return undefined;
  }
}

/** The body value Mcp-Name mirrors for a method (params.name or params.uri), or undefined when it mirrors none. */
function mirroredName(method: string, params: unknown): { member: string; value: unknown } | undefined {
  const member =
    method === 'tools/call' || method === 'prompts/get' ? 'name' : method === 'resources/read' ? 'uri' : undefined;
  if (member === undefined) return undefined;
  return { member, value: isObject(params) && Object.hasOwn(params, member) ? params[member] : undefined };
}

/**
 * Refuses Mcp-Method / Mcp-Name headers that disagree with the JSON-RPC body (MCP
 * 2026-07-28, Streamable HTTP: the headers mirror the body's method and params.name or
 * params.uri, and an intermediary rejects a mismatch with 400, HeaderMismatch -32020).
 * Gateways and servers that route or authorise by header would act on another call than
 * the one the policy read in the body. Absent headers are accepted (earlier revisions send
 * none); headers on a batch, a response or a body that is not JSON-RPC cannot agree.
 * `jsonRpcBody` is the parsed body when it was read as JSON-RPC, else undefined.
 */
export function checkMcpHeaders(headers: Record<string, string>, jsonRpcBody: unknown): void {
  const method = headers['mcp-method'];
  const name = headers['mcp-name'];
  const version = headers['mcp-protocol-version'];
  if (version !== undefined && jsonRpcBody !== undefined) {
    // 2026-07-28: the header mirrors _meta's protocol version; a server reading one and a
    // gateway the other would apply two revisions' rules to one request.
    const inBody = metaOf(jsonRpcBody)?.[META_PROTOCOL_VERSION];
    if (inBody !== undefined && inBody !== version)
      throw new McpHeaderMismatchError(
        `mcp headers disagree with the body (HeaderMismatch ${HEADER_MISMATCH}): MCP-Protocol-Version ${JSON.stringify(version)}, body params._meta[${JSON.stringify(META_PROTOCOL_VERSION)}] ${JSON.stringify(inBody)}`,
        requestId(jsonRpcBody),
      );
  }
  if (method === undefined && name === undefined) return;
  const refuse = (why: string): TollgateError =>
    new McpHeaderMismatchError(
      `mcp headers disagree with the body (HeaderMismatch ${HEADER_MISMATCH}): ${why}`,
      requestId(jsonRpcBody),
    );
  const sent = [method === undefined ? '' : 'Mcp-Method', name === undefined ? '' : 'Mcp-Name']
    .filter(Boolean)
    .join(' and ');
  if (jsonRpcBody === undefined) throw refuse(`${sent} on a body that is not a JSON-RPC message`);
  if (Array.isArray(jsonRpcBody)) throw refuse(`${sent} on a JSON-RPC batch`);
  if (!isObject(jsonRpcBody) || typeof jsonRpcBody.method !== 'string') throw refuse(`${sent} on a JSON-RPC response`);
  const bodyMethod = jsonRpcBody.method;
  if (method !== undefined && method !== bodyMethod)
    throw refuse(`Mcp-Method ${JSON.stringify(method)}, body method ${JSON.stringify(bodyMethod)}`);
  if (name === undefined) return;
  const mirrored = mirroredName(bodyMethod, jsonRpcBody.params);
  if (mirrored === undefined)
    throw refuse(`Mcp-Name on a ${JSON.stringify(bodyMethod)} request, which has no name to mirror`);
  const decoded = decodeMcpName(name);
  if (decoded === undefined) throw refuse(`Mcp-Name ${JSON.stringify(name)} is not valid =?base64?…?= encoding`);
  if (decoded !== mirrored.value)
    throw refuse(
      `Mcp-Name ${JSON.stringify(decoded)}, body params.${mirrored.member} ${JSON.stringify(mirrored.value)}`,
    );
}
