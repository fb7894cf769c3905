/**
 * The span of a call through Tollgate, exported through setup.ts into the SDK's
 * InMemorySpanExporter: one CLIENT span per call carrying the decision, its parent,
 * the decision attributes, deny status, context injection, URL and header hygiene, the
 * ext_authz SERVER decision span, and sampling: denials always, other roots by ratio.
 */
import t from 'tap';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace';
import type { TestLike } from '../helpers/processes.ts';
import { setupTelemetry, type TelemetryOptions } from '../../src/telemetry/setup.ts';
import {
  createTracing,
  sanitizeUrl,
  splitAuthority,
  type OutgoingCall,
  type TracingOptions,
} from '../../src/telemetry/spans.ts';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';

function harness(t: TestLike, setup: Partial<TelemetryOptions> = {}, tracing: Partial<TracingOptions> = {}) {
  const exporter = new InMemorySpanExporter();
  // Every root sampled unless a test says otherwise (the default ratio is 0.1: tested below).
  const telemetry = setupTelemetry({ exporter, registerGlobal: false, samplerRatio: 1, ...setup });
  t.teardown(() => telemetry.shutdown());
  const api = createTracing({
    tracer: telemetry.tracer,
    propagator: telemetry.propagator,
    pdpKind: 'wasm',
    ...tracing,
  });
  const spans = (): ReadableSpan[] => exporter.getFinishedSpans();
  return { api, spans, telemetry };
}

const meta = {
  decisionId: 'd-1',
  policyPath: 'tollgate/authz/decision',
  agent: { id: 'support-bot', role: 'support' },
  mcp: { method: 'tools/call', tool: 'delete_customer' },
  destination: 'payments.internal:80',
};

/** A call as the proxy describes it. */
function call(over: Partial<OutgoingCall> = {}): OutgoingCall {
  return {
    method: 'GET',
    scheme: 'http',
    authority: 'payments.internal',
    target: '/v1/refunds/r-1',
    headers: {},
    ...over,
  };
}

