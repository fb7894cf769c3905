/**
 * The spans of a proxied call, exported through setup.ts into the SDK's
 * InMemorySpanExporter: names, kinds, parents, decision attributes, deny status,
 * context injection, URL and header hygiene, and the denied-always-sampled tail rule.
 */
import t from 'tap';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace';
import type { TestLike } from '../helpers/processes.ts';
import { setupTelemetry, type TelemetryOptions } from '../../src/telemetry/setup.ts';
import { createTracing, sanitizeUrl, type TracingOptions } from '../../src/telemetry/spans.ts';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';

function harness(t: TestLike, setup: Partial<TelemetryOptions> = {}, tracing: Partial<TracingOptions> = {}) {
  const exporter = new InMemorySpanExporter();
  const telemetry = setupTelemetry({ exporter, registerGlobal: false, ...setup });
  t.teardown(() => telemetry.shutdown());
  const api = createTracing({ tracer: telemetry.tracer, propagator: telemetry.propagator, pdpKind: 'wasm', ...tracing });
  const spans = (): ReadableSpan[] => exporter.getFinishedSpans();
  const byName = (name: string): ReadableSpan => {
    const span = spans().find((s) => s.name === name);
    if (span === undefined) throw new Error(`no span ${name} among ${spans().map((s) => s.name).join(', ')}`);
    return span;
  };
  return { api, spans, byName, telemetry };
}

const meta = {
  decisionId: 'd-1',
  policyPath: 'tollgate/authz/decision',
  agent: { id: 'support-bot', role: 'support' },
  mcp: { method: 'tools/call', tool: 'delete_customer' },
  destination: 'payments.internal:80',
};

