/**
 * The spans a proxied call produces, through `@opentelemetry/api` only (the SDK is
 * set up once in setup.ts; without it every call here is a cheap no-op that still
 * passes the agent's trace context through):
 *
 *   agent span ─▶ tollgate.request (SERVER) ─┬─ tollgate.decision (INTERNAL)
 *                                             └─ GET (CLIENT) ─▶ tool's server span
 *
 * The ext_authz server has no request span of its own: its decision span is the
 * SERVER span, a child of Envoy's context, so both doors emit the same decision span.
 *
 * Why a child span for the decision, not a span event: the evaluation has a duration
 * worth seeing in the waterfall; a deny must carry span status ERROR (events have no
 * status) so Jaeger's `error=true` search finds it on the span that says why; span
 * attributes are what backends index for tag search (`tollgate.decision.outcome=deny`),
 * event attributes often are not; and ext_authz needs a SERVER span anyway, so the
 * decision is a span in both doors with one shape.
 *
 * Contexts are passed explicitly (no reliance on the active context), so a request's
 * spans are parented correctly whatever the async plumbing in between.
 */
import { SpanKind, SpanStatusCode, ROOT_CONTEXT, trace, type Attributes, type Context, type Span, type TextMapGetter, type TextMapPropagator, type TextMapSetter, type Tracer } from '@opentelemetry/api';
import {
  ATTR_CLIENT_ADDRESS,
  ATTR_CLIENT_PORT,
  ATTR_DECISION_AGENT_ID,
  ATTR_DECISION_AGENT_ROLE,
  ATTR_DECISION_BUNDLE_REVISION,
  ATTR_DECISION_DESTINATION,
  ATTR_DECISION_EVAL_NS,
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
  ATTR_GEN_AI_AGENT_ID,
  ATTR_GEN_AI_TOOL_NAME,
  ATTR_HTTP_REQUEST_HEADER,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_REQUEST_METHOD_ORIGINAL,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_MCP_METHOD_NAME,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_URL_FULL,
  OUTCOME_ALLOW,
  OUTCOME_DENY,
  SPAN_DECISION,
  SPAN_REQUEST,
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
  'awsaccesskeyid', 'signature', 'sig', 'x-goog-signature', 'x-amz-signature', 'x-amz-credential', 'x-amz-security-token',
  'access_token', 'id_token', 'refresh_token', 'token', 'api_key', 'apikey', 'api-key', 'key', 'client_secret',
  'password', 'passwd', 'secret', 'code',
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
  readonly mcp?: { readonly method?: string; readonly tool?: string };
  /** host:port the call is for. */
  readonly destination?: string;
  /** The policy input; recorded only when recordInput is on. */
  readonly input?: unknown;
}

/** The part of a Decision (src/pdp/types.ts) a span shows. */
export interface DecisionOutcome {
  readonly allowed: boolean;
  readonly reasons: readonly string[];
  readonly revision: string;
  readonly evalNanos: number;
  readonly httpStatus?: number;
}

/** The decision span of one request. Exactly one of end/fail is called. */
export interface DecisionTrace {
  readonly traceId: string;
  readonly spanId: string;
  /** Records the PDP's decision; a deny sets status ERROR with the reasons. */
  end(decision: DecisionOutcome): void;
  /** Records that no decision could be made and which failure mode applied. */
  fail(errorCode: string, message: string, failureMode: 'allow' | 'deny'): void;
}

/** The CLIENT span of the upstream call. */
export interface UpstreamTrace {
  /** Writes this span's context (traceparent, tracestate, B3 if configured) into the outgoing headers. */
  inject(headers: Record<string, string>): void;
  /** Ends the span with the upstream status, or the error code when no response came. */
  end(result: { readonly statusCode?: number; readonly errorType?: string }): void;
}

/** The spans of one proxied request. */
export interface RequestTrace {
  readonly context: Context;
  readonly traceId: string;
  readonly spanId: string;
  startDecision(meta: DecisionMeta): DecisionTrace;
  /** Starts the CLIENT span; `url` is the absolute URL forwarded (secrets are stripped here). */
  startUpstream(request: { readonly method: string; readonly url: string }): UpstreamTrace;
  /** Ends the request span with the status sent to the agent. */
  end(result: { readonly statusCode?: number; readonly errorType?: string }): void;
}

/** Incoming request facts for the request span. */
export interface IncomingRequest {
  readonly method: string;
  /** The absolute target URL (scheme://host:port/path?query). */
  readonly url: string;
  readonly headers: HeaderCarrier;
  readonly client?: { readonly address: string; readonly port: number };
}

