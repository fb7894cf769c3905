/**
 * Real peer: Jaeger v2 (all-in-one, in-memory storage) on loopback ports. Spans of an
 * allowed and a denied call, each continuing a known agent traceparent, are exported
 * through setup.ts over OTLP gRPC, HTTP/protobuf (Tollgate's encoder and batch
 * processor, otlp-export.ts) and HTTP/JSON (the SDK's); Jaeger's HTTP query
 * API is polled (with a deadline) until they appear. Asserts the agent's trace id,
 * the parent link, the decision attributes, error status on the denial, that tag
 * searches for denied decisions find it, that the tool received the same trace, and
 * that an exporter pointed at a dead endpoint never holds a call up.
 *
 * Needs `bash scripts/install-tools.sh jaeger` (.tools/bin/jaeger; npm test installs it); fails without it.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { createServer as createHttpServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync } from 'node:fs';
import { setupTelemetry, type OtlpProtocol } from '../../src/telemetry/setup.ts';
import { createTracing, type Tracing } from '../../src/telemetry/spans.ts';
import { type TestLike } from '../helpers/processes.ts';
import { JAEGER, freePort, getTrace, searchTraceIds, startJaeger, tag, until } from '../helpers/jaeger.ts';

// Starting Jaeger and polling its query API takes a few seconds per protocol.
t.setTimeout(120_000);

/** An agent trace context: a fresh trace id and parent span id. */
function agentContext(sampled = true): { traceId: string; parentId: string; traceparent: string } {
  const traceId = randomBytes(16).toString('hex');
  const parentId = randomBytes(8).toString('hex');
  return { traceId, parentId, traceparent: `00-${traceId}-${parentId}-${sampled ? '01' : '00'}` };
}

const decisionMeta = (id: string) => ({
  decisionId: id,
  policyPath: 'tollgate/authz/decision',
  agent: { id: 'support-bot', role: 'support' },
  mcp: { method: 'tools/call', tool: 'issue_refund' },
  destination: 'payments.internal:80',
});

/** One denied call: its CLIENT span carries the deny decision, 403 to the agent. */
function deniedCall(tracing: Tracing, traceparent: string): void {
  const call = tracing.startCall({
    method: 'POST',
    scheme: 'http',
    authority: 'payments.internal',
    target: '/v1/refunds',
    headers: { traceparent },
  });
  call.startDecision(decisionMeta('deny-1')).end({
    allowed: false,
    reasons: ['refund of 900 exceeds the support limit of 500'],
    revision: 'rev-jaeger',
    evalNanos: 42000,
    httpStatus: 403,
  });
  call.end({ statusCode: 403 });
}

/** One allowed call, forwarded for real to `toolPort` with the injected context. */
async function allowedCall(tracing: Tracing, traceparent: string, toolPort: number): Promise<number> {
  const authority = `127.0.0.1:${toolPort}`;
  const target = '/v1/refunds/r-1?api_key=secret';
  const call = tracing.startCall({ method: 'GET', scheme: 'http', authority, target, headers: { traceparent } });
  call
    .startDecision(decisionMeta('allow-1'))
    .end({ allowed: true, reasons: [], revision: 'rev-jaeger', evalNanos: 21000 });
  const headers: Record<string, string> = {};
  call.forward(headers);
  const res = await fetch(`http://${authority}${target}`, { headers });
  await res.arrayBuffer();
  call.end({ statusCode: res.status });
  return res.status;
}