t.test('a denied call continues the incoming trace and its decision span has status ERROR with the reason', async (t) => {
  const { api, byName } = harness(t);
  const request = api.startRequest({
    method: 'POST',
    url: 'http://payments.internal/v1/refunds',
    headers: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`, tracestate: 'vendor=1' },
    client: { address: '127.0.0.1', port: 40000 },
  });
  const decision = request.startDecision(meta);
  decision.end({ allowed: false, reasons: ['refund of 900 exceeds the support limit of 500'], revision: 'rev-7', evalNanos: 123456, httpStatus: 403 });
  request.end({ statusCode: 403 });

  const req = byName('tollgate.request');
  const dec = byName('tollgate.decision');
  t.equal(req.kind, SpanKind.SERVER);
  t.equal(req.spanContext().traceId, TRACE_ID, 'the agent trace id is kept');
  t.equal(req.parentSpanContext?.spanId, PARENT_ID, 'the request span is a child of the incoming traceparent');
  t.equal(req.spanContext().traceState?.get('vendor'), '1', 'tracestate is continued');
  t.equal(req.status.code, SpanStatusCode.UNSET, 'a 403 is not a server error');
  t.equal(dec.kind, SpanKind.INTERNAL);
  t.equal(dec.parentSpanContext?.spanId, req.spanContext().spanId);
  t.equal(dec.status.code, SpanStatusCode.ERROR);
  t.equal(dec.status.message, 'refund of 900 exceeds the support limit of 500');
  t.match(dec.attributes, {
    'tollgate.decision.outcome': 'deny',
    'tollgate.decision.id': 'd-1',
    'tollgate.decision.policy.path': 'tollgate/authz/decision',
    'tollgate.decision.bundle.revision': 'rev-7',
    'tollgate.decision.reasons': ['refund of 900 exceeds the support limit of 500'],
    'tollgate.decision.agent.id': 'support-bot',
    'tollgate.decision.agent.role': 'support',
    'tollgate.decision.mcp.tool.name': 'delete_customer',
    'tollgate.decision.mcp.method': 'tools/call',
    'tollgate.decision.pdp.kind': 'wasm',
    'tollgate.decision.eval_ns': 123456,
    'tollgate.decision.http_status': 403,
    'tollgate.decision.destination': 'payments.internal:80',
    'gen_ai.tool.name': 'delete_customer',
  });
  t.equal(req.resource.attributes['service.name'], 'tollgate');
});

t.test('an allowed call gets a CLIENT span and the upstream request carries its context in the same trace', async (t) => {
  const { api, byName } = harness(t);
  const request = api.startRequest({ method: 'GET', url: 'http://payments.internal/v1/refunds/r-1', headers: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` } });
  request.startDecision(meta).end({ allowed: true, reasons: [], revision: 'rev-7', evalNanos: 1000 });
  const upstream = request.startUpstream({ method: 'GET', url: 'http://user:pw@payments.internal:8080/v1/refunds/r-1?token=abc&x=1' });
  const headers: Record<string, string> = { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` };
  upstream.inject(headers);
  upstream.end({ statusCode: 200 });
  request.end({ statusCode: 200 });

  const client = byName('GET');
  const dec = byName('tollgate.decision');
  t.equal(client.kind, SpanKind.CLIENT);
  t.equal(dec.status.code, SpanStatusCode.UNSET);
  t.equal(dec.attributes['tollgate.decision.outcome'], 'allow');
  t.match(client.attributes, {
    'http.request.method': 'GET',
    'server.address': 'payments.internal',
    'server.port': 8080,
    'url.full': 'http://REDACTED:REDACTED@payments.internal:8080/v1/refunds/r-1?token=REDACTED&x=1',
    'http.response.status_code': 200,
  });
  const [version, traceId, spanId, flags] = headers.traceparent!.split('-');
  t.equal(version, '00');
  t.equal(traceId, TRACE_ID, 'the injected traceparent carries the agent trace id');
  t.equal(spanId, client.spanContext().spanId, 'and names the CLIENT span as the parent of the tool span');
  t.equal(flags, '01');
});

t.test('no incoming context starts a new root', async (t) => {
  const { api, byName } = harness(t);
  const request = api.startRequest({ method: 'GET', url: 'http://a.internal/', headers: {} });
  request.end({ statusCode: 200 });
  const req = byName('tollgate.request');
  t.equal(req.parentSpanContext, undefined);
  t.match(req.spanContext().traceId, /^[0-9a-f]{32}$/);
});

t.test('credential headers are never recorded, listed headers are', async (t) => {
  const { api, byName } = harness(t, {}, { recordRequestHeaders: ['authorization', 'x-request-id', 'cookie'] });
  api.startRequest({ method: 'GET', url: 'http://a.internal/', headers: { authorization: 'Bearer s3cret', cookie: 'sid=1', 'x-request-id': 'r-9' } }).end({ statusCode: 200 });
  const attrs = byName('tollgate.request').attributes;
  t.same(attrs['http.request.header.x-request-id'], ['r-9']);
  t.equal(attrs['http.request.header.authorization'], undefined);
  t.equal(attrs['http.request.header.cookie'], undefined);
  t.notMatch(JSON.stringify(attrs), /s3cret/);
});

t.test('the policy input is recorded only when enabled, and then masked', async (t) => {
  const input = { attributes: { request: { http: { headers: { authorization: 'Bearer s3cret' } } } } };
  const maskInput = (): unknown => ({ attributes: { request: { http: { headers: {} } } } });
  const off = harness(t, {}, { maskInput });
  off.api.startRequest({ method: 'GET', url: 'http://a.internal/', headers: {} }).startDecision({ ...meta, input }).end({ allowed: true, reasons: [], revision: 'r', evalNanos: 1 });
  t.equal(off.byName('tollgate.decision').attributes['tollgate.decision.input'], undefined);
  const on = harness(t, {}, { recordInput: true, maskInput });
  on.api.startRequest({ method: 'GET', url: 'http://a.internal/', headers: {} }).startDecision({ ...meta, input }).end({ allowed: true, reasons: [], revision: 'r', evalNanos: 1 });
  const recorded = on.byName('tollgate.decision').attributes['tollgate.decision.input'];
  t.type(recorded, 'string');
  t.notMatch(recorded as string, /s3cret/);
});

t.test('attribute values are cut at the configured length', async (t) => {
  const { api, byName } = harness(t, { attributeValueLengthLimit: 16 });
  api.startRequest({ method: 'GET', url: 'http://a.internal/', headers: {} }).startDecision(meta).end({ allowed: false, reasons: ['x'.repeat(100)], revision: 'r', evalNanos: 1 });
  const reasons = byName('tollgate.decision').attributes['tollgate.decision.reasons'] as string[];
  t.equal(reasons[0]!.length, 16);
});

t.test('a PDP failure marks the decision span ERROR with the code and the failure mode applied', async (t) => {
  const { api, byName } = harness(t);
  const request = api.startRequest({ method: 'GET', url: 'http://a.internal/', headers: {} });
  request.startDecision(meta).fail('TG_ERR_PDP_TIMEOUT', 'no answer within 100 ms', 'allow');
  request.end({ statusCode: 200 });
  const dec = byName('tollgate.decision');
  t.equal(dec.status.code, SpanStatusCode.ERROR);
  t.match(dec.attributes, { 'error.type': 'TG_ERR_PDP_TIMEOUT', 'tollgate.decision.failure_mode': 'allow', 'tollgate.decision.outcome': 'allow' });
});

t.test('ext_authz emits the decision as a SERVER span under the caller context', async (t) => {
  const { api, byName } = harness(t, {}, { pdpKind: 'ext_authz' });
  api.startExtAuthzDecision({ traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` }, meta).end({ allowed: false, reasons: ['no'], revision: 'r', evalNanos: 5 });
  const dec = byName('tollgate.decision');
  t.equal(dec.kind, SpanKind.SERVER);
  t.equal(dec.parentSpanContext?.spanId, PARENT_ID);
  t.equal(dec.attributes['tollgate.decision.pdp.kind'], 'ext_authz');
});

