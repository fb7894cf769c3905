/**
 * The span of a call through Tollgate, through `@opentelemetry/api` only (the SDK is
 * set up once in setup.ts; without it every call here is a cheap no-op that still
 * passes the agent's trace context through):
 *
 *   agent span ─▶ GET (CLIENT, with tollgate.decision.*) ─▶ tool's SERVER span
 *
 * One CLIENT span per call the agent makes (HTTP request, CONNECT or upgrade), named by
 * HTTP client semconv (the method), from the moment Tollgate has the request until the
 * tool's response headers arrive or Tollgate answers itself. The decision is recorded
 * on it: the `tollgate.decision.*` attributes and, on a deny, status ERROR with the
 * reasons; no request leaves (as Envoy's egress span records a call its ext_authz
 * filter denied). The tool receives this span's traceparent.
 *
 * Why on the call's span, not a child span or a span event: backends index span
 * attributes for tag search (`tollgate.decision.outcome=deny`), event attributes often
 * not; a deny must set span status (events have none) so Jaeger's `error=true` search
 * finds the span that says why; evaluation takes tens of microseconds (an attribute,
 * `eval_ns`, says how many; a bar that short is invisible in a waterfall); and every
 * span is a fixed cost per call at load (bench/RESULTS.md, "tracing on vs off").
 *
 * The ext_authz server has no call of its own: its decision is a SERVER span named
 * `tollgate.decision`, a child of Envoy's context, with the same attributes.
 *
 * The SDK span is started once the decision is known, back-dated to when Tollgate had
 * the call, a deny among its start attributes: the sampler (setup.ts) sees it, so every
 * denial is kept while head sampling drops an allowed call before anything of it is
 * recorded. Start and end times both come from the monotonic clock (performance.now).
 *
 * Contexts are passed explicitly (no reliance on the active context), so a call's span
 * is parented correctly whatever the async plumbing in between.
 */
import {
  SpanKind,
  SpanStatusCode,
  ROOT_CONTEXT,
  isSpanContextValid,
  propagation,
  trace,
  type Context,
  type Span,
  type SpanOptions,
  type TextMapGetter,
  type TextMapPropagator,
  type TextMapSetter,
  type Tracer,
  type AttributeValue,
} from '@opentelemetry/api';
import {
  ATTR_DECISION_AGENT_ID,
  ATTR_DECISION_AGENT_ROLE,
  ATTR_DECISION_BUNDLE_REVISION,
  ATTR_DECISION_DECIDED_BY,
  ATTR_DECISION_DESTINATION,
  ATTR_DECISION_EVAL_NS,
  ATTR_DECISION_STAGE_PREFIX,
  ATTR_DECISION_STAGES,
  ATTR_DECISION_FAILURE_MODE,
  ATTR_DECISION_HTTP_STATUS,
  ATTR_DECISION_ID,
  ATTR_DECISION_INPUT,
  ATTR_DECISION_MCP_METHOD,
  ATTR_DECISION_MCP_TOOL_NAME,
  ATTR_DECISION_OUTCOME,
  ATTR_DECISION_PDP_KIND,
  ATTR_DECISION_POLICY_PATH,
  ATTR_DECISION_REASONS,
  ATTR_ERROR_TYPE,
  ATTR_GEN_AI_OPERATION_NAME,
  ATTR_GEN_AI_PROMPT_NAME,
  ATTR_GEN_AI_TOOL_NAME,
  ATTR_HTTP_REQUEST_HEADER,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_REQUEST_METHOD_ORIGINAL,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_JSONRPC_REQUEST_ID,
  ATTR_MCP_METHOD_NAME,
  ATTR_MCP_PROTOCOL_VERSION,
  ATTR_MCP_RESOURCE_URI,
  ATTR_MCP_SESSION_ID,
  GEN_AI_OPERATION_EXECUTE_TOOL,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_URL_FULL,
  OUTCOME_ALLOW,
  OUTCOME_DENY,
  SPAN_DECISION,
  SPAN_RESPONSE_DECISION,
  ATTR_DECISION_REQUEST_DECISION_ID,
  ATTR_DECISION_RESPONSE_ACTION,
} from './semconv.ts';

