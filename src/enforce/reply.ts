/**
 * Local replies: the pure mapping from a Decision (or a failure) to the HTTP
 * answer the agent gets. A denied MCP JSON-RPC request is answered the MCP way —
 * HTTP 200 with a JSON-RPC error per request carrying the reasons — so the
 * client's session survives; everything else gets a JSON body with the decision id.
 */
import type { Decision } from '../pdp/types.ts';
import type { McpInput } from '../input/mcp.ts';
import { JSONRPC_HEADER_MISMATCH, McpHeaderMismatchError, mcpRequestIds } from '../input/mcp.ts';
import type { TollgateError } from '../errors.ts';

/** An HTTP reply produced by Tollgate itself. */
export interface LocalReply {
  readonly status: number;
  readonly headers: Array<readonly [string, string]>;
  readonly body: string;
}

/** Header carrying the decision id on every reply Tollgate decides. */
export const DECISION_ID_HEADER = 'x-tollgate-decision-id';

/** JSON-RPC error code for a call denied by policy (server-defined range, JSON-RPC 2.0 §5.1). */
export const JSONRPC_DENIED = -32001;

/** The reply to a denied request. */
export function denyReply(decision: Decision, defaultStatus: number, mcp: McpInput | undefined): LocalReply {
  const headers: Array<readonly [string, string]> = [[DECISION_ID_HEADER, decision.decisionId]];
  for (const pair of decision.headers) headers.push(pair);
  // A policy that sets its own body or status speaks for itself (opa-envoy-plugin semantics).
  if (decision.body !== undefined) {
    return { status: decision.httpStatus ?? defaultStatus, headers, body: decision.body };
  }
  const reasons = decision.reasons.length > 0 ? decision.reasons : ['denied by policy'];
  const ids = mcp === undefined ? [] : mcpRequestIds(mcp);
  if (ids.length > 0 && decision.httpStatus === undefined) {
    const errors = ids.map((id) => ({
      jsonrpc: '2.0',
      id,
      error: {
        code: JSONRPC_DENIED,
        message: `denied by policy: ${reasons.join('; ')}`,
        data: { decision_id: decision.decisionId, reasons, revision: decision.revision, ...decision.replyData },
      },
    }));
    headers.push(['content-type', 'application/json']);
    return { status: 200, headers, body: JSON.stringify('batch' in mcp! ? errors : errors[0]) };
  }
  headers.push(['content-type', 'application/json']);
  return {
    status: decision.httpStatus ?? defaultStatus,
    headers,
    body: JSON.stringify({
      allowed: false,
      decision_id: decision.decisionId,
      reasons,
      revision: decision.revision,
      ...decision.replyData,
    }),
  };
}

/** JSON-RPC error responses (code -32001), one per id, as one object or a batch array. */
export function jsonRpcErrorBody(
  ids: ReadonlyArray<string | number | null>,
  batch: boolean,
  message: string,
  data: Record<string, unknown>,
): string {
  const errors = ids.map((id) => ({ jsonrpc: '2.0', id, error: { code: JSONRPC_DENIED, message, data } }));
  return JSON.stringify(batch ? errors : errors[0]);
}

/** The reply when no decision could be made and the request fails closed. */
export function failureReply(error: TollgateError, decisionId: string, status: number): LocalReply {
  return {
    status,
    headers: [
      [DECISION_ID_HEADER, decisionId],
      ['content-type', 'application/json'],
    ],
    body: JSON.stringify({
      allowed: false,
      decision_id: decisionId,
      reasons: [`no policy decision (${error.code}): failing closed`],
      error: { code: error.code, message: error.message },
    }),
  };
}

/**
 * The JSON-RPC error response body for MCP headers that disagree with the body (MCP
 * 2026-07-28 Streamable HTTP: HTTP 400, HeaderMismatch -32020, the request's id or null).
 */
export function headerMismatchBody(error: McpHeaderMismatchError, decisionId?: string): string {
  return JSON.stringify({
    jsonrpc: '2.0',
    id: error.jsonRpcId,
    error: {
      code: JSONRPC_HEADER_MISMATCH,
      message: error.message,
      data: { code: error.code, ...(decisionId === undefined ? {} : { decision_id: decisionId }) },
    },
  });
}

/** The reply to a request refused before any decision (bad request, upstream failure). */
export function errorReply(error: TollgateError, decisionId?: string): LocalReply {
  const headers: Array<readonly [string, string]> = [['content-type', 'application/json']];
  if (decisionId !== undefined) headers.push([DECISION_ID_HEADER, decisionId]);
  if (error instanceof McpHeaderMismatchError)
    return { status: 400, headers, body: headerMismatchBody(error, decisionId) };
  const body: Record<string, unknown> = { error: { code: error.code, message: error.message } };
  if (decisionId !== undefined) body.decision_id = decisionId;
  return { status: error.status, headers, body: JSON.stringify(body) };
}
