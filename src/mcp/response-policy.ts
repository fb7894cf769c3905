/**
 * The response decision's pure core: the input the policy sees for one JSON-RPC message
 * a server answered, the result contract, and how a result rewrites the message.
 *
 * Result of the response entrypoint (e.g. tollgate/authz/response):
 *   {"allowed": true|false, "reasons": [...],
 *    "remove_tools": ["name", ...],                       tools/list: tools the agent is not shown
 *    "redact": [{"path": "/result/…", "replacement": "…"}, JSON pointer into the message
 *               {"pattern": "regex", "replacement": "…"}]} every string under result / error
 * allowed=false blocks the message: a JSON-RPC error with the same id and the reasons
 * replaces it. A boolean result is allowed/blocked alone.
 */
import { TollgateError } from '../errors.ts';
import type { PolicyInput } from '../input/build.ts';
import type { McpInput, McpMessage } from '../input/mcp.ts';
import { JSONRPC_DENIED } from '../enforce/reply.ts';
import type { Decision } from '../pdp/types.ts';
import type { ToolPinStatus } from './pins.ts';

/** What the policy sees of the answer, as input.response. */
export interface ResponseInput {
  /** HTTP status of the answer. */
  readonly status: number;
  /** Response headers (lowercase names; repeated ones joined with ", "). */
  readonly headers: Record<string, string>;
  /** "json" (application/json body) or "sse" (one text/event-stream event). */
  readonly transport: 'json' | 'sse';
  /** The method of the request this message answers ("" when the id matches none). */
  readonly method: string;
  /** The request message it answers (id, method, tool), when its id matches one. */
  readonly request?: McpMessage;
  /** The JSON-RPC message as the server sent it (result or error). */
  readonly message: unknown;
  /** tools/list: each tool's name and pin status, in the answer's order. */
  readonly tools?: ReadonlyArray<{ readonly name: string } & Partial<ToolPinStatus>>;
}

/** A redaction the policy asked for. */
export type Redaction =
  { readonly path: string; readonly replacement: string } | { readonly pattern: string; readonly replacement: string };

/** The response entrypoint's result, checked. */
export interface ResponseResult {
  readonly allowed: boolean;
  readonly reasons: readonly string[];
  readonly removeTools: readonly string[];
  readonly redact: readonly Redaction[];
}

/** What a decision did to a message (the metric's and the span's outcome). */
export type ResponseAction = 'allow' | 'filter' | 'redact' | 'block';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const invalid = (why: string): TollgateError => new TollgateError('TG_ERR_POLICY_RESULT', `response decision: ${why}`);

/** Default replacement of a redaction that names none. */
export const REDACTED = '[REDACTED]';

/** Checks the response entrypoint's value (decisionFromResult already checked allowed and reasons). */
export function responseResult(decision: Decision): ResponseResult {
  const result = decision.result;
  const base = { allowed: decision.allowed, reasons: decision.reasons };
  if (!isObject(result)) return { ...base, removeTools: [], redact: [] };
  const removeTools = result.remove_tools ?? [];
  if (!Array.isArray(removeTools) || !removeTools.every((t) => typeof t === 'string'))
    throw invalid('expected remove_tools to be an array of strings');
  const redact = result.redact ?? [];
  if (!Array.isArray(redact)) throw invalid('expected redact to be an array of objects');
  const redactions = redact.map((r, i): Redaction => {
    if (!isObject(r)) throw invalid(`redact[${i}] is not an object`);
    const replacement = r.replacement ?? REDACTED;
    if (typeof replacement !== 'string') throw invalid(`redact[${i}].replacement is not a string`);
    if (typeof r.path === 'string' && r.pattern === undefined) {
      if (r.path !== '' && !r.path.startsWith('/')) throw invalid(`redact[${i}].path is not a JSON pointer`);
      return { path: r.path, replacement };
    }
    if (typeof r.pattern === 'string' && r.path === undefined) {
      compile(r.pattern, i);
      return { pattern: r.pattern, replacement };
    }
    throw invalid(`redact[${i}] needs exactly one of path (a JSON pointer) or pattern (a regular expression)`);
  });
  return { ...base, removeTools: removeTools as string[], redact: redactions };
}

// Policies name a handful of patterns; compiled once each (bounded: cleared when full).
const compiled = new Map<string, RegExp>();

function compile(pattern: string, index = 0): RegExp {
  let re = compiled.get(pattern);
  if (re === undefined) {
    try {
      re = new RegExp(pattern, 'gu');
    } catch (err) {
      throw invalid(`redact[${index}].pattern does not compile: ${(err as Error).message}`);
    }
    if (compiled.size >= 256) compiled.clear();
    compiled.set(pattern, re);
  }
  re.lastIndex = 0;
  return re;
}