/** Request headers as Node gives them: lowercase names. */
export type HeaderCarrier = Readonly<Record<string, string | readonly string[] | undefined>>;

/** Headers never put on a span, whatever recordRequestHeaders says (credentials). */
export const DEFAULT_MASKED_HEADERS: readonly string[] = [
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'x-tollgate-agent-token',
  'x-api-key',
];

/**
 * Query parameters whose values url.full shows as REDACTED: the semconv list
 * (AWSAccessKeyId, Signature, sig, X-Goog-Signature) plus common credential names.
 */
export const DEFAULT_REDACTED_QUERY_PARAMS: readonly string[] = [
  'awsaccesskeyid',
  'signature',
  'sig',
  'x-goog-signature',
  'x-amz-signature',
  'x-amz-credential',
  'x-amz-security-token',
  'access_token',
  'id_token',
  'refresh_token',
  'token',
  'api_key',
  'apikey',
  'api-key',
  'key',
  'client_secret',
  'password',
  'passwd',
  'secret',
  'code',
];

/** Options of createTracing. */
export interface TracingOptions {
  /** From setup.ts (or `trace.getTracer` for the no-op API tracer). */
  readonly tracer: Tracer;
  /** Extracts the incoming context and injects the outgoing one (W3C, B3). */
  readonly propagator: TextMapPropagator;
  /** PDP kind reported as tollgate.decision.pdp.kind: "wasm" or "ext_authz". */
  readonly pdpKind: string;
  /** Request header names recorded as http.request.header.<name> (default none). */
  readonly recordRequestHeaders?: readonly string[];
  /** Header names never recorded (default DEFAULT_MASKED_HEADERS). */
  readonly maskedHeaders?: readonly string[];
  /** Query parameter names whose values url.full redacts (default DEFAULT_REDACTED_QUERY_PARAMS). */
  readonly redactQueryParams?: readonly string[];
  /** Attach the policy input, masked by maskInput, as tollgate.decision.input (default off). */
  readonly recordInput?: boolean;
  /** Masks the input before it is recorded (the decision log's mask list); required with recordInput. */
  readonly maskInput?: (input: unknown) => unknown;
}

/** What is known about a decision before the PDP answers. */
export interface DecisionMeta {
  readonly decisionId: string;
  readonly policyPath: string;
  readonly agent?: { readonly id: string; readonly role: string };
  readonly mcp?: McpSpanFacts | undefined;
  /** host:port the call is for. */
  readonly destination?: string;
  /** The policy input; recorded only when recordInput is on. */
  readonly input?: unknown;
}

/** What an MCP request tells its span (OTel MCP semantic conventions), beside Tollgate's own attributes. */
export interface McpSpanFacts {
  /** The JSON-RPC method ("batch" for a batch, which gets no MCP span name). */
  readonly method?: string;
  readonly tool?: string;
  /** prompts/get's params.name. */
  readonly prompt?: string;
  /** resources/read's (or subscribe's) params.uri: an attribute, never in the span name (cardinality). */
  readonly resourceUri?: string;
  /** The JSON-RPC id of a request (absent for a notification). */
  readonly requestId?: string | number;
  readonly sessionId?: string;
  readonly protocolVersion?: string;
  /** W3C trace context from params._meta, the parent when the HTTP headers carry none. */
  readonly traceContext?: Readonly<Record<string, string>>;
}

/** The part of a Decision (src/pdp/types.ts) a span shows. */
export interface DecisionOutcome {
  readonly allowed: boolean;
  readonly reasons: readonly string[];
  readonly revision: string;
  readonly evalNanos: number;
  readonly httpStatus?: number;
  /** Attributes a step after the PDP added (tollgate.budget.*, tollgate.rate.*, tollgate.approval.*). */
  readonly annotations?: { readonly attributes: Readonly<Record<string, AttributeValue>> };
  /** PDP chains: the stage that decided, and every stage's result (src/pdp/types.ts StageResult). */
  readonly decidedBy?: string;
  readonly stages?: readonly {
    readonly name: string;
    readonly outcome: string;
    readonly reasons: readonly string[];
    readonly revision: string;
    readonly ms: number;
    readonly error?: { readonly code: string; readonly failureMode: string };
  }[];
  /** A response decision: what it did to the message (allow, filter, redact, block). */
  readonly action?: string;
}