async function startTool(t: TestLike): Promise<{ port: number; received: IncomingHttpHeaders[] }> {
  const received: IncomingHttpHeaders[] = [];
  const server = createHttpServer((req, res) => {
    received.push(req.headers);
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { port: (server.address() as AddressInfo).port, received };
}

t.test('jaeger v2', async (t) => {
  // The real Jaeger is required: a missing binary is a failure, never a silent pass.
  if (!existsSync(JAEGER)) {
    t.fail(`no ${JAEGER}: run bash scripts/install-tools.sh jaeger`);
    return;
  }
  const jaeger = await startJaeger(t);
  const tool = await startTool(t);

  const endpoints: Record<OtlpProtocol, string> = {
    grpc: `http://127.0.0.1:${jaeger.grpc}`,
    'http/protobuf': `http://127.0.0.1:${jaeger.http}`,
    'http/json': `http://127.0.0.1:${jaeger.http}`,
  };

  for (const protocol of ['grpc', 'http/protobuf', 'http/json'] as const) {
    t.test(
      `over OTLP ${protocol}: the denied call is in the agent's trace with the decision, error status, and is found by tag search`,
      async (t) => {
        const service = `tollgate-${protocol.replace('/', '-')}`;
        const warnings: string[] = [];
        const telemetry = setupTelemetry({
          enabled: true,
          protocol,
          endpoint: endpoints[protocol],
          serviceName: service,
          agentId: 'support-bot',
          registerGlobal: false,
          scheduledDelayMs: 50,
          logger: { warn: (_o, msg) => warnings.push(msg) },
        });
        t.teardown(() => telemetry.shutdown());
        const tracing = createTracing({ tracer: telemetry.tracer, propagator: telemetry.propagator, pdpKind: 'wasm' });

        const denied = agentContext();
        const allowed = agentContext();
        deniedCall(tracing, denied.traceparent);
        t.equal(await allowedCall(tracing, allowed.traceparent, tool.port), 200);
        await telemetry.forceFlush();

        const trace = await getTrace(jaeger.query, denied.traceId, 1);
        t.equal(trace.traceID, denied.traceId, 'the denied call is in the agent trace');
        t.equal(trace.spans.length, 1, 'one span for the call');
        const call = trace.spans[0]!;
        t.equal(call.operationName, 'tools/call issue_refund', 'an MCP call is named by the OTel MCP convention');
        t.equal(tag(call.tags, 'span.kind'), 'client');
        t.match(
          call.references,
          [{ refType: 'CHILD_OF', traceID: denied.traceId, spanID: denied.parentId }],
          'the call span is a child of the agent span',
        );
        t.equal(trace.processes[call.processID]!.serviceName, service);
        t.equal(tag(trace.processes[call.processID]!.tags, 'tollgate.agent.id'), 'support-bot');
        t.equal(tag(call.tags, 'error'), true, 'deny → error=true');
        t.equal(tag(call.tags, 'otel.status_description'), 'refund of 900 exceeds the support limit of 500');
        t.equal(tag(call.tags, 'http.response.status_code'), 403);
        t.equal(tag(call.tags, 'tollgate.decision.outcome'), 'deny');
        t.equal(tag(call.tags, 'tollgate.decision.id'), 'deny-1');
        t.equal(tag(call.tags, 'tollgate.decision.policy.path'), 'tollgate/authz/decision');
        t.equal(tag(call.tags, 'tollgate.decision.bundle.revision'), 'rev-jaeger');
        t.match(String(tag(call.tags, 'tollgate.decision.reasons')), /refund of 900 exceeds the support limit of 500/);
        t.equal(tag(call.tags, 'tollgate.decision.agent.id'), 'support-bot');
        t.equal(tag(call.tags, 'tollgate.decision.agent.role'), 'support');
        t.equal(tag(call.tags, 'tollgate.decision.mcp.tool.name'), 'issue_refund');
        t.equal(tag(call.tags, 'tollgate.decision.pdp.kind'), 'wasm');
        t.equal(Number(tag(call.tags, 'tollgate.decision.eval_ns')), 42000);

        const byOutcome = await until('tag search tollgate.decision.outcome=deny', async () => {
          const ids = await searchTraceIds(jaeger.query, service, { 'tollgate.decision.outcome': 'deny' });
          return ids.includes(denied.traceId) ? ids : undefined;
        });
        t.notOk(byOutcome.includes(allowed.traceId), 'the allowed call is not among denied decisions');
        // The span carries error=true (asserted above), but a *search* for error=true is not
        // asserted: Jaeger v1.76.0's in-memory store compares the query's "true" as a bool and
        // matches only status-OK spans (jaegertracing/jaeger#8217, fixed after the newest
        // version on the Go module proxy). The README's walk-through searches
        // tollgate.decision.outcome=deny, which is asserted here.

        // agent → Tollgate → tool is one trace: the tool got the CLIENT span as parent.
        const allowedTrace = await getTrace(jaeger.query, allowed.traceId, 1);
        const client = allowedTrace.spans.find((s) => tag(s.tags, 'span.kind') === 'client')!;
        t.equal(client.operationName, 'tools/call issue_refund');
        t.equal(tag(client.tags, 'tollgate.decision.outcome'), 'allow');
        t.equal(tag(client.tags, 'error'), undefined, 'an allowed, answered call is not an error');
        t.equal(tag(client.tags, 'http.response.status_code'), 200);
        t.equal(tag(client.tags, 'url.full'), `http://127.0.0.1:${tool.port}/v1/refunds/r-1?api_key=REDACTED`);
        t.equal(tool.received.at(-1)!.traceparent, `00-${allowed.traceId}-${client.spanID}-01`);
        // The exporter's connecting request at start (an export with no spans) was accepted too.
        t.same(warnings, [], 'no export failed');
      },
    );
  }

  t.test(
    'with ratio 0 a denied call of an unsampled agent trace is still exported, an allowed one is not',
    async (t) => {
      const service = 'tollgate-tail';
      const telemetry = setupTelemetry({
        enabled: true,
        protocol: 'grpc',
        endpoint: endpoints.grpc,
        serviceName: service,
        registerGlobal: false,
        samplerRatio: 0,
        scheduledDelayMs: 50,
      });
      t.teardown(() => telemetry.shutdown());
      const tracing = createTracing({ tracer: telemetry.tracer, propagator: telemetry.propagator, pdpKind: 'wasm' });
      const allowed = agentContext(false);
      const denied = agentContext(false);
      t.equal(await allowedCall(tracing, allowed.traceparent, tool.port), 200);
      deniedCall(tracing, denied.traceparent);
      await telemetry.forceFlush();
      const trace = await getTrace(jaeger.query, denied.traceId, 1);
      t.equal(trace.spans.length, 1);
      t.equal(tag(trace.spans[0]!.tags, 'tollgate.decision.outcome'), 'deny');
      // The allowed one was flushed in the same export if at all: by now it would be there.
      const res = await fetch(`http://127.0.0.1:${jaeger.query}/api/traces/${allowed.traceId}`);
      t.equal(res.status, 404, 'the unsampled allowed call was not exported');
      t.match(
        tool.received.at(-1)!.traceparent,
        new RegExp(`^00-${allowed.traceId}-[0-9a-f]{16}-00$`),
        'the tool is told the trace is unsampled',
      );
    },
  );
});

t.test('an exporter pointed at a dead endpoint never holds a call up, and shutdown is bounded', async (t) => {
  const tool = await startTool(t);
  const dead = await freePort();
  for (const protocol of ['grpc', 'http/protobuf'] as const) {
    const warnings: string[] = [];
    const telemetry = setupTelemetry({
      enabled: true,
      protocol,
      endpoint: `http://127.0.0.1:${dead}`,
      registerGlobal: false,
      scheduledDelayMs: 20,
      exportTimeoutMs: 500,
      shutdownTimeoutMs: 1500,
      logger: { warn: (_o, msg) => warnings.push(msg) },
    });
    const tracing = createTracing({ tracer: telemetry.tracer, propagator: telemetry.propagator, pdpKind: 'wasm' });
    const started = Date.now();
    for (let i = 0; i < 20; i++) {
      t.equal(await allowedCall(tracing, agentContext().traceparent, tool.port), 200);
      deniedCall(tracing, agentContext().traceparent);
    }
    const callsMs = Date.now() - started;
    t.ok(callsMs < 5000, `${protocol}: 40 calls took ${callsMs} ms`);
    await until(`${protocol}: an export failure warning`, async () => (warnings.length > 0 ? true : undefined), 10_000);
    const shutdownStarted = Date.now();
    await telemetry.shutdown();
    t.ok(Date.now() - shutdownStarted < 2500, `${protocol}: shutdown took ${Date.now() - shutdownStarted} ms`);
    t.match(warnings[0], /span export failed/);
  }
});