t.test(
  'a denied call is one CLIENT span in the agent trace: ERROR with the reason, every decision attribute on it',
  async (t) => {
    const { api, spans } = harness(t);
    const c = api.startCall(
      call({
        method: 'POST',
        target: '/v1/refunds',
        headers: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`, tracestate: 'vendor=1' },
      }),
    );
    const decision = c.startDecision(meta);
    t.equal(decision.spanId, c.spanId, 'the decision is recorded on the call span');
    decision.end({
      allowed: false,
      reasons: ['refund of 900 exceeds the support limit of 500'],
      revision: 'rev-7',
      evalNanos: 123456,
      httpStatus: 403,
    });
    c.end({ statusCode: 403 });

    t.equal(spans().length, 1, 'one span per call');
    const span = spans()[0]!;
    t.equal(span.name, 'tools/call delete_customer', 'an MCP call is named by the OTel MCP convention');
    t.equal(span.kind, SpanKind.CLIENT);
    t.equal(span.spanContext().traceId, TRACE_ID, 'the agent trace id is kept');
    t.equal(span.parentSpanContext?.spanId, PARENT_ID, 'a child of the incoming traceparent');
    t.equal(span.spanContext().traceState?.get('vendor'), '1', 'tracestate is continued');
    t.equal(span.status.code, SpanStatusCode.ERROR);
    t.equal(
      span.status.message,
      'refund of 900 exceeds the support limit of 500',
      'the reason is the description, not the status code',
    );
    t.match(span.attributes, {
      'http.request.method': 'POST',
      'server.address': 'payments.internal',
      'server.port': 80,
      'url.full': 'http://payments.internal/v1/refunds',
      'http.response.status_code': 403,
      'error.type': '403',
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
      'gen_ai.tool.name': 'delete_customer',
      'gen_ai.operation.name': 'execute_tool',
      'mcp.method.name': 'tools/call',
    });
    t.equal(
      span.attributes['tollgate.decision.destination'],
      undefined,
      'server.address/port already say where the call goes',
    );
    t.equal(span.resource.attributes['service.name'], 'tollgate');
  },
);

t.test('an MCP denial answered with HTTP 200 is still an ERROR span with the reason', async (t) => {
  const { api, spans } = harness(t);
  const c = api.startCall(call({ method: 'POST', target: '/mcp' }));
  c.startDecision(meta).end({
    allowed: false,
    reasons: ['delete_customer is not allowed'],
    revision: 'r',
    evalNanos: 1,
  });
  c.end({ statusCode: 200 });
  const span = spans()[0]!;
  t.equal(span.status.code, SpanStatusCode.ERROR);
  t.equal(span.status.message, 'delete_customer is not allowed');
  t.equal(span.attributes['error.type'], undefined, 'the exchange itself succeeded');
  t.equal(span.attributes['http.response.status_code'], 200);
});

t.test(
  'an allowed call: the tool gets the CLIENT span as parent, in the agent trace; a policy-changed URL is what the span shows',
  async (t) => {
    const { api, spans } = harness(t);
    const c = api.startCall(
      call({ authority: 'user:pw@payments.internal:8080', headers: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` } }),
    );
    c.startDecision(meta).end({ allowed: true, reasons: [], revision: 'rev-7', evalNanos: 1000 });
    const headers: Record<string, string> = { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` };
    c.forward(headers, 'http://user:pw@payments.internal:8080/v1/refunds/r-1?token=abc&x=1');
    c.end({ statusCode: 200 });
    c.end({ statusCode: 500 });

    t.equal(spans().length, 1);
    const span = spans()[0]!;
    t.equal(span.status.code, SpanStatusCode.UNSET);
    t.match(span.attributes, {
      'tollgate.decision.outcome': 'allow',
      'http.request.method': 'GET',
      'server.port': 8080,
      'url.full': 'http://REDACTED:REDACTED@payments.internal:8080/v1/refunds/r-1?token=REDACTED&x=1',
      'http.response.status_code': 200,
    });
    t.equal(span.attributes['tollgate.decision.reasons'], undefined, 'no reasons, no attribute');
    const [version, traceId, spanId, flags] = headers.traceparent!.split('-');
    t.equal(version, '00');
    t.equal(traceId, TRACE_ID, 'the injected traceparent carries the agent trace id');
    t.equal(spanId, span.spanContext().spanId, 'and names the CLIENT span as the parent of the tool span');
    t.equal(flags, '01');
  },
);

t.test('no incoming context starts a new root', async (t) => {
  const { api, spans } = harness(t);
  const c = api.startCall(call());
  c.end({ statusCode: 200 });
  const span = spans()[0]!;
  t.equal(span.parentSpanContext, undefined);
  t.match(span.spanContext().traceId, /^[0-9a-f]{32}$/);
  t.equal(c.traceId, span.spanContext().traceId);
});

t.test('a CONNECT is a CLIENT span for the authority, with no url.full', async (t) => {
  const { api, spans } = harness(t);
  const { target: _none, ...connect } = call({ method: 'CONNECT', scheme: 'https', authority: 'api.example.com:443' });
  const c = api.startCall(connect);
  c.startDecision(meta).end({ allowed: true, reasons: [], revision: 'r', evalNanos: 1 });
  c.end({ statusCode: 200 });
  t.match(spans()[0]!.attributes, {
    'http.request.method': 'CONNECT',
    'server.address': 'api.example.com',
    'server.port': 443,
  });
  t.equal(spans()[0]!.attributes['url.full'], undefined);
});

t.test('credential headers are never recorded, listed headers are', async (t) => {
  const { api, spans } = harness(t, {}, { recordRequestHeaders: ['authorization', 'x-request-id', 'cookie'] });
  api
    .startCall(call({ headers: { authorization: 'Bearer s3cret', cookie: 'sid=1', 'x-request-id': 'r-9' } }))
    .end({ statusCode: 200 });
  const attrs = spans()[0]!.attributes;
  t.same(attrs['http.request.header.x-request-id'], ['r-9']);
  t.equal(attrs['http.request.header.authorization'], undefined);
  t.equal(attrs['http.request.header.cookie'], undefined);
  t.notMatch(JSON.stringify(attrs), /s3cret/);
});

t.test('the policy input is recorded only when enabled, and then masked', async (t) => {
  const input = { attributes: { request: { http: { headers: { authorization: 'Bearer s3cret' } } } } };
  const maskInput = (): unknown => ({ attributes: { request: { http: { headers: {} } } } });
  const off = harness(t, {}, { maskInput });
  const a = off.api.startCall(call());
  a.startDecision({ ...meta, input }).end({ allowed: true, reasons: [], revision: 'r', evalNanos: 1 });
  a.end({ statusCode: 200 });
  t.equal(off.spans()[0]!.attributes['tollgate.decision.input'], undefined);
  const on = harness(t, {}, { recordInput: true, maskInput });
  const b = on.api.startCall(call());
  b.startDecision({ ...meta, input }).end({ allowed: true, reasons: [], revision: 'r', evalNanos: 1 });
  b.end({ statusCode: 200 });
  const recorded = on.spans()[0]!.attributes['tollgate.decision.input'];
  t.type(recorded, 'string');
  t.notMatch(recorded as string, /s3cret/);
});

t.test('the attribute count limit holds and what is past it is counted as dropped', async (t) => {
  const tight = harness(t, { attributeCountLimit: 6 });
  const c = tight.api.startCall(call());
  c.startDecision(meta).end({ allowed: false, reasons: ['no'], revision: 'r', evalNanos: 1 });
  c.end({ statusCode: 403 });
  const span = tight.spans()[0]!;
  t.equal(Object.keys(span.attributes).length, 6, 'no more than the limit');
  t.ok(span.droppedAttributesCount > 0, 'and the rest counted as dropped');
});

t.test('attribute values are cut at the configured length', async (t) => {
  const { api, spans } = harness(t, { attributeValueLengthLimit: 16 });
  const c = api.startCall(call());
  c.startDecision(meta).end({ allowed: false, reasons: ['x'.repeat(100)], revision: 'r', evalNanos: 1 });
  c.end({ statusCode: 403 });
  const reasons = spans()[0]!.attributes['tollgate.decision.reasons'] as string[];
  t.equal(reasons[0]!.length, 16);
  t.equal((spans()[0]!.attributes['url.full'] as string).length, 16, 'strings too');
});

t.test('a PDP failure marks the call span ERROR with the code and the failure mode applied', async (t) => {
  const { api, spans } = harness(t);
  const c = api.startCall(call());
  c.startDecision(meta).fail('TG_ERR_PDP_TIMEOUT', 'no answer within 100 ms', 'allow');
  c.end({ statusCode: 200 });
  const span = spans()[0]!;
  t.equal(span.status.code, SpanStatusCode.ERROR);
  t.equal(span.status.message, 'TG_ERR_PDP_TIMEOUT: no answer within 100 ms');
  t.match(span.attributes, {
    'error.type': 'TG_ERR_PDP_TIMEOUT',
    'tollgate.decision.failure_mode': 'allow',
    'tollgate.decision.outcome': 'allow',
    'http.response.status_code': 200,
  });
});

t.test('ext_authz emits the decision as a SERVER span under the caller context, with the destination', async (t) => {
  const { api, spans } = harness(t, {}, { pdpKind: 'ext_authz' });
  const decision = api.startExtAuthzDecision({ traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` }, meta);
  decision.end({ allowed: false, reasons: ['no'], revision: 'r', evalNanos: 5 });
  decision.fail('TG_ERR_POLICY_EVAL', 'ignored: already ended', 'deny');
  t.equal(spans().length, 1);
  const span = spans()[0]!;
  t.equal(span.name, 'tollgate.decision');
  t.equal(span.kind, SpanKind.SERVER);
  t.equal(span.parentSpanContext?.spanId, PARENT_ID);
  t.equal(span.status.message, 'no');
  t.match(span.attributes, {
    'tollgate.decision.pdp.kind': 'ext_authz',
    'tollgate.decision.destination': 'payments.internal:80',
    'tollgate.decision.outcome': 'deny',
  });
});