/** A decision being recorded (on a call's span, or as the ext_authz SERVER span). Exactly one of end/fail takes effect. */
export interface DecisionTrace {
  readonly traceId: string;
  readonly spanId: string;
  /** Records the PDP's decision; a deny sets status ERROR with the reasons. */
  end(decision: DecisionOutcome): void;
  /** Records that no decision could be made and which failure mode applied. */
  fail(errorCode: string, message: string, failureMode: 'allow' | 'deny'): void;
}

/** How a call ended, for its CLIENT span. */
export interface CallResult {
  /** The status the agent got: the tool's, or Tollgate's own reply. */
  readonly statusCode?: number;
  /** Set when no response came, or no decision could be made: the error code. */
  readonly errorType?: string;
}

/** The spans of one call an agent makes through Tollgate (HTTP request, CONNECT or upgrade). */
export interface CallTrace {
  /** The CLIENT span's ids (for logs). */
  readonly traceId: string;
  readonly spanId: string;
  /** Records the decision on this call's span. */
  startDecision(meta: DecisionMeta): DecisionTrace;
  /**
   * Before the request leaves: records the URL forwarded when the policy changed it
   * (secrets are stripped here) and writes the CLIENT span's context (traceparent,
   * tracestate, B3 if configured) into the outgoing headers.
   */
  forward(headers: Record<string, string>, url?: string): void;
  /** Ends the CLIENT span; later calls do nothing. */
  end(result: CallResult): void;
  /** A response decision on the call's answer: an INTERNAL child span of the CLIENT span, linked by the request's decision id. */
  startResponseDecision(meta: DecisionMeta, requestDecisionId: string): DecisionTrace;
}

/** What is known of a call when Tollgate has read it. */
export interface OutgoingCall {
  readonly method: string;
  readonly scheme: 'http' | 'https';
  /** host[:port] the call is for. */
  readonly authority: string;
  /** Path and query ("/v1/refunds?x=1"); absent for a CONNECT. */
  readonly target?: string;
  /** The agent's request headers (lowercase names): trace context and recorded headers. */
  readonly headers: HeaderCarrier;
}

/** The tracing API the PEP and the ext_authz server call. */
export interface Tracing {
  /** The CLIENT span of a call, continuing the agent's trace (traceparent/tracestate/B3 in its headers) or starting a root. */
  startCall(call: OutgoingCall): CallTrace;
  /** ext_authz: a SERVER decision span continuing the context in the gRPC metadata / checked request headers. */
  startExtAuthzDecision(carrier: HeaderCarrier, meta: DecisionMeta): DecisionTrace;
}

const getter: TextMapGetter<HeaderCarrier> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => {
    const value = carrier[key.toLowerCase()];
    return value === undefined ? undefined : typeof value === 'string' ? value : [...value];
  },
};

const setter: TextMapSetter<Record<string, string>> = {
  set: (carrier, key, value) => {
    carrier[key.toLowerCase()] = value;
  },
};

const KNOWN_METHODS = new Set([
  'CONNECT',
  'DELETE',
  'GET',
  'HEAD',
  'OPTIONS',
  'PATCH',
  'POST',
  'PUT',
  'TRACE',
  'QUERY',
]);

/**
 * url.full without secrets: userinfo becomes REDACTED:REDACTED (semconv url.full) and
 * the values of listed query parameters become REDACTED. The query is edited as text
 * so nothing else in it is re-encoded. Unparseable input yields undefined.
 */
export function sanitizeUrl(
  raw: string,
  redactQueryParams: readonly string[] = DEFAULT_REDACTED_QUERY_PARAMS,
): string | undefined {
  // Already in the form URL would serialise it to (no query, fragment, userinfo, default
  // port or character it would escape): nothing to strip or redact, no parse needed.
  if (servesAsIs(raw)) return raw;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return undefined;
  }
  if (url.username !== '' || url.password !== '') {
    url.username = 'REDACTED';
    url.password = 'REDACTED';
  }
  url.hash = '';
  const query = url.search;
  if (query.length > 1) {
    const redact = new Set(redactQueryParams.map((p) => p.toLowerCase()));
    const parts = query
      .slice(1)
      .split('&')
      .map((part) => {
        const eq = part.indexOf('=');
        const rawName = eq === -1 ? part : part.slice(0, eq);
        let name: string;
        try {
          name = decodeURIComponent(rawName.replace(/\+/g, ' ')).toLowerCase();
        } catch {
          name = rawName.toLowerCase();
        }
        return redact.has(name) && eq !== -1 ? `${rawName}=REDACTED` : part;
      });
    url.search = '';
    return `${url.toString()}?${parts.join('&')}`;
  }
  return url.toString();
}

