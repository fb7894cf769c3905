/**
 * MCP awareness: when a request body is a JSON-RPC 2.0 message (MCP's wire format),
 * the policy sees its method and, for tools/call, the tool name and arguments as
 * input.mcp. A batch exposes every message, so one denied call cannot hide in it.
 */

/** One JSON-RPC message as the policy sees it. */
export interface McpMessage {
  id?: string | number | null;
  method: string;
  tool?: { name: string; arguments: unknown };
}

/** input.mcp: a single message, or a batch of them. */
export type McpInput = McpMessage | { method: 'batch'; batch: McpMessage[] };

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

/** Extracts input.mcp from a parsed JSON body, or undefined when it is not JSON-RPC. */
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