t.test('a span started late ends on the same sub-millisecond clock it was back-dated on', async (t) => {
  const { api, spans } = harness(t, {}, { pdpKind: 'ext_authz' });
  for (let i = 0; i < 20; i++)
    api.startExtAuthzDecision({}, meta).end({ allowed: i % 2 === 0, reasons: [], revision: 'r', evalNanos: 5 });
  for (let i = 0; i < 20; i++) {
    const c = api.startCall(call());
    c.startDecision(meta).end({ allowed: true, reasons: [], revision: 'r', evalNanos: 1 });
    c.end({ statusCode: 200 });
  }
  t.equal(spans().length, 40);
  for (const kind of [SpanKind.SERVER, SpanKind.CLIENT]) {
    const of = spans().filter((s) => s.kind === kind);
    // The SDK ends a span whose start time was given on the millisecond wall clock unless
    // an end time is given too: every end would then be a whole millisecond.
    t.ok(
      of.some((s) => s.endTime[1] % 1e6 !== 0),
      `${SpanKind[kind]} spans end with sub-millisecond times`,
    );
    t.ok(
      of.every((s) => s.duration[0] === 0 && s.duration[1] > 0),
      `${SpanKind[kind]} durations are positive and short`,
    );
  }
});

t.test('head sampling at ratio 0 still exports denied decisions, and nothing else', async (t) => {
  const { api, spans } = harness(t, { samplerRatio: 0 });
  // Allowed, no parent: dropped.
  const allowed = api.startCall(call());
  allowed.startDecision(meta).end({ allowed: true, reasons: [], revision: 'r', evalNanos: 1 });
  const headers: Record<string, string> = {};
  allowed.forward(headers);
  allowed.end({ statusCode: 200 });
  t.equal(spans().length, 0, 'an unsampled allowed call exports nothing');
  t.match(headers.traceparent, /-00$/, 'and tells the upstream it is not sampled');
  // Denied, parent says "not sampled": kept anyway, in the agent's trace.
  const denied = api.startCall(call({ headers: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-00` } }));
  denied.startDecision(meta).end({ allowed: false, reasons: ['no'], revision: 'r', evalNanos: 1 });
  denied.end({ statusCode: 403 });
  t.same(
    spans().map((s) => s.name),
    ['tools/call delete_customer'],
  );
  t.equal(spans()[0]!.spanContext().traceId, TRACE_ID);
  t.equal(spans()[0]!.spanContext().traceFlags & 1, 1, 'exported as sampled');
});

t.test(
  'by default a tenth of root calls is sampled, every denial and every call of a sampled agent trace is kept',
  async (t) => {
    const { api, spans } = harness(t, { samplerRatio: undefined });
    const allowed = { allowed: true, reasons: [], revision: 'r', evalNanos: 1 } as const;
    const N = 2000;
    for (let i = 0; i < N; i++) {
      const c = api.startCall(call());
      c.startDecision(meta).end(allowed);
      c.forward({});
      c.end({ statusCode: 200 });
    }
    // Binomial(2000, 0.1): 200 ± 13.4; these bounds are more than 7 sigma away.
    const sampled = spans().length;
    t.ok(sampled > 100 && sampled < 300, `${sampled} of ${N} root calls sampled`);
    t.ok(
      spans().every((s) => s.attributes['url.full'] !== undefined),
      'the sampled ones carry their attributes',
    );
    for (let i = 0; i < 50; i++) {
      const c = api.startCall(call());
      c.startDecision(meta).end({ allowed: false, reasons: ['no'], revision: 'r', evalNanos: 1 });
      c.end({ statusCode: 403 });
    }
    t.equal(spans().length - sampled, 50, 'every denied root call is exported');
    for (let i = 0; i < 50; i++) {
      const c = api.startCall(call({ headers: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` } }));
      c.startDecision(meta).end(allowed);
      c.end({ statusCode: 200 });
    }
    t.equal(spans().length - sampled - 50, 50, 'every allowed call of a sampled agent trace is exported');
  },
);