const SIMPLE_URL = /^(https?):\/\/([a-z0-9.-]+)(?::([1-9][0-9]{0,4}))?(\/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*)$/;
const DNS_NAME = /^(?:[a-z0-9-]+\.)*[a-z][a-z0-9-]*\.?$/;
const IPV4 =
  /^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$/;

/**
 * Whether URL would serialise `raw` unchanged and sanitizeUrl has nothing to strip:
 * http(s), a lowercase DNS name (last label not numeric, so never re-read as IPv4) or
 * a canonical dotted quad, a non-default port without leading zeros, a path of
 * characters URL keeps and no dot segments, and no query, fragment or userinfo.
 */
function servesAsIs(raw: string): boolean {
  const m = SIMPLE_URL.exec(raw);
  if (m === null) return false;
  const [, scheme, host, port, path] = m;
  // Dot segments ("/./", "/../", also percent-encoded) are removed by URL.
  if (path!.includes('/.') || path!.includes('%2e') || path!.includes('%2E')) return false;
  if (
    port !== undefined &&
    (Number(port) > 65535 || (scheme === 'http' && port === '80') || (scheme === 'https' && port === '443'))
  )
    return false;
  return DNS_NAME.test(host!) || IPV4.test(host!);
}

/** server.address and server.port of an authority ("host", "host:port", "[v6]:port"). */
export function splitAuthority(authority: string, scheme: string): { host: string; port: number } {
  const defaultPort = scheme === 'https' ? 443 : 80;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    const host = authority.slice(1, close === -1 ? undefined : close);
    const port = close !== -1 && authority[close + 1] === ':' ? Number(authority.slice(close + 2)) : defaultPort;
    return { host, port: Number.isInteger(port) ? port : defaultPort };
  }
  const colon = authority.lastIndexOf(':');
  if (colon === -1) return { host: authority, port: defaultPort };
  const port = Number(authority.slice(colon + 1));
  return {
    host: authority.slice(0, colon),
    port: Number.isInteger(port) && colon < authority.length - 1 ? port : defaultPort,
  };
}

/** What every span of a Tracing shares. */
interface Recorder {
  readonly tracer: Tracer;
  readonly propagator: TextMapPropagator;
  readonly pdpKind: string;
  /** Request headers recorded (lowercase, masked ones removed). */
  readonly recorded: readonly string[];
  readonly redactQuery: readonly string[];
  /** Masks the input for tollgate.decision.input; undefined when recordInput is off. */
  readonly maskInput: ((input: unknown) => unknown) | undefined;
}

/**
 * The decision attributes known before the PDP answers. `owned`: the decision's own
 * span (ext_authz), which has no server.address/port saying where the call goes.
 */