t.test('head sampling at ratio 0 still exports denied decisions, and nothing else', async (t) => {
  const { api, spans } = harness(t, { samplerRatio: 0 });
  // Allowed, no parent: dropped.
  const allowed = api.startRequest({ method: 'GET', url: 'http://a.internal/', headers: {} });
  allowed.startDecision(meta).end({ allowed: true, reasons: [], revision: 'r', evalNanos: 1 });
  const up = allowed.startUpstream({ method: 'GET', url: 'http://a.internal/' });
  const headers: Record<string, string> = {};
  up.inject(headers);
  up.end({ statusCode: 200 });
  allowed.end({ statusCode: 200 });
  t.equal(spans().length, 0, 'an unsampled allowed call exports nothing');
  t.match(headers.traceparent, /-00$/, 'and tells the upstream it is not sampled');
  // Denied, parent says "not sampled": kept anyway, in the agent's trace.
  const denied = api.startRequest({ method: 'GET', url: 'http://a.internal/', headers: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-00` } });
  denied.startDecision(meta).end({ allowed: false, reasons: ['no'], revision: 'r', evalNanos: 1 });
  denied.end({ statusCode: 403 });
  t.same(spans().map((s) => s.name).sort(), ['tollgate.decision', 'tollgate.request']);
  t.ok(spans().every((s) => s.spanContext().traceId === TRACE_ID));
});

t.test('with alwaysSampleDenied off, head sampling alone decides', async (t) => {
  const { api, spans } = harness(t, { samplerRatio: 0, alwaysSampleDenied: false });
  const denied = api.startRequest({ method: 'GET', url: 'http://a.internal/', headers: {} });
  denied.startDecision(meta).end({ allowed: false, reasons: ['no'], revision: 'r', evalNanos: 1 });
  denied.end({ statusCode: 403 });
  t.equal(spans().length, 0);
});

t.test('OTEL_TRACES_SAMPLER overrides the configured ratio', async (t) => {
  const { api, spans } = harness(t, { samplerRatio: 1, alwaysSampleDenied: false, env: { OTEL_TRACES_SAMPLER: 'always_off' } });
  api.startRequest({ method: 'GET', url: 'http://a.internal/', headers: {} }).end({ statusCode: 200 });
  t.equal(spans().length, 0);
});

t.test('OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES shape the resource; the agent id is on it', async (t) => {
  const { api, byName } = harness(t, { agentId: 'support-bot', env: { OTEL_SERVICE_NAME: 'tollgate-eu', OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=prod,team=care%20team' } });
  api.startRequest({ method: 'GET', url: 'http://a.internal/', headers: {} }).end({ statusCode: 200 });
  t.match(byName('tollgate.request').resource.attributes, { 'service.name': 'tollgate-eu', 'tollgate.agent.id': 'support-bot', 'deployment.environment.name': 'prod', team: 'care team' });
});

t.test('B3 is extracted and injected when configured', async (t) => {
  const { api, byName } = harness(t, { propagators: ['tracecontext', 'b3multi'] });
  const request = api.startRequest({ method: 'GET', url: 'http://a.internal/', headers: { 'x-b3-traceid': TRACE_ID, 'x-b3-spanid': PARENT_ID, 'x-b3-sampled': '1' } });
  const up = request.startUpstream({ method: 'GET', url: 'http://a.internal/' });
  const headers: Record<string, string> = {};
  up.inject(headers);
  up.end({ statusCode: 200 });
  request.end({ statusCode: 200 });
  t.equal(byName('tollgate.request').spanContext().traceId, TRACE_ID);
  t.equal(headers['x-b3-traceid'], TRACE_ID);
  t.match(headers.traceparent, new RegExp(`^00-${TRACE_ID}-`));
});

t.test('with tracing off the agent context still passes through to the upstream', async (t) => {
  const telemetry = setupTelemetry({ enabled: false, registerGlobal: false });
  t.teardown(() => telemetry.shutdown());
  t.equal(telemetry.enabled, false);
  const api = createTracing({ tracer: telemetry.tracer, propagator: telemetry.propagator, pdpKind: 'wasm' });
  const request = api.startRequest({ method: 'GET', url: 'http://a.internal/', headers: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` } });
  request.startDecision(meta).end({ allowed: true, reasons: [], revision: 'r', evalNanos: 1 });
  const up = request.startUpstream({ method: 'GET', url: 'http://a.internal/' });
  const headers: Record<string, string> = {};
  up.inject(headers);
  up.end({ statusCode: 200 });
  request.end({ statusCode: 200 });
  t.equal(headers.traceparent, `00-${TRACE_ID}-${PARENT_ID}-01`);
});

