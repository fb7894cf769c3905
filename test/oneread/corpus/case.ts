/**
 * The adversarial corpus's case shape and the builders its families share. A case is a
 * raw request (bytes as latin1 text, so malformed framing is possible), optionally the
 * bytes sent inside a CONNECT tunnel, and what must happen:
 *   refused  nothing reaches any tool (a 4xx, a closed connection, or a policy deny);
 *   decided  whatever reaches a tool was read by the policy exactly as the tool read it,
 *            and nothing a rule denies runs (a deny or a refusal is fine too);
 *   pass     a control: a legitimate request that reaches its tool, read identically.
 */
import { ROUTED_TOOLS, TOOL_HOSTS } from '../harness.ts';

/** A routable tool family. */
export type Routed = (typeof ROUTED_TOOLS)[number];

/** One corpus case. */
export interface CorpusCase {
  /** Unique, stable, readable id: family/variant/tool. */
  readonly id: string;
  readonly family: string;
  /** Bytes written to the proxy (latin1). */
  readonly bytes: string;
  /** Bytes written inside the tunnel once a CONNECT in `bytes` is answered 200. */
  readonly tunnel?: string;
  readonly expect: 'refused' | 'decided' | 'pass';
  /** Responses to wait for (default 1). */
  readonly responses?: number;
  /** Client deadline (default 1500 ms). */
  readonly timeoutMs?: number;
  /** Wait this long after the CONNECT is answered before writing `tunnel`. */
  readonly tunnelDelayMs?: number;
}

/** The MCP tools/call body for a tool name and arguments. */
export function mcpCall(name: string, args: unknown = {}, id: number | string = 1): string {
  return JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });
}

/** Headers MCP Streamable HTTP clients send (the SDK servers refuse a POST without this Accept). */
export const MCP_ACCEPT: Array<[string, string]> = [['accept', 'application/json, text/event-stream']];

/** Options of a raw request. */
export interface RawRequest {
  method?: string;
  /** Request target; default absolute-form http://host/path. */
  target?: string;
  /** Host header value; null: none. */
  host?: string | null;
  path?: string;
  headers?: Array<[string, string]>;
  /** Body bytes as latin1 text (use utf8() for text). */
  body?: string;
  /** Add Content-Length for the body (default true when there is a body and no transfer-encoding header). */
  length?: boolean;
  version?: string;
}

/** UTF-8 bytes of a string, as latin1 text (what the corpus sends). */
export function utf8(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1');
}

/** Builds the raw bytes of one HTTP/1.x request. */
export function raw(hostName: string, options: RawRequest = {}): string {
  const path = options.path ?? '/';
  const target = options.target ?? `http://${hostName}${path}`;
  const lines = [
    `${options.method ?? (options.body === undefined ? 'GET' : 'POST')} ${target} ${options.version ?? 'HTTP/1.1'}`,
  ];
  const host = options.host === undefined ? hostName : options.host;
  if (host !== null) lines.push(`Host: ${host}`);
  const headers = options.headers ?? [];
  for (const [k, v] of headers) lines.push(`${k}: ${v}`);
  const hasTe = headers.some(([k]) => k.toLowerCase() === 'transfer-encoding');
  if (options.body !== undefined && (options.length ?? !hasTe)) lines.push(`Content-Length: ${options.body.length}`);
  return `${lines.join('\r\n')}\r\n\r\n${options.body ?? ''}`;
}

/** Host name of a family. */
export function hostOf(tool: Routed): string {
  return TOOL_HOSTS[tool];
}

/** An MCP POST to a family's /mcp with a content-type (null: none) and a body. */
export function mcpPost(
  tool: Routed,
  body: string,
  contentType: string | null = 'application/json',
  extra: Array<[string, string]> = [],
): string {
  const headers: Array<[string, string]> = [
    ...MCP_ACCEPT,
    ...(contentType === null ? [] : [['Content-Type', contentType] as [string, string]]),
    ...extra,
  ];
  return raw(hostOf(tool), { method: 'POST', path: '/mcp', headers, body });
}

/** A REST POST to a family's /refund with a content-type (null: none) and a body. */
export function restPost(
  tool: Routed,
  body: string,
  contentType: string | null = 'application/json',
  extra: Array<[string, string]> = [],
): string {
  const headers: Array<[string, string]> = [
    ...(contentType === null ? [] : [['Content-Type', contentType] as [string, string]]),
    ...extra,
  ];
  return raw(hostOf(tool), { method: 'POST', path: '/refund', headers, body });
}

/**
 * One family per HTTP stack (Node's http, Go's net/http, uvicorn): where a case tests
 * message framing or target parsing, the two Go servers would only repeat each other.
 */
export const HTTP_STACKS: readonly Routed[] = ['ts-mcp', 'go-json', 'py'];

/** One case per routable family. */
export function perTool(
  make: (tool: Routed) => Omit<CorpusCase, 'id'> & { id: string },
  tools: readonly Routed[] = ROUTED_TOOLS,
): CorpusCase[] {
  return tools.map((tool) => {
    const c = make(tool);
    return { ...c, id: `${c.id}/${tool}` };
  });
}