function setDecisionMeta(r: Recorder, span: Span, meta: DecisionMeta, owned: boolean): void {
  span.setAttribute(ATTR_DECISION_ID, meta.decisionId);
  span.setAttribute(ATTR_DECISION_POLICY_PATH, meta.policyPath);
  span.setAttribute(ATTR_DECISION_PDP_KIND, r.pdpKind);
  if (meta.agent !== undefined) {
    span.setAttribute(ATTR_DECISION_AGENT_ID, meta.agent.id);
    span.setAttribute(ATTR_DECISION_AGENT_ROLE, meta.agent.role);
  }
  const mcp = meta.mcp;
  if (mcp?.method !== undefined) {
    span.setAttribute(ATTR_DECISION_MCP_METHOD, mcp.method);
    span.setAttribute(ATTR_MCP_METHOD_NAME, mcp.method);
  }
  if (mcp?.tool !== undefined) {
    span.setAttribute(ATTR_DECISION_MCP_TOOL_NAME, mcp.tool);
    span.setAttribute(ATTR_GEN_AI_TOOL_NAME, mcp.tool);
  }
  if (mcp !== undefined) {
    if (mcp.method === 'tools/call') span.setAttribute(ATTR_GEN_AI_OPERATION_NAME, GEN_AI_OPERATION_EXECUTE_TOOL);
    if (mcp.prompt !== undefined) span.setAttribute(ATTR_GEN_AI_PROMPT_NAME, mcp.prompt);
    if (mcp.resourceUri !== undefined) span.setAttribute(ATTR_MCP_RESOURCE_URI, mcp.resourceUri);
    if (mcp.requestId !== undefined) span.setAttribute(ATTR_JSONRPC_REQUEST_ID, String(mcp.requestId));
    if (mcp.sessionId !== undefined) span.setAttribute(ATTR_MCP_SESSION_ID, mcp.sessionId);
    if (mcp.protocolVersion !== undefined) span.setAttribute(ATTR_MCP_PROTOCOL_VERSION, mcp.protocolVersion);
  }
  if (owned && meta.destination !== undefined) span.setAttribute(ATTR_DECISION_DESTINATION, meta.destination);
  if (r.maskInput !== undefined && meta.input !== undefined) {
    try {
      span.setAttribute(ATTR_DECISION_INPUT, JSON.stringify(r.maskInput(meta.input)));
    } catch {
      // Telemetry never throws into the request path: an unserialisable input is just not recorded.
    }
  }
}

/**
 * The OTel MCP span name, `{mcp.method.name} {target}` (target: the tool or prompt name,
 * low cardinality; a resource URI is not), or undefined for a call that is not one MCP
 * request (no MCP, or a batch: several methods, no single name).
 */
export function mcpSpanName(mcp: McpSpanFacts | undefined): string | undefined {
  if (mcp?.method === undefined || mcp.method === 'batch') return undefined;
  const target = mcp.tool ?? mcp.prompt;
  return target === undefined || target === '' ? mcp.method : `${mcp.method} ${target}`;
}

/** The PDP's answer: outcome, revision, timing, reasons; a deny sets status ERROR with the reasons. */
function setDecisionOutcome(span: Span, decision: DecisionOutcome): void {
  span.setAttribute(ATTR_DECISION_OUTCOME, decision.allowed ? OUTCOME_ALLOW : OUTCOME_DENY);
  span.setAttribute(ATTR_DECISION_BUNDLE_REVISION, decision.revision);
  span.setAttribute(ATTR_DECISION_EVAL_NS, decision.evalNanos);
  if (decision.reasons.length > 0) span.setAttribute(ATTR_DECISION_REASONS, [...decision.reasons]);
  if (decision.annotations !== undefined) span.setAttributes(decision.annotations.attributes);
  if (decision.stages !== undefined) setStages(span, decision);
  if (!decision.allowed) {
    if (decision.httpStatus !== undefined) span.setAttribute(ATTR_DECISION_HTTP_STATUS, decision.httpStatus);
    span.setStatus({
      code: SpanStatusCode.ERROR,
      message: decision.reasons.length > 0 ? decision.reasons.join('; ') : 'denied by policy',
    });
  }
}

/**
 * A PDP chain's stages, one attribute group per stage named by the stage (names are
 * configuration, so the set of keys is bounded): a Jaeger search for
 * tollgate.decision.stage.central.outcome=deny finds what the central layer denied.
 */
function setStages(span: Span, decision: DecisionOutcome): void {
  const stages = decision.stages ?? [];
  span.setAttribute(
    ATTR_DECISION_STAGES,
    stages.map((s) => s.name),
  );
  if (decision.decidedBy !== undefined) span.setAttribute(ATTR_DECISION_DECIDED_BY, decision.decidedBy);
  for (const stage of stages) {
    const prefix = `${ATTR_DECISION_STAGE_PREFIX}${stage.name}.`;
    span.setAttribute(`${prefix}outcome`, stage.outcome);
    span.setAttribute(`${prefix}revision`, stage.revision);
    span.setAttribute(`${prefix}duration_ms`, stage.ms);
    if (stage.reasons.length > 0) span.setAttribute(`${prefix}reasons`, [...stage.reasons]);
    if (stage.error !== undefined) {
      span.setAttribute(`${prefix}error.type`, stage.error.code);
      span.setAttribute(`${prefix}failure_mode`, stage.error.failureMode);
    }
  }
}

