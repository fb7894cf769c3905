/**
 * What both doors (HTTP PEP, ext_authz server) record about a decision, in one
 * place: the decision on the call's span, the decision metric and the decision-log record
 * are three mappings of the same facts. Built from the tracing, metrics and decision
 * log the composition root creates; a no-op observer serves tests and tools.
 */
import { INVALID_TRACEID, propagation, trace } from '@opentelemetry/api';
import type { Decision } from '../pdp/types.ts';
import type { PolicyInput } from '../input/build.ts';
import type { TollgateError } from '../errors.ts';
import type { DecisionLog } from '../audit/log.ts';
import { createTracing, type DecisionMeta, type DecisionTrace, type McpSpanFacts, type Tracing } from './spans.ts';
import { createMetrics, type Metrics, type ResponseOutcomeLabel } from './metrics.ts';

/** The telemetry sinks a door records into. */
export interface Observer {
  readonly tracing: Tracing;
  readonly metrics: Metrics;
  readonly decisionLog?: DecisionLog;
}

/** Facts about one decision that do not come from the Decision itself. */
export interface DecisionFacts {
  readonly decisionId: string;
  readonly policyPath: string;
  readonly input: PolicyInput;
  /** host[:port] the call is for. */
  readonly destination: string;
  /** Seconds from asking the PDP to having an answer. */
  readonly seconds: number;
  readonly span: DecisionTrace;
  /** The client address (OPA's requested_by); undefined when unknown. */
  readonly requestedBy?: string | undefined;
}

/** An observer that records nothing (tools, tests). */
export function createNoopObserver(): Observer {
  return {
    tracing: createTracing({ tracer: trace.getTracer('tollgate'), propagator: propagation, pdpKind: 'wasm' }),
    metrics: createMetrics({ processMetrics: false }),
  };
}