t.test('a call span is started when its decision is known but dated from when Tollgate had the call', async (t) => {
  const { api, spans } = harness(t);
  const before = Date.now();
  const c = api.startCall(call());
  const had = Date.now();
  // Let the clock move on before the decision (no timer: the span's times come from the clock).
  while (Date.now() < had + 5);
  const decided = Date.now();
  c.startDecision(meta).end({ allowed: true, reasons: [], revision: 'r', evalNanos: 1 });
  c.end({ statusCode: 200 });
  const [span] = spans();
  const startMs = span!.startTime[0] * 1e3 + span!.startTime[1] / 1e6;
  const endMs = span!.endTime[0] * 1e3 + span!.endTime[1] / 1e6;
  t.ok(
    startMs >= before - 2 && startMs <= had + 2,
    `start ${startMs} is when the call arrived (${before}..${had}), not when it was decided (${decided})`,
  );
  t.ok(endMs >= decided - 2, 'and it ends after the decision');
});

t.test('ids asked for before the decision start the span then, and the decision is still recorded on it', async (t) => {
  const { api, spans } = harness(t);
  const c = api.startCall(call());
  const traceId = c.traceId;
  const d = c.startDecision(meta);
  t.equal(d.traceId, traceId);
  d.end({ allowed: false, reasons: ['no'], revision: 'r', evalNanos: 1 });
  c.end({ statusCode: 403 });
  t.equal(spans().length, 1);
  t.equal(spans()[0]!.spanContext().traceId, traceId);
  t.match(spans()[0]!.attributes, { 'tollgate.decision.outcome': 'deny', 'tollgate.decision.id': 'd-1' });
  t.equal(spans()[0]!.status.message, 'no');
});