/** No decision could be made: which failure mode applied; an error whichever it was. */
function setDecisionFailure(span: Span, errorCode: string, message: string, failureMode: 'allow' | 'deny'): void {
  span.setAttribute(ATTR_DECISION_OUTCOME, failureMode === 'allow' ? OUTCOME_ALLOW : OUTCOME_DENY);
  span.setAttribute(ATTR_DECISION_FAILURE_MODE, failureMode);
  span.setAttribute(ATTR_ERROR_TYPE, errorCode);
  span.setStatus({ code: SpanStatusCode.ERROR, message: `${errorCode}: ${message}` });
}

/**
 * The start options of a span. A deny is among the start attributes, so the sampler
 * sees it (setup.ts samples every deny); an allowed span gets its outcome with the
 * other decision attributes, after the sampler has decided whether to record it at all.
 */
function startOptions(kind: SpanKind, startTime: number, outcome: string | undefined): SpanOptions {
  return outcome === OUTCOME_DENY ? { kind, startTime, attributes: DENY_START_ATTRIBUTES } : { kind, startTime };
}

const DENY_START_ATTRIBUTES = Object.freeze({ [ATTR_DECISION_OUTCOME]: OUTCOME_DENY });

/**
 * A span whose SDK span starts late: when its outcome is known (so the sampler sees a
 * deny) or when something needs it first (its ids, its context). `begin` starts it, back-dated
 * to `startTime`, when Tollgate had the call.
 */
abstract class DeferredSpan {
  protected span: Span | undefined;
  protected readonly startTime = performance.now();
  protected readonly r: Recorder;
  protected parent: Context;

  constructor(r: Recorder, parent: Context) {
    this.r = r;
    this.parent = parent;
  }

  get traceId(): string {
    return this.started(undefined).spanContext().traceId;
  }

  get spanId(): string {
    return this.started(undefined).spanContext().spanId;
  }

  /** The SDK span, started now if it was not yet. */
  protected started(outcome: string | undefined): Span {
    this.span ??= this.begin(outcome);
    return this.span;
  }

  protected abstract begin(outcome: string | undefined): Span;
}

/**
 * A call's CLIENT span. The SDK span is started (back-dated to when Tollgate had the
 * call) once the decision is known, so the sampler can keep every denial while head
 * sampling drops allowed calls before anything is recorded; or when the call needs it
 * earlier (its context is injected, its ids are asked for, it ends undecided).
 */
class CallSpan extends DeferredSpan implements CallTrace {
  private meta: DecisionMeta | undefined;
  /** A decision set status ERROR (kept at end) / error.type (not overwritten). */
  private errored = false;
  private errorTyped = false;
  private decided = false;
  private ended = false;
  private readonly call: OutgoingCall;

  constructor(r: Recorder, call: OutgoingCall, parent: Context) {
    super(r, parent);
    this.call = call;
  }

  /** Starts the SDK span, with the call's (and the decision's) attributes when it records. */
  protected begin(outcome: string | undefined): Span {
    const { call, r } = this;
    // One MCP request: the OTel MCP span name "{mcp.method.name} {target}". Otherwise HTTP
    // client semconv: "{method}" (low cardinality).
    const known = KNOWN_METHODS.has(call.method);
    const span = r.tracer.startSpan(
      mcpSpanName(this.meta?.mcp) ?? (known ? call.method : 'HTTP'),
      startOptions(SpanKind.CLIENT, this.startTime, outcome),
      this.parent,
    );
    // Attributes are computed only for a recording span: with tracing off, or a call
    // head sampling drops, the call pays for no URL work.
    if (!span.isRecording()) return span;
    if (known) {
      span.setAttribute(ATTR_HTTP_REQUEST_METHOD, call.method);
    } else {
      span.setAttribute(ATTR_HTTP_REQUEST_METHOD, '_OTHER');
      span.setAttribute(ATTR_HTTP_REQUEST_METHOD_ORIGINAL, call.method);
    }
    const { host, port } = splitAuthority(call.authority, call.scheme);
    span.setAttribute(ATTR_SERVER_ADDRESS, host);
    span.setAttribute(ATTR_SERVER_PORT, port);
    if (call.target !== undefined) {
      const url = sanitizeUrl(`${call.scheme}://${call.authority}${call.target}`, r.redactQuery);
      if (url !== undefined) span.setAttribute(ATTR_URL_FULL, url);
    }
    for (const name of r.recorded) {
      const value = call.headers[name];
      if (value !== undefined)
        span.setAttribute(ATTR_HTTP_REQUEST_HEADER(name), typeof value === 'string' ? [value] : [...value]);
    }
    if (this.meta !== undefined) setDecisionMeta(r, span, this.meta, false);
    return span;
  }

