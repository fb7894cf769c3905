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
 * span is a fixed cost per call at load (bench/RESULTS.md, issue 4).
 *
 * The ext_authz server has no call of its own: its decision is a SERVER span named
 * `tollgate.decision`, a child of Envoy's context, with the same attributes.
 *
 * Contexts are passed explicitly (no reliance on the active context), so a call's span
 * is parented correctly whatever the async plumbing in between.
 */
import { SpanKind, SpanStatusCode, ROOT_CONTEXT, trace, type Attributes, type Context, type Span, type TextMapGetter, type TextMapPropagator, type TextMapSetter, type Tracer } from '@opentelemetry/api';
import {
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

const SIMPLE_URL = /^(https?):\/\/([a-z0-9.-]+)(?::([1-9][0-9]{0,4}))?(\/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*)$/;
const DNS_NAME = /^(?:[a-z0-9-]+\.)*[a-z][a-z0-9-]*\.?$/;
const IPV4 = /^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$/;

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
  if (port !== undefined && (Number(port) > 65535 || (scheme === 'http' && port === '80') || (scheme === 'https' && port === '443'))) return false;
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
  return { host: authority.slice(0, colon), port: Number.isInteger(port) && colon < authority.length - 1 ? port : defaultPort };
}

/** What a call's span already says: a decision may set status ERROR and error.type before the call ends. */
interface CallState {
  errored: boolean;
  errorType: boolean;
}