t.test('sanitizeUrl strips credentials and secret query values, keeps the rest byte for byte', async (t) => {
  t.equal(sanitizeUrl('https://u:p@h.example/a?b=%2F1&api_key=k&Signature=s&sig=1#frag'), 'https://REDACTED:REDACTED@h.example/a?b=%2F1&api_key=REDACTED&Signature=REDACTED&sig=REDACTED');
  t.equal(sanitizeUrl('http://h.example/a?x=1', ['x']), 'http://h.example/a?x=REDACTED');
  t.equal(sanitizeUrl('http://h.example/'), 'http://h.example/');
  t.equal(sanitizeUrl('not a url'), undefined);
});

t.test('unknown methods are _OTHER with the original kept; failures end spans with error.type', async (t) => {
  const { api, byName } = harness(t);
  const request = api.startRequest({ method: 'PROPFIND', url: 'http://a.internal/', headers: {} });
  const upstream = request.startUpstream({ method: 'PROPFIND', url: 'http://a.internal/' });
  upstream.end({ errorType: 'TG_ERR_UPSTREAM_TIMEOUT' });
  upstream.end({ statusCode: 200 });
  request.end({ statusCode: 504, errorType: 'TG_ERR_UPSTREAM_TIMEOUT' });
  request.end({ statusCode: 200 });
  const client = byName('HTTP');
  t.match(client.attributes, { 'http.request.method': '_OTHER', 'http.request.method_original': 'PROPFIND', 'error.type': 'TG_ERR_UPSTREAM_TIMEOUT' });
  t.equal(client.status.code, SpanStatusCode.ERROR);
  t.match(byName('tollgate.request').attributes, { 'error.type': 'TG_ERR_UPSTREAM_TIMEOUT', 'http.response.status_code': 504 });
});

t.test('upstream 4xx marks the CLIENT span ERROR; a 5xx to the agent marks the request span ERROR', async (t) => {
  const { api, byName } = harness(t);
  const request = api.startRequest({ method: 'GET', url: 'http://a.internal/', headers: {} });
  const decision = request.startDecision(meta);
  decision.end({ allowed: false, reasons: [], revision: 'r', evalNanos: 1 });
  decision.fail('TG_ERR_POLICY_EVAL', 'ignored: already ended', 'deny');
  const upstream = request.startUpstream({ method: 'GET', url: 'https://a.internal/x' });
  upstream.end({ statusCode: 404 });
  request.end({ statusCode: 502 });
  t.equal(byName('tollgate.decision').status.message, 'denied by policy', 'a deny without reasons still says why');
  t.match(byName('GET').attributes, { 'error.type': '404', 'server.port': 443 });
  t.equal(byName('tollgate.request').status.code, SpanStatusCode.ERROR);
});

t.test('OTEL_* env turns tracing off or on and picks propagators', async (t) => {
  t.equal(setupTelemetry({ enabled: true, registerGlobal: false, env: { OTEL_SDK_DISABLED: 'true' } }).enabled, false);
  t.equal(setupTelemetry({ enabled: true, registerGlobal: false, env: { OTEL_TRACES_EXPORTER: 'none' } }).enabled, false);
  const on = setupTelemetry({ registerGlobal: false, env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:1', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_PROPAGATORS: 'b3' } });
  t.teardown(() => on.shutdown());
  t.equal(on.enabled, true);
  t.match(on.description, /otlp http\/json http:\/\/127\.0\.0\.1:1/);
  t.same(on.propagator.fields(), ['b3']);
});

t.test('registered globally, the provider, propagator and context manager serve the API and are released on shutdown', async (t) => {
  const { trace, propagation, context } = await import('@opentelemetry/api');
  const exporter = new InMemorySpanExporter();
  const telemetry = setupTelemetry({ exporter });
  const span = trace.getTracer('x').startSpan('global');
  context.with(trace.setSpan(context.active(), span), () => {
    t.equal(trace.getActiveSpan(), span, 'the AsyncLocalStorage context manager is active');
    const carrier: Record<string, string> = {};
    propagation.inject(context.active(), carrier);
    t.match(carrier.traceparent, /^00-/);
  });
  span.end();
  await telemetry.shutdown();
  await telemetry.shutdown();
  t.equal(exporter.getFinishedSpans().length, 0, 'the exporter was shut down with the provider');
  t.equal(trace.getTracer('x').startSpan('after').isRecording(), false, 'globals are released');
});