  startDecision(meta: DecisionMeta): DecisionTrace {
    if (this.span === undefined) {
      this.meta = meta;
      // Trace context in params._meta (OTel MCP semconv) parents the call when the HTTP
      // headers carry none; the headers win, being the nearer (HTTP client) span.
      const carrier = meta.mcp?.traceContext;
      if (carrier !== undefined && trace.getSpanContext(this.parent) === undefined)
        this.parent = extractContext(this.r, carrier);
    } else if (this.span.isRecording()) {
      setDecisionMeta(this.r, this.span, meta, false);
      const name = mcpSpanName(meta.mcp);
      if (name !== undefined) this.span.updateName(name);
    }
    return new CallDecision(this);
  }

  /** CallDecision.end */
  decide(decision: DecisionOutcome): void {
    if (this.decided) return;
    this.decided = true;
    const span = this.started(decision.allowed ? OUTCOME_ALLOW : OUTCOME_DENY);
    if (!span.isRecording()) return;
    setDecisionOutcome(span, decision);
    if (!decision.allowed) this.errored = true;
  }

  /** CallDecision.fail */
  failDecision(errorCode: string, message: string, failureMode: 'allow' | 'deny'): void {
    if (this.decided) return;
    this.decided = true;
    const span = this.started(failureMode === 'allow' ? OUTCOME_ALLOW : OUTCOME_DENY);
    if (!span.isRecording()) return;
    setDecisionFailure(span, errorCode, message, failureMode);
    this.errored = true;
    this.errorTyped = true;
  }

  startResponseDecision(meta: DecisionMeta, requestDecisionId: string): DecisionTrace {
    const parent = trace.setSpan(this.parent, this.started(undefined));
    return new ExtAuthzDecision(this.r, parent, meta, SPAN_RESPONSE_DECISION, SpanKind.INTERNAL, requestDecisionId);
  }

  forward(headers: Record<string, string>, url?: string): void {
    const span = this.started(undefined);
    if (span.isRecording()) {
      if (url !== undefined) {
        const full = sanitizeUrl(url, this.r.redactQuery);
        if (full !== undefined) span.setAttribute(ATTR_URL_FULL, full);
      }
    } else if (!isSpanContextValid(span.spanContext()) && propagation.getBaggage(this.parent) === undefined) {
      // No trace context and no baggage to carry (tracing off and none came with the call):
      // the propagators would write nothing.
      return;
    }
    try {
      this.r.propagator.inject(trace.setSpan(this.parent, span), headers, setter);
    } catch {
      // A propagator failure must not fail the call.
    }
  }

  end(result: CallResult): void {
    if (this.ended) return;
    this.ended = true;
    const endTime = performance.now();
    const span = this.started(undefined);
    if (span.isRecording()) {
      if (result.statusCode !== undefined) span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, result.statusCode);
      // HTTP client semconv: no response, or a 4xx/5xx, is an error and error.type says
      // which. A denial already set status ERROR with its reasons (whatever status
      // carried it, e.g. an MCP error in a 200); that description is kept.
      const errorType =
        result.errorType ??
        (result.statusCode !== undefined && result.statusCode >= 400 ? String(result.statusCode) : undefined);
      if (errorType !== undefined) {
        if (!this.errorTyped) span.setAttribute(ATTR_ERROR_TYPE, errorType);
        if (!this.errored)
          span.setStatus({
            code: SpanStatusCode.ERROR,
            ...(result.errorType !== undefined ? { message: result.errorType } : {}),
          });
      }
    }
    span.end(endTime);
  }
}