/** Creates the tracing API over a tracer and a propagator. */
export function createTracing(options: TracingOptions): Tracing {
  const { tracer, propagator, pdpKind } = options;
  const masked = new Set((options.maskedHeaders ?? DEFAULT_MASKED_HEADERS).map((h) => h.toLowerCase()));
  const recorded = (options.recordRequestHeaders ?? []).map((h) => h.toLowerCase()).filter((h) => !masked.has(h));
  const redactQuery = options.redactQueryParams ?? DEFAULT_REDACTED_QUERY_PARAMS;
  const recordInput = options.recordInput === true && options.maskInput !== undefined;

  /** `owned`: the decision's own span (ext_authz), which has no server.address/port saying where the call goes. */
  function decisionAttributes(meta: DecisionMeta, owned: boolean): Attributes {
    const attributes: Attributes = {
      [ATTR_DECISION_ID]: meta.decisionId,
      [ATTR_DECISION_POLICY_PATH]: meta.policyPath,
      [ATTR_DECISION_PDP_KIND]: pdpKind,
    };
    if (meta.agent !== undefined) {
      attributes[ATTR_DECISION_AGENT_ID] = meta.agent.id;
      attributes[ATTR_DECISION_AGENT_ROLE] = meta.agent.role;
    }
    if (meta.mcp?.method !== undefined) {
      attributes[ATTR_DECISION_MCP_METHOD] = meta.mcp.method;
      attributes[ATTR_MCP_METHOD_NAME] = meta.mcp.method;
    }
    if (meta.mcp?.tool !== undefined) {
      attributes[ATTR_DECISION_MCP_TOOL_NAME] = meta.mcp.tool;
      attributes[ATTR_GEN_AI_TOOL_NAME] = meta.mcp.tool;
    }
    if (owned && meta.destination !== undefined) attributes[ATTR_DECISION_DESTINATION] = meta.destination;
    if (recordInput && meta.input !== undefined) {
      try {
        attributes[ATTR_DECISION_INPUT] = JSON.stringify(options.maskInput!(meta.input));
      } catch {
        // Telemetry never throws into the request path: an unserialisable input is just not recorded.
      }
    }
    return attributes;
  }

  /**
   * Records a decision on `span`: the decision attributes and, on a deny, status ERROR
   * with the reasons. `owned`: the span is the decision's own (ext_authz) and ends here.
   */
  function decisionTrace(span: Span, meta: DecisionMeta, owned: boolean, state: CallState = { errored: false, errorType: false }): DecisionTrace {
    const recording = span.isRecording();
    if (recording) span.setAttributes(decisionAttributes(meta, owned));
    const ctx = span.spanContext();
    let done = false;
    return {
      traceId: ctx.traceId,
      spanId: ctx.spanId,
      end(decision) {
        if (done) return;
        done = true;
        if (recording) {
          const outcome = decision.allowed ? OUTCOME_ALLOW : OUTCOME_DENY;
          const attributes: Attributes = {
            [ATTR_DECISION_OUTCOME]: outcome,
            [ATTR_DECISION_BUNDLE_REVISION]: decision.revision,
            [ATTR_DECISION_EVAL_NS]: decision.evalNanos,
          };
          if (decision.reasons.length > 0) attributes[ATTR_DECISION_REASONS] = [...decision.reasons];
          if (!decision.allowed && decision.httpStatus !== undefined) attributes[ATTR_DECISION_HTTP_STATUS] = decision.httpStatus;
          span.setAttributes(attributes);
          if (!decision.allowed) {
            state.errored = true;
            span.setStatus({ code: SpanStatusCode.ERROR, message: decision.reasons.length > 0 ? decision.reasons.join('; ') : 'denied by policy' });
          }
        }
        if (owned) span.end();
      },
      fail(errorCode, message, failureMode) {
        if (done) return;
        done = true;
        if (recording) {
          span.setAttributes({
            [ATTR_DECISION_OUTCOME]: failureMode === 'allow' ? OUTCOME_ALLOW : OUTCOME_DENY,
            [ATTR_DECISION_FAILURE_MODE]: failureMode,
            [ATTR_ERROR_TYPE]: errorCode,
          });
          // No decision is an error whichever failure mode then applied.
          state.errored = true;
          state.errorType = true;
          span.setStatus({ code: SpanStatusCode.ERROR, message: `${errorCode}: ${message}` });
        }
        if (owned) span.end();
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
    startCall(call) {
      const parent = extract(call.headers);
      // HTTP client semconv span name: "{method}" (low cardinality).
      const span = tracer.startSpan(KNOWN_METHODS.has(call.method) ? call.method : 'HTTP', { kind: SpanKind.CLIENT }, parent);
      // Attributes are computed only for a recording span: with tracing off (or a span
      // head sampling drops without recording) the call pays for no URL work.
      const recording = span.isRecording();
      if (recording) {
        const attributes: Attributes = methodAttributes(call.method);
        const { host, port } = splitAuthority(call.authority, call.scheme);
        attributes[ATTR_SERVER_ADDRESS] = host;
        attributes[ATTR_SERVER_PORT] = port;
        if (call.target !== undefined) {
          const url = sanitizeUrl(`${call.scheme}://${call.authority}${call.target}`, redactQuery);
          if (url !== undefined) attributes[ATTR_URL_FULL] = url;
        }
        for (const name of recorded) {
          const value = call.headers[name];
          if (value !== undefined) attributes[ATTR_HTTP_REQUEST_HEADER(name)] = typeof value === 'string' ? [value] : [...value];
        }
        span.setAttributes(attributes);
      }
      const context = trace.setSpan(parent, span);
      const spanContext = span.spanContext();
      const state: CallState = { errored: false, errorType: false };
      let ended = false;
      return {
        traceId: spanContext.traceId,
        spanId: spanContext.spanId,
        startDecision(meta) {
          return decisionTrace(span, meta, false, state);
        },
        forward(headers, url) {
          if (recording && url !== undefined) {
            const full = sanitizeUrl(url, redactQuery);
            if (full !== undefined) span.setAttribute(ATTR_URL_FULL, full);
          }
          try {
            propagator.inject(context, headers, setter);
          } catch {
            // A propagator failure must not fail the call.
          }
        },
        end(result) {
          if (ended) return;
          ended = true;
          if (recording) {
            if (result.statusCode !== undefined) span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, result.statusCode);
            // HTTP client semconv: no response, or a 4xx/5xx, is an error and error.type says
            // which. A denial already set status ERROR with its reasons (whatever status
            // carried it, e.g. an MCP error in a 200); that description is kept.
            const errorType = result.errorType ?? (result.statusCode !== undefined && result.statusCode >= 400 ? String(result.statusCode) : undefined);
            if (errorType !== undefined) {
              if (!state.errorType) span.setAttribute(ATTR_ERROR_TYPE, errorType);
              if (!state.errored) span.setStatus({ code: SpanStatusCode.ERROR, ...(result.errorType !== undefined ? { message: result.errorType } : {}) });
            }
          }
          span.end();
        },
      };
    },
    startExtAuthzDecision(carrier, meta) {
      const parent = extract(carrier);
      return decisionTrace(tracer.startSpan(SPAN_DECISION, { kind: SpanKind.SERVER }, parent), meta, true);
    },
  };
}
