/**
 * Span names and attribute keys, defined once. Stable HTTP/URL/server keys come from
 * `@opentelemetry/semantic-conventions`; incubating ones (MCP, GenAI) are copied here,
 * as that package advises, so a semconv release cannot rename them under us. Tollgate's
 * own attributes live under one namespace, `tollgate.decision.*`, so a backend query
 * such as Jaeger's `tags={"tollgate.decision.outcome":"deny"}` finds every denial.
 */
export {
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_HEADER,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_REQUEST_METHOD_ORIGINAL,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_SERVICE_NAME,
  ATTR_SERVICE_VERSION,
  ATTR_URL_FULL,
} from '@opentelemetry/semantic-conventions';

/** The tracer (instrumentation scope) name. */
export const TRACER_NAME = 'tollgate';

/** The ext_authz server's decision span name. A call's CLIENT span is named by HTTP semconv: the method alone. */
export const SPAN_DECISION = 'tollgate.decision';
/** A response decision (on an MCP server's answer): a child span of the call's CLIENT span. */
export const SPAN_RESPONSE_DECISION = 'tollgate.response_decision';
/** On a response decision: the id of the request decision it follows. */
export const ATTR_DECISION_REQUEST_DECISION_ID = 'tollgate.decision.request_decision_id';
/** On a response decision: what it did to the message (allow, filter, redact, block). */
export const ATTR_DECISION_RESPONSE_ACTION = 'tollgate.decision.response.action';

/** tollgate.decision.* — the decision's attributes, on a call's span or the ext_authz span (and the tail sampler's key). */
export const ATTR_DECISION_OUTCOME = 'tollgate.decision.outcome';
export const ATTR_DECISION_ID = 'tollgate.decision.id';
export const ATTR_DECISION_POLICY_PATH = 'tollgate.decision.policy.path';
export const ATTR_DECISION_BUNDLE_REVISION = 'tollgate.decision.bundle.revision';
export const ATTR_DECISION_REASONS = 'tollgate.decision.reasons';
export const ATTR_DECISION_AGENT_ID = 'tollgate.decision.agent.id';
export const ATTR_DECISION_AGENT_ROLE = 'tollgate.decision.agent.role';
export const ATTR_DECISION_MCP_METHOD = 'tollgate.decision.mcp.method';
export const ATTR_DECISION_MCP_TOOL_NAME = 'tollgate.decision.mcp.tool.name';
export const ATTR_DECISION_PDP_KIND = 'tollgate.decision.pdp.kind';
export const ATTR_DECISION_EVAL_NS = 'tollgate.decision.eval_ns';
export const ATTR_DECISION_HTTP_STATUS = 'tollgate.decision.http_status';
export const ATTR_DECISION_DESTINATION = 'tollgate.decision.destination';
/** Set when no decision could be made: which failure mode was applied (allow|deny). */
export const ATTR_DECISION_FAILURE_MODE = 'tollgate.decision.failure_mode';
/** PDP chains: the stage whose decision the chain took, the stage names in order, and each stage's result. */
export const ATTR_DECISION_DECIDED_BY = 'tollgate.decision.decided_by';
export const ATTR_DECISION_STAGES = 'tollgate.decision.stages';
/** tollgate.decision.stage.<name>.{outcome,reasons,revision,duration_ms,error.type,failure_mode}. */
export const ATTR_DECISION_STAGE_PREFIX = 'tollgate.decision.stage.';
/** The masked policy input as JSON, only when tracing.recordInput is on. */
export const ATTR_DECISION_INPUT = 'tollgate.decision.input';

/** Values of tollgate.decision.outcome. */
export const OUTCOME_ALLOW = 'allow';
export const OUTCOME_DENY = 'deny';

/** Resource attribute naming the agent this sidecar serves. */
export const ATTR_RESOURCE_AGENT_ID = 'tollgate.agent.id';

// Incubating (semconv "gen-ai" and "mcp" registries), copied as the package advises.
/** gen_ai.tool.name: the MCP tool being called. */
export const ATTR_GEN_AI_TOOL_NAME = 'gen_ai.tool.name';
/** mcp.method.name: the JSON-RPC method of an MCP request. */
export const ATTR_MCP_METHOD_NAME = 'mcp.method.name';
/** gen_ai.prompt.name: the MCP prompt a prompts/get asks for. */
export const ATTR_GEN_AI_PROMPT_NAME = 'gen_ai.prompt.name';
/** gen_ai.operation.name: "execute_tool" for a tools/call. */
export const ATTR_GEN_AI_OPERATION_NAME = 'gen_ai.operation.name';
/** The gen_ai.operation.name value of an MCP tools/call. */
export const GEN_AI_OPERATION_EXECUTE_TOOL = 'execute_tool';
/** mcp.resource.uri: the resource a resources/read (or subscribe) names. */
export const ATTR_MCP_RESOURCE_URI = 'mcp.resource.uri';
/** mcp.session.id: the Mcp-Session-Id the request carries. */
export const ATTR_MCP_SESSION_ID = 'mcp.session.id';
/** mcp.protocol.version: the MCP revision the request speaks. */
export const ATTR_MCP_PROTOCOL_VERSION = 'mcp.protocol.version';
/** jsonrpc.request.id: the JSON-RPC id of a request, as a string. */
export const ATTR_JSONRPC_REQUEST_ID = 'jsonrpc.request.id';
/** gen_ai.agent.id: the agent making the call. */
export const ATTR_GEN_AI_AGENT_ID = 'gen_ai.agent.id';