/** The decision of a call, recorded on the call's span. */
class CallDecision implements DecisionTrace {
  private readonly call: CallSpan;

  constructor(call: CallSpan) {
    this.call = call;
  }

  get traceId(): string {
    return this.call.traceId;
  }

  get spanId(): string {
    return this.call.spanId;
  }

  end(decision: DecisionOutcome): void {
    this.call.decide(decision);
  }

  fail(errorCode: string, message: string, failureMode: 'allow' | 'deny'): void {
    this.call.failDecision(errorCode, message, failureMode);
  }
}

/**
 * A decision span of its own, started (back-dated) and ended when the PDP has answered:
 * the ext_authz decision (SERVER), or a response decision (INTERNAL, under the call's span).
 */
class ExtAuthzDecision extends DeferredSpan implements DecisionTrace {
  private done = false;
  private readonly meta: DecisionMeta;
  private readonly name: string;
  private readonly kind: SpanKind;
  private readonly requestDecisionId: string | undefined;

  constructor(
    r: Recorder,
    parent: Context,
    meta: DecisionMeta,
    name: string = SPAN_DECISION,
    kind: SpanKind = SpanKind.SERVER,
    requestDecisionId?: string,
  ) {
    super(r, parent);
    this.meta = meta;
    this.name = name;
    this.kind = kind;
    this.requestDecisionId = requestDecisionId;
  }

  protected begin(outcome: string | undefined): Span {
    const carrier = this.meta.mcp?.traceContext;
    if (carrier !== undefined && trace.getSpanContext(this.parent) === undefined)
      this.parent = extractContext(this.r, carrier);
    const span = this.r.tracer.startSpan(this.name, startOptions(this.kind, this.startTime, outcome), this.parent);
    if (span.isRecording()) {
      setDecisionMeta(this.r, span, this.meta, true);
      if (this.requestDecisionId !== undefined)
        span.setAttribute(ATTR_DECISION_REQUEST_DECISION_ID, this.requestDecisionId);
    }
    return span;
  }

  end(decision: DecisionOutcome): void {
    if (this.done) return;
    this.done = true;
    const span = this.started(decision.allowed ? OUTCOME_ALLOW : OUTCOME_DENY);
    if (span.isRecording()) {
      setDecisionOutcome(span, decision);
      if (decision.action !== undefined) span.setAttribute(ATTR_DECISION_RESPONSE_ACTION, decision.action);
    }
    span.end(performance.now());
  }

  fail(errorCode: string, message: string, failureMode: 'allow' | 'deny'): void {
    if (this.done) return;
    this.done = true;
    const span = this.started(failureMode === 'allow' ? OUTCOME_ALLOW : OUTCOME_DENY);
    if (span.isRecording()) setDecisionFailure(span, errorCode, message, failureMode);
    span.end(performance.now());
  }
}

/** The context a carrier names (the root when none, or when the propagator fails). */
function extractContext(r: Recorder, carrier: HeaderCarrier): Context {
  try {
    return r.propagator.extract(ROOT_CONTEXT, carrier, getter);
  } catch {
    return ROOT_CONTEXT;
  }
}

/** Creates the tracing API over a tracer and a propagator. */
export function createTracing(options: TracingOptions): Tracing {
  const masked = new Set((options.maskedHeaders ?? DEFAULT_MASKED_HEADERS).map((h) => h.toLowerCase()));
  const r: Recorder = {
    tracer: options.tracer,
    propagator: options.propagator,
    pdpKind: options.pdpKind,
    recorded: (options.recordRequestHeaders ?? []).map((h) => h.toLowerCase()).filter((h) => !masked.has(h)),
    redactQuery: options.redactQueryParams ?? DEFAULT_REDACTED_QUERY_PARAMS,
    maskInput: options.recordInput === true ? options.maskInput : undefined,
  };

  return {
    startCall: (call) => new CallSpan(r, call, extractContext(r, call.headers)),
    startExtAuthzDecision: (carrier, meta) => new ExtAuthzDecision(r, extractContext(r, carrier), meta),
  };
}