t.test('with alwaysSampleDenied off, head sampling alone decides', async (t) => {
  const { api, spans } = harness(t, { samplerRatio: 0, alwaysSampleDenied: false });
  const denied = api.startCall(call());
  denied.startDecision(meta).end({ allowed: false, reasons: ['no'], revision: 'r', evalNanos: 1 });
  denied.end({ statusCode: 403 });
  t.equal(spans().length, 0);
});

t.test('OTEL_TRACES_SAMPLER overrides the configured ratio', async (t) => {
  const { api, spans } = harness(t, {
    samplerRatio: 1,
    alwaysSampleDenied: false,
    env: { OTEL_TRACES_SAMPLER: 'always_off' },
  });
  api.startCall(call()).end({ statusCode: 200 });
  t.equal(spans().length, 0);
});

t.test('OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES shape the resource; the agent id is on it', async (t) => {
  const { api, spans } = harness(t, {
    agentId: 'support-bot',
    env: {
      OTEL_SERVICE_NAME: 'tollgate-eu',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=prod,team=care%20team',
    },
  });
  api.startCall(call()).end({ statusCode: 200 });
  t.match(spans()[0]!.resource.attributes, {
    'service.name': 'tollgate-eu',
    'tollgate.agent.id': 'support-bot',
    'deployment.environment.name': 'prod',
    team: 'care team',
  });
});

t.test('B3 is extracted and injected when configured', async (t) => {
  const { api, spans } = harness(t, { propagators: ['tracecontext', 'b3multi'] });
  const c = api.startCall(
    call({ headers: { 'x-b3-traceid': TRACE_ID, 'x-b3-spanid': PARENT_ID, 'x-b3-sampled': '1' } }),
  );
  const headers: Record<string, string> = {};
  c.forward(headers);
  c.end({ statusCode: 200 });
  t.equal(spans()[0]!.spanContext().traceId, TRACE_ID);
  t.equal(headers['x-b3-traceid'], TRACE_ID);
  t.match(headers.traceparent, new RegExp(`^00-${TRACE_ID}-`));
});