/** The tracing API the PEP and the ext_authz server call. */
export interface Tracing {
  /** Continues the agent's trace (traceparent/tracestate/B3 in headers) or starts a root. */
  startRequest(request: IncomingRequest): RequestTrace;
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

const KNOWN_METHODS = new Set(['CONNECT', 'DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT', 'TRACE', 'QUERY']);

/** HTTP semconv method attributes: unknown methods are _OTHER plus the original. */
function methodAttributes(method: string): Attributes {
  return KNOWN_METHODS.has(method)
    ? { [ATTR_HTTP_REQUEST_METHOD]: method }
    : { [ATTR_HTTP_REQUEST_METHOD]: '_OTHER', [ATTR_HTTP_REQUEST_METHOD_ORIGINAL]: method };
}

/**
 * url.full without secrets: userinfo becomes REDACTED:REDACTED (semconv url.full) and
 * the values of listed query parameters become REDACTED. The query is edited as text
 * so nothing else in it is re-encoded. Unparseable input yields undefined.
 */
export function sanitizeUrl(raw: string, redactQueryParams: readonly string[] = DEFAULT_REDACTED_QUERY_PARAMS): string | undefined {
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
    const parts = query.slice(1).split('&').map((part) => {
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

function splitHostPort(raw: string): { host: string; port: number } | undefined {
  try {
    const url = new URL(raw);
    const port = url.port !== '' ? Number(url.port) : url.protocol === 'https:' ? 443 : url.protocol === 'http:' ? 80 : 0;
    return { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port };
  } catch {
    return undefined;
  }
}

/** Creates the tracing API over a tracer and a propagator. */
export function createTracing(options: TracingOptions): Tracing {
  const { tracer, propagator, pdpKind } = options;
  const masked = new Set((options.maskedHeaders ?? DEFAULT_MASKED_HEADERS).map((h) => h.toLowerCase()));
  const recorded = (options.recordRequestHeaders ?? []).map((h) => h.toLowerCase()).filter((h) => !masked.has(h));
  const redactQuery = options.redactQueryParams ?? DEFAULT_REDACTED_QUERY_PARAMS;
  const recordInput = options.recordInput === true && options.maskInput !== undefined;

  function decisionAttributes(meta: DecisionMeta): Attributes {
    const attributes: Attributes = {
      [ATTR_DECISION_ID]: meta.decisionId,
      [ATTR_DECISION_POLICY_PATH]: meta.policyPath,
      [ATTR_DECISION_PDP_KIND]: pdpKind,
    };
    if (meta.agent !== undefined) {
      attributes[ATTR_DECISION_AGENT_ID] = meta.agent.id;
      attributes[ATTR_DECISION_AGENT_ROLE] = meta.agent.role;
      if (meta.agent.id !== '') attributes[ATTR_GEN_AI_AGENT_ID] = meta.agent.id;
    }
    if (meta.mcp?.method !== undefined) {
      attributes[ATTR_DECISION_MCP_METHOD] = meta.mcp.method;
      attributes[ATTR_MCP_METHOD_NAME] = meta.mcp.method;
    }
    if (meta.mcp?.tool !== undefined) {
      attributes[ATTR_DECISION_MCP_TOOL_NAME] = meta.mcp.tool;
      attributes[ATTR_GEN_AI_TOOL_NAME] = meta.mcp.tool;
    }
    if (meta.destination !== undefined) attributes[ATTR_DECISION_DESTINATION] = meta.destination;
    if (recordInput && meta.input !== undefined) {
      try {
        attributes[ATTR_DECISION_INPUT] = JSON.stringify(options.maskInput!(meta.input));
      } catch {
        // Telemetry never throws into the request path: an unserialisable input is just not recorded.
      }
    }
    return attributes;
  }

  function startDecisionSpan(kind: SpanKind, meta: DecisionMeta, parent: Context): Span {
    const span = tracer.startSpan(SPAN_DECISION, { kind }, parent);
    if (span.isRecording()) span.setAttributes(decisionAttributes(meta));
    return span;
  }

  function decisionTrace(span: Span): DecisionTrace {
    const ctx = span.spanContext();
    let done = false;
    return {
      traceId: ctx.traceId,
      spanId: ctx.spanId,
      end(decision) {
        if (done) return;
        done = true;
        span.setAttributes({
          [ATTR_DECISION_OUTCOME]: decision.allowed ? OUTCOME_ALLOW : OUTCOME_DENY,
          [ATTR_DECISION_BUNDLE_REVISION]: decision.revision,
          [ATTR_DECISION_REASONS]: [...decision.reasons],
          [ATTR_DECISION_EVAL_NS]: decision.evalNanos,
        });
        if (!decision.allowed) {
          if (decision.httpStatus !== undefined) span.setAttribute(ATTR_DECISION_HTTP_STATUS, decision.httpStatus);
          span.setStatus({ code: SpanStatusCode.ERROR, message: decision.reasons.length > 0 ? decision.reasons.join('; ') : 'denied by policy' });
        }
        span.end();
      },
      fail(errorCode, message, failureMode) {
        if (done) return;
        done = true;
        span.setAttributes({
          [ATTR_DECISION_OUTCOME]: failureMode === 'allow' ? OUTCOME_ALLOW : OUTCOME_DENY,
          [ATTR_DECISION_FAILURE_MODE]: failureMode,
          [ATTR_ERROR_TYPE]: errorCode,
        });
        // No decision is an error whichever failure mode then applied.
        span.setStatus({ code: SpanStatusCode.ERROR, message: `${errorCode}: ${message}` });
        span.end();
      },
    };
  }

  function extract(carrier: HeaderCarrier): Context {
    try {
      return propagator.extract(ROOT_CONTEXT, carrier, getter);
    } catch {
      return ROOT_CONTEXT;
    }
  }

  return {
    startRequest(request) {
      const parent = extract(request.headers);
      // Attributes are computed only for a recording span: with tracing off (or a span
      // head sampling drops without recording) the request pays for no URL parsing.
      const span = tracer.startSpan(SPAN_REQUEST, { kind: SpanKind.SERVER }, parent);
      if (span.isRecording()) {
        const attributes: Attributes = { ...methodAttributes(request.method) };
        const url = sanitizeUrl(request.url, redactQuery);
        if (url !== undefined) attributes[ATTR_URL_FULL] = url;
        if (request.client !== undefined) {
          attributes[ATTR_CLIENT_ADDRESS] = request.client.address;
          attributes[ATTR_CLIENT_PORT] = request.client.port;
        }
        for (const name of recorded) {
          const value = request.headers[name];
          if (value !== undefined) attributes[ATTR_HTTP_REQUEST_HEADER(name)] = typeof value === 'string' ? [value] : [...value];
        }
        span.setAttributes(attributes);
      }
      const context = trace.setSpan(parent, span);
      const spanContext = span.spanContext();
      let ended = false;
      return {
        context,
        traceId: spanContext.traceId,
        spanId: spanContext.spanId,
        startDecision(meta) {
          return decisionTrace(startDecisionSpan(SpanKind.INTERNAL, meta, context));
        },
        startUpstream(upstream) {
          // HTTP client semconv span name: "{method}" (low cardinality).
          const name = KNOWN_METHODS.has(upstream.method) ? upstream.method : 'HTTP';
          const span = tracer.startSpan(name, { kind: SpanKind.CLIENT }, context);
          if (span.isRecording()) {
            const attributes: Attributes = { ...methodAttributes(upstream.method) };
            const full = sanitizeUrl(upstream.url, redactQuery);
            if (full !== undefined) attributes[ATTR_URL_FULL] = full;
            const hostPort = splitHostPort(upstream.url);
            if (hostPort !== undefined) {
              attributes[ATTR_SERVER_ADDRESS] = hostPort.host;
              attributes[ATTR_SERVER_PORT] = hostPort.port;
            }
            span.setAttributes(attributes);
          }
          const clientContext = trace.setSpan(context, span);
          let done = false;
          return {
            inject(headers) {
              try {
                propagator.inject(clientContext, headers, setter);
              } catch {
                // A propagator failure must not fail the call.
              }
            },
            end(result) {
              if (done) return;
              done = true;
              if (result.statusCode !== undefined) span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, result.statusCode);
              // HTTP client semconv: 4xx and 5xx are errors on CLIENT spans; error.type is the status.
              if (result.errorType !== undefined) {
                span.setAttribute(ATTR_ERROR_TYPE, result.errorType);
                span.setStatus({ code: SpanStatusCode.ERROR, message: result.errorType });
              } else if (result.statusCode !== undefined && result.statusCode >= 400) {
                span.setAttribute(ATTR_ERROR_TYPE, String(result.statusCode));
                span.setStatus({ code: SpanStatusCode.ERROR });
              }
              span.end();
            },
          };
        },
        end(result) {
          if (ended) return;
          ended = true;
          if (result.statusCode !== undefined) span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, result.statusCode);
          // HTTP server semconv: only 5xx (or no response) is an error on a SERVER span;
          // a 403 deny is the policy working, and its decision span carries the ERROR.
          if (result.errorType !== undefined) {
            span.setAttribute(ATTR_ERROR_TYPE, result.errorType);
            span.setStatus({ code: SpanStatusCode.ERROR, message: result.errorType });
          } else if (result.statusCode !== undefined && result.statusCode >= 500) {
            span.setAttribute(ATTR_ERROR_TYPE, String(result.statusCode));
            span.setStatus({ code: SpanStatusCode.ERROR });
          }
          span.end();
        },
      };
    },
    startExtAuthzDecision(carrier, meta) {
      const parent = extract(carrier);
      return decisionTrace(startDecisionSpan(SpanKind.SERVER, meta, parent));
    },
  };
}
