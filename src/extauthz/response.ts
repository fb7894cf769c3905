/**
 * Decision -> CheckResponse, exactly as opa-envoy-plugin maps its result
 * (internal/internal.go check(), envoyauth/response.go): gRPC status OK or
 * PERMISSION_DENIED; for an object result, OkHttpResponse (headers, headers_to_remove,
 * response_headers_to_add, query parameters) or DeniedHttpResponse (status, body,
 * headers) and dynamic_metadata; a boolean result carries no HTTP response. Dry run
 * turns a deny into an empty OK. dynamic_metadata.decision_id is always set.
 */
import { TollgateError } from '../errors.ts';
import type { Decision, HeaderPair } from '../pdp/types.ts';
import { jsonToStruct, type Message } from '../proto/ext-authz.ts';
import { McpHeaderMismatchError } from '../input/mcp.ts';
import { headerMismatchBody } from '../enforce/reply.ts';

/** gRPC status codes used on the wire (google.rpc.Code). */
export const GRPC = {
  OK: 0,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

/** Envoy's envoy.type.v3.StatusCode values: a deny status outside it is a policy error, as in opa-envoy-plugin. */
const ENVOY_STATUS_CODES = new Set([
  100, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 307, 308, 400, 401, 402, 403,
  404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 421, 422, 423, 424, 426, 428, 429, 431, 500,
  501, 502, 503, 504, 505, 506, 507, 508, 510, 511,
]);

function headerOptions(pairs: readonly HeaderPair[]): Message[] {
  return pairs.map(([key, value]) => ({ header: { key, value } }));
}

/** The CheckResponse (protobufjs object form) for a decision. Throws TG_ERR_POLICY_RESULT where opa-envoy-plugin errors. */
export function checkResponseFromDecision(decision: Decision, dryRun: boolean): Message {
  // Zero values are left out, as a Go encoder leaves them out: the bytes match opa-envoy-plugin's.
  const response: Message = { status: decision.allowed ? {} : { code: GRPC.PERMISSION_DENIED } };
  let metadata: Record<string, unknown> = {};
  if (typeof decision.result === 'object' && decision.result !== null) {
    if (decision.dynamicMetadata !== undefined) metadata = { ...decision.dynamicMetadata };
    if (decision.allowed) {
      response.okResponse = {
        headers: headerOptions(decision.headers),
        headersToRemove: [...decision.requestHeadersToRemove],
        responseHeadersToAdd: headerOptions(decision.responseHeadersToAdd),
        queryParametersToRemove: [...decision.queryParametersToRemove],
        queryParametersToSet: decision.queryParametersToSet.map(([key, value]) => ({ key, value })),
      };
    } else {
      const status = decision.httpStatus ?? 403;
      if (!ENVOY_STATUS_CODES.has(status))
        throw new TollgateError('TG_ERR_POLICY_RESULT', `invalid HTTP status code ${status}`);
      response.deniedResponse = { status: { code: status }, headers: headerOptions(decision.headers) };
      if (decision.body !== undefined && decision.body !== '')
        (response.deniedResponse as Message).body = decision.body;
    }
  }
  // opa-envoy-plugin's dry-run: record the real decision, answer an empty OK.
  if (dryRun && !decision.allowed) {
    response.status = {};
    delete response.deniedResponse;
    response.okResponse = {};
  }
  metadata.decision_id = decision.decisionId;
  response.dynamicMetadata = jsonToStruct(metadata);
  return response;
}

/** The answer to a CheckRequest whose path, query or body does not parse (opa-envoy-plugin's request_parse_error). */
export function requestParseErrorResponse(error: TollgateError): Message {
  const message = `request_parse_error: ${error.message}`;
  // MCP clients read a JSON-RPC error, as the spec's HeaderMismatch asks of an intermediary.
  if (error instanceof McpHeaderMismatchError)
    return {
      status: { code: GRPC.PERMISSION_DENIED, message },
      deniedResponse: {
        status: { code: 400 },
        body: headerMismatchBody(error),
        headers: headerOptions([['content-type', 'application/json']]),
      },
    };
  return {
    status: { code: GRPC.PERMISSION_DENIED, message },
    deniedResponse: { status: { code: 400 }, body: message },
  };
}

/** The answer when the agent token in the CheckRequest does not verify: 401, UNAUTHENTICATED. */
export function unauthenticatedResponse(error: TollgateError, decisionId: string): Message {
  const body = JSON.stringify({ error: { code: error.code, message: error.message }, decision_id: decisionId });
  return {
    status: { code: GRPC.UNAUTHENTICATED, message: error.message },
    deniedResponse: { status: { code: 401 }, body, headers: headerOptions([['content-type', 'application/json']]) },
    dynamicMetadata: jsonToStruct({ decision_id: decisionId }),
  };
}
