/**
 * MCP calls through Tollgate are spans an SRE recognises: named and attributed by the
 * OpenTelemetry MCP semantic conventions (`{mcp.method.name} {target}`, gen_ai.*, mcp.*,
 * jsonrpc.request.id) beside Tollgate's decision attributes, parented by trace context
 * in params._meta when the HTTP headers carry none. The facts come from the real input
 * builder, so what the policy sees and what the span shows are one reading.
 */
import t from 'tap';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace';
import type { TestLike } from '../helpers/processes.ts';
import { setupTelemetry } from '../../src/telemetry/setup.ts';
import { createTracing, mcpSpanName } from '../../src/telemetry/spans.ts';
import { decisionMeta, mcpSpanFacts } from '../../src/telemetry/observer.ts';
import { buildInput } from '../../src/input/build.ts';
import { normalizeRequest } from '../../src/http/normalize.ts';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';
const HEADER_TRACE = '0af7651916cd43dd8448eb211c80319c';
const HEADER_PARENT = 'b7ad6b7169203331';

function harness(t: TestLike) {
  const exporter = new InMemorySpanExporter();
  const telemetry = setupTelemetry({ exporter, registerGlobal: false, samplerRatio: 1 });
  t.teardown(() => telemetry.shutdown());
  const api = createTracing({ tracer: telemetry.tracer, propagator: telemetry.propagator, pdpKind: 'wasm' });
  return { api, spans: () => exporter.getFinishedSpans() };
}

/** The policy input the proxy builds for a POST /mcp with this body and headers. */
function mcpInput(body: unknown, headers: string[] = []) {
  const text = JSON.stringify(body);
  const request = normalizeRequest({
    id: 'r-1',
    method: 'POST',
    target: 'http://mcp.internal/mcp',
    rawHeaders: ['host', 'mcp.internal', 'content-type', 'application/json', ...headers],
    httpVersion: '1.1',
    scheme: 'http',
    source: { address: '127.0.0.1', port: 5000 },
    destination: { address: '127.0.0.1', port: 15001 },
  });
  return buildInput(request, { bytes: Buffer.from(text), truncated: false }, { id: 'a', role: 'support', labels: {} });
}

/** Runs one call through the tracing API and returns its span. */
function oneCall(t: TestLike, input: ReturnType<typeof mcpInput>, headers: Record<string, string> = {}) {
  const { api, spans } = harness(t);
  const c = api.startCall({ method: 'POST', scheme: 'http', authority: 'mcp.internal', target: '/mcp', headers });
  c.startDecision(decisionMeta('d-1', 'tollgate/authz/decision', input, 'mcp.internal:80')).end({
    allowed: true,
    reasons: [],
    revision: 'r',
    evalNanos: 1,
  });
  c.end({ statusCode: 200 });
  return spans()[0]!;
}

t.test('a tools/call span is "tools/call {tool}" with every MCP attribute and the decision beside them', async (t) => {
  const input = mcpInput(
    { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'lookup_order', arguments: { id: 'o-1' } } },
    ['mcp-session-id', 'sess-1', 'mcp-protocol-version', '2025-06-18'],
  );
  const span = oneCall(t, input);
  t.equal(span.name, 'tools/call lookup_order');
  t.match(span.attributes, {
    'mcp.method.name': 'tools/call',
    'gen_ai.tool.name': 'lookup_order',
    'gen_ai.operation.name': 'execute_tool',
    'jsonrpc.request.id': '7',
    'mcp.session.id': 'sess-1',
    'mcp.protocol.version': '2025-06-18',
    'tollgate.decision.outcome': 'allow',
    'tollgate.decision.mcp.tool.name': 'lookup_order',
    'http.request.method': 'POST',
  });
});

t.test('prompts are named by prompt; resources carry the URI as an attribute only', async (t) => {
  const prompt = oneCall(t, mcpInput({ jsonrpc: '2.0', id: 'p', method: 'prompts/get', params: { name: 'triage' } }));
  t.equal(prompt.name, 'prompts/get triage');
  t.equal(prompt.attributes['gen_ai.prompt.name'], 'triage');
  t.equal(prompt.attributes['gen_ai.operation.name'], undefined, 'only a tools/call executes a tool');
  const read = oneCall(
    t,
    mcpInput({ jsonrpc: '2.0', id: 2, method: 'resources/read', params: { uri: 'file:///orders/o-1' } }),
  );
  t.equal(read.name, 'resources/read', 'a URI is high-cardinality: not in the name');
  t.equal(read.attributes['mcp.resource.uri'], 'file:///orders/o-1');
  const note = oneCall(t, mcpInput({ jsonrpc: '2.0', method: 'notifications/initialized' }));
  t.equal(note.name, 'notifications/initialized');
  t.equal(note.attributes['jsonrpc.request.id'], undefined, 'a notification has no id');
});

t.test('a batch keeps the HTTP name: it is several MCP requests, not one', async (t) => {
  const batch = oneCall(
    t,
    mcpInput([
      { jsonrpc: '2.0', id: 1, method: 'tools/list' },
      { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'refund', arguments: {} } },
    ]),
  );
  t.equal(batch.name, 'POST');
  t.equal(batch.attributes['mcp.method.name'], 'batch');
  t.equal(batch.attributes['jsonrpc.request.id'], undefined);
  t.equal(mcpSpanName(undefined), undefined);
});

t.test('trace context in params._meta parents the call when the headers carry none', async (t) => {
  const input = mcpInput({
    jsonrpc: '2.0',
    id: 1,
    method: 'tools/call',
    params: {
      name: 'lookup_order',
      _meta: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`, tracestate: 'vendor=1' },
    },
  });
  t.same(mcpSpanFacts(input)?.traceContext, { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`, tracestate: 'vendor=1' });
  const span = oneCall(t, input);
  t.equal(span.spanContext().traceId, TRACE_ID, 'in the trace _meta names');
  t.equal(span.parentSpanContext?.spanId, PARENT_ID, 'a child of the _meta span');
  t.equal(span.spanContext().traceState?.get('vendor'), '1');
});

t.test('the traceparent header wins over params._meta (it is the nearer, HTTP client span)', async (t) => {
  const input = mcpInput({
    jsonrpc: '2.0',
    id: 1,
    method: 'tools/list',
    params: { _meta: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` } },
  });
  const span = oneCall(t, input, { traceparent: `00-${HEADER_TRACE}-${HEADER_PARENT}-01` });
  t.equal(span.spanContext().traceId, HEADER_TRACE);
  t.equal(span.parentSpanContext?.spanId, HEADER_PARENT);
});

t.test('the ext_authz decision span honours params._meta too', async (t) => {
  const { api, spans } = harness(t);
  const input = mcpInput({
    jsonrpc: '2.0',
    id: 1,
    method: 'tools/call',
    params: { name: 'refund', _meta: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` } },
  });
  api
    .startExtAuthzDecision({}, decisionMeta('d-2', 'p', input, 'mcp.internal:80'))
    .end({ allowed: false, reasons: ['no'], revision: 'r', evalNanos: 1 });
  const span = spans()[0]!;
  t.equal(span.name, 'tollgate.decision');
  t.equal(span.spanContext().traceId, TRACE_ID);
  t.equal(span.attributes['gen_ai.tool.name'], 'refund');
});