/** Every id → request message of the request body, so an answer is matched to what it answers. */
export function requestsById(mcp: McpInput | undefined): Map<string | number, McpMessage> {
  const out = new Map<string | number, McpMessage>();
  if (mcp === undefined) return out;
  for (const m of 'batch' in mcp ? mcp.batch : [mcp]) if (m.id !== undefined && m.id !== null) out.set(m.id, m);
  return out;
}

/** The request's input plus input.response (a shallow copy: the request input is not changed). */
export function responseInput(input: PolicyInput, response: ResponseInput): PolicyInput & { response: ResponseInput } {
  return { ...input, response };
}

/** RFC 6901 pointer tokens. */
function pointerTokens(pointer: string): string[] {
  return pointer
    .split('/')
    .slice(1)
    .map((t) => t.replaceAll('~1', '/').replaceAll('~0', '~'));
}

function redactPath(message: Record<string, unknown>, pointer: string, replacement: string): boolean {
  const tokens = pointerTokens(pointer);
  const last = tokens.pop();
  // The message's own members (jsonrpc, id) are not the tool's answer: only result and error.
  if (last === undefined || (tokens[0] !== 'result' && tokens[0] !== 'error')) return false;
  let node: unknown = message;
  for (const token of tokens) {
    if (Array.isArray(node)) node = node[Number(token)];
    else if (isObject(node)) node = node[token];
    else return false;
  }
  if (Array.isArray(node) && /^(0|[1-9]\d*)$/.test(last) && Number(last) < node.length)
    node[Number(last)] = replacement;
  else if (isObject(node) && Object.hasOwn(node, last)) node[last] = replacement;
  else return false;
  return true;
}

function redactStrings(node: unknown, re: RegExp, replacement: string): { value: unknown; hits: number } {
  if (typeof node === 'string') {
    re.lastIndex = 0;
    if (!re.test(node)) return { value: node, hits: 0 };
    re.lastIndex = 0;
    return { value: node.replace(re, () => replacement), hits: 1 };
  }
  let hits = 0;
  if (Array.isArray(node)) {
    for (let i = 0; i < node.length; i++) {
      const r = redactStrings(node[i], re, replacement);
      node[i] = r.value;
      hits += r.hits;
    }
  } else if (isObject(node)) {
    for (const key of Object.keys(node)) {
      const r = redactStrings(node[key], re, replacement);
      node[key] = r.value;
      hits += r.hits;
    }
  }
  return { value: node, hits };
}

/** The JSON-RPC error that replaces a blocked message (same id, the reasons, the decision id). */
export function blockedMessage(
  id: unknown,
  reasons: readonly string[],
  decisionId: string,
  revision: string,
  prefix = 'blocked by policy',
): Record<string, unknown> {
  const why = reasons.length > 0 ? reasons : ['the response was blocked'];
  return {
    jsonrpc: '2.0',
    id: id ?? null,
    error: {
      code: JSONRPC_DENIED,
      message: `${prefix}: ${why.join('; ')}`,
      data: { decision_id: decisionId, reasons: why, ...(revision === '' ? {} : { revision }) },
    },
  };
}

/**
 * Applies a result to a parsed message (mutated in place, or replaced when blocked).
 * Returns the message to relay and what was done.
 */
export function applyResponseResult(
  message: Record<string, unknown>,
  result: ResponseResult,
  decisionId: string,
  revision: string,
): { message: Record<string, unknown>; action: ResponseAction } {
  if (!result.allowed)
    return { message: blockedMessage(message.id, result.reasons, decisionId, revision), action: 'block' };
  let action: ResponseAction = 'allow';
  if (result.removeTools.length > 0 && isObject(message.result) && Array.isArray(message.result.tools)) {
    const remove = new Set(result.removeTools);
    const tools = message.result.tools as unknown[];
    const kept = tools.filter((t) => !(isObject(t) && typeof t.name === 'string' && remove.has(t.name)));
    if (kept.length !== tools.length) {
      message.result.tools = kept;
      action = 'filter';
    }
  }
  let redacted = false;
  for (const r of result.redact) {
    if ('path' in r) redacted = redactPath(message, r.path, r.replacement) || redacted;
    else {
      for (const member of ['result', 'error'] as const) {
        if (message[member] === undefined) continue;
        const out = redactStrings(message[member], compile(r.pattern), r.replacement);
        message[member] = out.value;
        if (out.hits > 0) redacted = true;
      }
    }
  }
  if (redacted) action = 'redact';
  return { message, action };
}