/** The MCP tool name of an input ("" when none; the first denied-looking call of a batch is not guessed). */
export function mcpTool(input: PolicyInput): string {
  const mcp = input.mcp;
  if (mcp === undefined) return '';
  if ('batch' in mcp) return mcp.batch.find((m) => m.tool !== undefined)?.tool?.name ?? '';
  return mcp.tool?.name ?? '';
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** W3C trace context a request carries in params._meta (OTel MCP semconv), or undefined. */
function metaTraceContext(params: Record<string, unknown>): Record<string, string> | undefined {
  const meta = params._meta as Record<string, unknown> | null | undefined;
  if (typeof meta !== 'object' || meta === null || typeof meta.traceparent !== 'string') return undefined;
  const carrier: Record<string, string> = { traceparent: meta.traceparent };
  if (typeof meta.tracestate === 'string') carrier.tracestate = meta.tracestate;
  return carrier;
}

/** The OTel MCP span facts of an input: from input.mcp, and for one message its params (prompt, uri, _meta). */
export function mcpSpanFacts(input: PolicyInput): McpSpanFacts | undefined {
  const mcp = input.mcp;
  if (mcp === undefined) return undefined;
  const facts: { -readonly [K in keyof McpSpanFacts]: McpSpanFacts[K] } = { method: mcp.method };
  if (mcp.session_id !== undefined) facts.sessionId = mcp.session_id;
  if (mcp.protocol_version !== undefined) facts.protocolVersion = mcp.protocol_version;
  if ('batch' in mcp) return facts;
  if (mcp.tool !== undefined) facts.tool = mcp.tool.name;
  if (mcp.id !== undefined && mcp.id !== null) facts.requestId = mcp.id;
  const body = input.parsed_body as { params?: Record<string, unknown> } | null;
  const params = typeof body === 'object' && body !== null && !Array.isArray(body) ? body.params : undefined;
  if (typeof params === 'object' && params !== null) {
    if (mcp.method === 'prompts/get') {
      const name = str(params.name);
      if (name !== undefined) facts.prompt = name;
    }
    const uri = mcp.method.startsWith('resources/') ? str(params.uri) : undefined;
    if (uri !== undefined) facts.resourceUri = uri;
    const traceContext = metaTraceContext(params);
    if (traceContext !== undefined) facts.traceContext = traceContext;
  }
  return facts;
}

/** What the span is told of a decision before the PDP answers: the same for every door. */
export function decisionMeta(
  decisionId: string,
  policyPath: string,
  input: PolicyInput,
  destination: string,
): DecisionMeta {
  // One object shape for every decision (no conditional spread).
  return { decisionId, policyPath, agent: input.agent, destination, input, mcp: mcpSpanFacts(input) };
}

/** Records a decision the PDP made: span, metric, decision log. */
export function recordDecision(observer: Observer, facts: DecisionFacts, decision: Decision): void {
  facts.span.end(decision);
  observer.metrics.recordDecision({
    outcome: decision.allowed ? 'allow' : 'deny',
    agent: facts.input.agent.id,
    destination: facts.destination,
    tool: mcpTool(facts.input),
    seconds: facts.seconds,
    reasons: decision.reasons,
  });
  logDecision(observer, facts, decision);
}

/** What every decision-log record of a decision step carries: the decision, the input, the trace. */
function recordFacts(facts: DecisionFacts) {
  return {
    decisionId: facts.decisionId,
    path: facts.policyPath,
    input: facts.input,
    // Only a real trace (tracing off leaves the invalid all-zero ids): OPA's records omit them then.
    ...(facts.span.traceId === INVALID_TRACEID ? {} : { traceId: facts.span.traceId, spanId: facts.span.spanId }),
    ...(facts.requestedBy === undefined ? {} : { requestedBy: facts.requestedBy }),
  };
}

/** The decision-log record of a decision (request or response; a response decision carries no annotations). */
function logDecision(observer: Observer, facts: DecisionFacts, decision: Decision): void {
  observer.decisionLog?.write({
    ...recordFacts(facts),
    // The text the policy evaluated, when it is this input's (a PDP chain's or response's may not be).
    ...(decision.inputJson?.input === facts.input ? { inputJson: decision.inputJson.text } : {}),
    result: decision.result,
    revision: decision.revision,
    evalNanos: decision.evalNanos,
    ...(decision.annotations === undefined ? {} : { custom: decision.annotations.custom }),
  });
}

/** The decision-log record of no decision, with the failure mode applied. */
function logFailure(
  observer: Observer,
  facts: DecisionFacts,
  error: TollgateError,
  mode: 'allow' | 'deny',
  revision: string,
): void {
  observer.decisionLog?.write({
    ...recordFacts(facts),
    revision,
    error: { code: error.code, message: error.message, failureMode: mode },
  });
}

/** Records that no decision could be made, and the failure mode applied. */
export function recordFailure(
  observer: Observer,
  facts: DecisionFacts,
  error: TollgateError,
  mode: 'allow' | 'deny',
  revision: string,
): void {
  facts.span.fail(error.code, error.message, mode);
  observer.metrics.recordDecision({
    outcome: mode === 'allow' ? 'failure_mode_allowed' : 'error',
    agent: facts.input.agent.id,
    destination: facts.destination,
    tool: mcpTool(facts.input),
    seconds: facts.seconds,
    errorCode: error.code,
  });
  logFailure(observer, facts, error, mode, revision);
}

/** Facts about one response decision (a decision of its own, linked to the request's). */
export interface ResponseDecisionFacts extends DecisionFacts {
  /** The request decision this one follows. */
  readonly requestDecisionId: string;
}

/** Records a response decision: its span (under the call's), the response metric, a decision-log record. */
export function recordResponseDecision(
  observer: Observer,
  facts: ResponseDecisionFacts,
  decision: Decision,
  action: ResponseOutcomeLabel,
): void {
  facts.span.end({ ...decision, action });
  observer.metrics.recordResponseDecision(action);
  logDecision(observer, facts, decision);
}

/** Records that no response decision could be made, and whether the message was relayed or blocked. */
export function recordResponseFailure(
  observer: Observer,
  facts: ResponseDecisionFacts,
  error: TollgateError,
  mode: 'allow' | 'deny',
  revision: string,
): void {
  facts.span.fail(error.code, error.message, mode);
  observer.metrics.recordResponseDecision(mode === 'allow' ? 'failure_mode_allowed' : 'error');
  logFailure(observer, facts, error, mode, revision);
}