t.test('with tracing off the agent context still passes through to the upstream', async (t) => {
  const telemetry = setupTelemetry({ enabled: false, registerGlobal: false });
  t.teardown(() => telemetry.shutdown());
  t.equal(telemetry.enabled, false);
  const api = createTracing({ tracer: telemetry.tracer, propagator: telemetry.propagator, pdpKind: 'wasm' });
  const c = api.startCall(call({ headers: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` } }));
  c.startDecision(meta).end({ allowed: true, reasons: [], revision: 'r', evalNanos: 1 });
  const headers: Record<string, string> = {};
  c.forward(headers, 'http://a.internal/?token=1');
  c.end({ statusCode: 200 });
  t.equal(headers.traceparent, `00-${TRACE_ID}-${PARENT_ID}-01`);

  // Baggage alone (no trace context) is carried too; with neither, nothing is written.
  const withBaggage = api.startCall(call({ headers: { baggage: 'tenant=acme' } }));
  const carried: Record<string, string> = {};
  withBaggage.forward(carried);
  withBaggage.end({ statusCode: 200 });
  t.same(carried, { baggage: 'tenant=acme' });
  const bare = api.startCall(call({ headers: {} }));
  const none: Record<string, string> = {};
  bare.forward(none);
  bare.end({ statusCode: 200 });
  t.same(none, {});
});

t.test('sanitizeUrl strips credentials and secret query values, keeps the rest byte for byte', async (t) => {
  t.equal(
    sanitizeUrl('https://u:p@h.example/a?b=%2F1&api_key=k&Signature=s&sig=1#frag'),
    'https://REDACTED:REDACTED@h.example/a?b=%2F1&api_key=REDACTED&Signature=REDACTED&sig=REDACTED',
  );
  t.equal(sanitizeUrl('http://h.example/a?x=1', ['x']), 'http://h.example/a?x=REDACTED');
  t.equal(sanitizeUrl('http://h.example/'), 'http://h.example/');
  t.equal(sanitizeUrl('not a url'), undefined);
});

t.test('sanitizeUrl takes the no-parse path only where URL would give the same string', async (t) => {
  const cases = [
    'http://payments.internal/v1/refunds/r-1',
    'http://a.b:8080/x',
    'http://127.0.0.1/x',
    'http://A.b/x',
    'http://a.b:80/x',
    'https://a.b:443/x',
    'http://a.b:080/x',
    'http://0x7f.1/x',
    'http://127.1/x',
    'http://127.0.0.01/x',
    'http://a.1/x',
    'http://a.b./x',
    'http://a.b/x y',
    'http://a.b/x"y',
    'http://a.b/x|y',
    'http://a.b/./x',
    'http://a.b/x/..',
    'http://a.b/a/%2e%2E/b',
    'http://a.b/%zz',
    'http://a.b:99999/x',
    'http://xn--bcher-kva.example/x',
  ];
  for (const raw of cases) {
    let expected: string | undefined;
    try {
      expected = new URL(raw).toString();
    } catch {
      expected = undefined;
    }
    t.equal(sanitizeUrl(raw), expected, raw);
  }
  t.same(splitAuthority('[::1]:8443', 'https'), { host: '::1', port: 8443 });
  t.same(splitAuthority('[::1]', 'https'), { host: '::1', port: 443 });
  t.same(splitAuthority('h.example', 'http'), { host: 'h.example', port: 80 });
  t.same(splitAuthority('h.example:', 'http'), { host: 'h.example', port: 80 });
});

t.test('unknown methods are _OTHER with the original kept; no response ends the span with error.type', async (t) => {
  const { api, spans } = harness(t);
  const c = api.startCall(call({ method: 'PROPFIND' }));
  const { mcp: _mcp, ...httpMeta } = meta;
  c.startDecision(httpMeta).end({ allowed: true, reasons: [], revision: 'r', evalNanos: 1 });
  c.end({ errorType: 'TG_ERR_UPSTREAM_TIMEOUT' });
  const span = spans()[0]!;
  t.equal(span.name, 'HTTP');
  t.match(span.attributes, {
    'http.request.method': '_OTHER',
    'http.request.method_original': 'PROPFIND',
    'error.type': 'TG_ERR_UPSTREAM_TIMEOUT',
  });
  t.equal(span.attributes['http.response.status_code'], undefined);
  t.equal(span.status.code, SpanStatusCode.ERROR);
  t.equal(span.status.message, 'TG_ERR_UPSTREAM_TIMEOUT');
});

t.test('a 4xx or 5xx answer marks an allowed call ERROR; a deny without reasons still says why', async (t) => {
  const { api, spans } = harness(t);
  const allowed = api.startCall(call({ scheme: 'https', authority: 'a.internal', target: '/x' }));
  allowed.startDecision(meta).end({ allowed: true, reasons: [], revision: 'r', evalNanos: 1 });
  allowed.end({ statusCode: 404 });
  const denied = api.startCall(call());
  const decision = denied.startDecision(meta);
  decision.end({ allowed: false, reasons: [], revision: 'r', evalNanos: 1 });
  decision.fail('TG_ERR_POLICY_EVAL', 'ignored: already ended', 'deny');
  denied.end({ statusCode: 403 });
  const [first, second] = spans();
  t.match(first!.attributes, { 'error.type': '404', 'server.port': 443 });
  t.equal(first!.status.code, SpanStatusCode.ERROR);
  t.equal(second!.status.message, 'denied by policy');
  t.equal(second!.attributes['tollgate.decision.failure_mode'], undefined);
});

t.test('OTEL_* env turns tracing off or on and picks propagators', async (t) => {
  t.equal(setupTelemetry({ enabled: true, registerGlobal: false, env: { OTEL_SDK_DISABLED: 'true' } }).enabled, false);
  t.equal(
    setupTelemetry({ enabled: true, registerGlobal: false, env: { OTEL_TRACES_EXPORTER: 'none' } }).enabled,
    false,
  );
  const on = setupTelemetry({
    registerGlobal: false,
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:1',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_PROPAGATORS: 'b3',
    },
  });
  t.teardown(() => on.shutdown());
  t.equal(on.enabled, true);
  t.match(on.description, /otlp http\/json http:\/\/127\.0\.0\.1:1/);
  t.same(on.propagator.fields(), ['b3']);
});

t.test(
  'registered globally, the provider, propagator and context manager serve the API and are released on shutdown',
  async (t) => {
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
  },
);

t.test('a response decision is an INTERNAL child span of the call, linked to the request decision', async (t) => {
  const { api, spans } = harness(t);
  const c = api.startCall(call({ method: 'POST', target: '/mcp' }));
  c.startDecision(meta).end({ allowed: true, reasons: [], revision: 'r', evalNanos: 1 });
  c.end({ statusCode: 200 });
  c.startResponseDecision({ ...meta, decisionId: 'd-2', policyPath: 'tollgate/authz/response' }, 'd-1').end({
    allowed: false,
    reasons: ['the result of tool read_key carries a private key'],
    revision: 'r',
    evalNanos: 1,
    action: 'block',
  });
  const [client, response] = spans();
  t.equal(response?.name, 'tollgate.response_decision');
  t.equal(response?.kind, SpanKind.INTERNAL);
  t.equal(response?.parentSpanContext?.spanId, client?.spanContext().spanId);
  t.equal(response?.spanContext().traceId, client?.spanContext().traceId);
  t.equal(response?.attributes['tollgate.decision.id'], 'd-2');
  t.equal(response?.attributes['tollgate.decision.request_decision_id'], 'd-1');
  t.equal(response?.attributes['tollgate.decision.response.action'], 'block');
  t.equal(response?.attributes['tollgate.decision.outcome'], 'deny');
  t.equal(response?.status.code, SpanStatusCode.ERROR);
});

t.test('a PDP chain decision puts every stage on the span, and which one decided', async (t) => {
  const { api, spans } = harness(t, {}, { pdpKind: 'chain' });
  const c = api.startCall(call());
  c.startDecision(meta).end({
    allowed: false,
    reasons: ['refund of 300 exceeds the EU regional limit of 200'],
    revision: 'central=seed-1,local=hybrid-2',
    evalNanos: 1000,
    decidedBy: 'local',
    stages: [
      {
        name: 'central',
        outcome: 'error',
        reasons: [],
        revision: 'remote',
        ms: 200.5,
        error: { code: 'TG_ERR_PDP_TIMEOUT', failureMode: 'allow' },
      },
      {
        name: 'local',
        outcome: 'deny',
        reasons: ['refund of 300 exceeds the EU regional limit of 200'],
        revision: 'hybrid-2',
        ms: 0.1,
      },
    ],
  });
  c.end({ statusCode: 403 });
  const span = spans()[0]!;
  t.match(span.attributes, {
    'tollgate.decision.pdp.kind': 'chain',
    'tollgate.decision.decided_by': 'local',
    'tollgate.decision.stages': ['central', 'local'],
    'tollgate.decision.stage.central.outcome': 'error',
    'tollgate.decision.stage.central.error.type': 'TG_ERR_PDP_TIMEOUT',
    'tollgate.decision.stage.central.failure_mode': 'allow',
    'tollgate.decision.stage.central.duration_ms': 200.5,
    'tollgate.decision.stage.local.outcome': 'deny',
    'tollgate.decision.stage.local.revision': 'hybrid-2',
    'tollgate.decision.stage.local.reasons': ['refund of 300 exceeds the EU regional limit of 200'],
  });
});

t.test('trace and span ids come from the CSPRNG, not Math.random, and are valid W3C ids', async (t) => {
  const { telemetry } = harness(t);
  const random = Math.random;
  // The SDK's own generator builds ids from Math.random: fixed, it would repeat one id.
  Math.random = () => 0.5;
  const traceIds = new Set<string>();
  const spanIds = new Set<string>();
  try {
    for (let i = 0; i < 500; i++) {
      const span = telemetry.tracer.startSpan('id');
      const { traceId, spanId } = span.spanContext();
      span.end();
      t.ok(/^[0-9a-f]{32}$/.test(traceId) && !/^0+$/.test(traceId), `trace id ${traceId}`, { diagnostic: false });
      t.ok(/^[0-9a-f]{16}$/.test(spanId) && !/^0+$/.test(spanId), `span id ${spanId}`, { diagnostic: false });
      traceIds.add(traceId);
      spanIds.add(spanId);
    }
  } finally {
    Math.random = random;
  }
  t.equal(traceIds.size, 500);
  t.equal(spanIds.size, 500);
});
