// The governance step inside a real sidecar (in process, in-memory store unless a test
// says otherwise): 429 + Retry-After for an empty bucket, the JSON-RPC error form for MCP
// with the approval id, input.usage seen by the policy, a refund when the upstream fails,
// the state failure mode per destination, and the budget/rate/approval span attributes.
import t from 'tap';
import pino from 'pino';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace';
import { parseConfig } from '../../src/config/load.ts';
import { startSidecar, type Sidecar } from '../../src/sidecar.ts';
import { setupTelemetry } from '../../src/telemetry/setup.ts';
import { buildBundle, startUpstream, viaProxy } from '../helpers/processes.ts';

const POLICY = `package tollgate.authz

default decision := {"allowed": false, "reasons": ["not a known call"]}

path := input.attributes.request.http.path

# One call per 10 s per tool, bursts of two (slow, so a slow test machine refills nothing).
decision := {"allowed": true, "rates": [{"key": sprintf("tool:%s", [input.mcp.tool.name]), "rate": 0.1, "burst": 2}]} if {
	input.mcp.method == "tools/call"
	input.mcp.tool.name != "big_refund"
}

decision := {"allowed": true, "approval": {"required": true, "reasons": ["big"], "uses": 1}} if input.mcp.tool.name == "big_refund"

decision := {"allowed": true, "rates": [{"key": "http", "rate": 0.1, "burst": 1}]} if path == "/rated"

# Spend from a $100 budget, refunded when the upstream fails; the policy reads its usage.
decision := {"allowed": true, "budgets": [{"key": "spend", "cost": 60, "limit": 100, "window": "1h", "refund_on": ["upstream_5xx", "upstream_error"]}], "headers": {"x-used-before": sprintf("%v", [object.get(input, ["usage", "spend", "used"], -1)])}} if startswith(path, "/spend")
`;

const bundle = await buildBundle({ 'policy.rego': POLICY }, ['tollgate/authz/decision']);
const upstream = await startUpstream(t, (req, res) => {
  const status = req.url === '/spend/fail' ? 500 : 200;
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { ok: true }, seen: req.headers['x-used-before'] });
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(body);
});

async function sidecar(t: Tap, state: Record<string, unknown> = {}) {
  const exporter = new InMemorySpanExporter();
  const telemetry = setupTelemetry({ exporter, registerGlobal: false, samplerRatio: 1 });
  t.teardown(() => telemetry.shutdown());
  const config = parseConfig({
    agent: { id: 'agent-1', role: 'tester' },
    pdp: { bundle },
    proxy: {
      listen: '127.0.0.1:0',
      resolve: {
        'tools.internal:80': `127.0.0.1:${upstream.port}`,
        'open.internal:80': `127.0.0.1:${upstream.port}`,
        'closed.internal:80': '127.0.0.1:1',
      },
    },
    admin: { listen: '127.0.0.1:0' },
    state: { approvals: { token: 'tok' }, ...state },
    logLevel: 'silent',
  });
  const running: Sidecar = await startSidecar(config, pino({ level: 'silent' }), {
    tracer: telemetry.tracer,
    propagator: telemetry.propagator,
  });
  t.teardown(() => running.close());
  const spans = async () => {
    await telemetry.forceFlush();
    return exporter.getFinishedSpans();
  };
  return { proxy: running.addresses.proxy!.port, admin: running.addresses.admin.port, spans, metrics: running.metrics };
}
type Tap = { teardown(fn: () => unknown): void };

const mcp = (name: string, id: number) =>
  JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: { amount: 900 } } });
const mcpHeaders = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

t.test('an empty bucket answers 429 with Retry-After, and MCP calls a JSON-RPC error', async (t) => {
  const s = await sidecar(t);
  const first = await viaProxy(s.proxy, { url: 'http://tools.internal/rated' });
  t.equal(first.status, 200);
  const limited = await viaProxy(s.proxy, { url: 'http://tools.internal/rated' });
  t.equal(limited.status, 429);
  // A tenth of a token per second: the next one in (nearly) 10 s.
  const retryAfter = Number(limited.headers['retry-after']);
  t.ok(retryAfter >= 5 && retryAfter <= 10, `Retry-After ${retryAfter}`);
  t.match(JSON.parse(limited.body), {
    allowed: false,
    reasons: [`rate limit http exceeded (0.1/s, burst 1); retry after ${retryAfter}s`],
    rate: { key: 'http', retry_after_seconds: retryAfter },
  });

  const statuses: number[] = [];
  let error: Record<string, any> | undefined;
  for (let i = 0; i < 3; i++) {
    const reply = await viaProxy(s.proxy, {
      method: 'POST',
      url: 'http://tools.internal/mcp',
      headers: mcpHeaders,
      body: mcp('lookup', i + 1),
    });
    statuses.push(reply.status);
    const doc = JSON.parse(reply.body);
    if (doc.error !== undefined) error = doc;
  }
  t.same(statuses, [200, 200, 200], 'MCP answers stay HTTP 200 so the session survives');
  t.match(error, {
    jsonrpc: '2.0',
    id: 3,
    error: { code: -32001, message: /rate limit tool:lookup exceeded/, data: { rate: { key: 'tool:lookup' } } },
  });
  const metrics = await s.metrics.render();
  t.match(metrics, /tollgate_rate_limited_total\{rate="http"\} 1/);
  t.match(metrics, /tollgate_rate_limited_total\{rate="tool:lookup"\} 1/);
});

t.test('an MCP call needing approval gets a JSON-RPC error with the approval id and where to check it', async (t) => {
  const s = await sidecar(t);
  const reply = await viaProxy(s.proxy, {
    method: 'POST',
    url: 'http://tools.internal/mcp',
    headers: mcpHeaders,
    body: mcp('big_refund', 41),
  });
  t.equal(reply.status, 200);
  const doc = JSON.parse(reply.body);
  t.match(doc, {
    id: 41,
    error: {
      code: -32001,
      message: /human approval required: big/,
      data: {
        approval: { status: 'pending', status_url: new RegExp(`^http://127\\.0\\.0\\.1:${s.admin}/v1/approvals/`) },
      },
    },
  });
  const id = doc.error.data.approval.id as string;
  const approved = await fetch(`http://127.0.0.1:${s.admin}/v1/approvals/${id}/approve`, {
    method: 'POST',
    headers: { authorization: 'Bearer tok' },
    body: JSON.stringify({ approver: 'alice' }),
  });
  t.equal(approved.status, 200);
  // The retry carries a new JSON-RPC id: the approval is for the call, not the message id.
  const retried = await viaProxy(s.proxy, {
    method: 'POST',
    url: 'http://tools.internal/mcp',
    headers: mcpHeaders,
    body: mcp('big_refund', 42),
  });
  t.match(JSON.parse(retried.body), { result: { ok: true } });
  const metrics = await s.metrics.render();
  t.match(metrics, /tollgate_approvals_decided_total\{outcome="approved"\} 1/);
  t.match(metrics, /tollgate_approvals_pending 0/);
  const spans = await s.spans();
  const used = spans.find((sp) => sp.attributes['tollgate.approval.outcome'] === 'used');
  t.match(
    used?.attributes,
    { 'tollgate.approval.id': id, 'tollgate.approval.decided_by': 'alice' },
    'on the call span',
  );
  t.ok(
    spans.some((sp) => sp.attributes['tollgate.approval.outcome'] === 'requested'),
    'the request is on a span too',
  );
  t.ok(
    spans.some((sp) => sp.name === 'tollgate.approval.approved'),
    'and the answer',
  );
});

t.test('the policy sees input.usage, and a failed upstream call gets its charge back', async (t) => {
  const s = await sidecar(t);
  const failed = await viaProxy(s.proxy, { url: 'http://tools.internal/spend/fail' });
  t.equal(failed.status, 500);
  t.equal(JSON.parse(failed.body).seen, '0', 'the policy saw 0 used');
  const ok = await viaProxy(s.proxy, { url: 'http://tools.internal/spend/ok' });
  t.equal(ok.status, 200);
  t.equal(JSON.parse(ok.body).seen, '0', 'the 500 gave its 60 back');
  const over = await viaProxy(s.proxy, { url: 'http://tools.internal/spend/ok' });
  t.equal(over.status, 403, '60 + 60 is over 100');
  t.match(JSON.parse(over.body).reasons, [
    /^budget spend exhausted: 60 of 100 used in the last 1h, this call costs 60$/,
  ]);
  const metrics = await s.metrics.render();
  t.match(metrics, /tollgate_budget_refunded_total\{budget="spend"\} 60/);
  t.match(metrics, /tollgate_budget_consumed_total\{budget="spend"\} 120/);
  t.match(metrics, /tollgate_budget_exhausted_total\{budget="spend"\} 1/);
  const spans = await s.spans();
  t.ok(
    spans.some(
      (sp) =>
        sp.attributes['tollgate.budget.outcome'] === 'exhausted' &&
        sp.attributes['tollgate.budget.exhausted'] === 'spend',
    ),
    'the exhausted budget is on the span',
  );
});

t.test('a dead store fails closed except for the destinations listed in failureModeAllowHosts', async (t) => {
  const s = await sidecar(t, {
    redis: 'redis://127.0.0.1:1',
    timeoutMs: 100,
    failureModeAllowHosts: ['open.internal'],
  });
  const closed = await viaProxy(s.proxy, { url: 'http://closed.internal/spend/ok' });
  t.equal(closed.status, 503);
  t.equal(JSON.parse(closed.body).error.code, 'TG_ERR_STATE_UNAVAILABLE');
  const open = await viaProxy(s.proxy, { url: 'http://open.internal/spend/ok' });
  t.equal(open.status, 200, 'allowed without state');
  const plain = await viaProxy(s.proxy, { url: 'http://closed.internal/mcp-free-read' });
  t.equal(plain.status, 403, 'a call the policy asks no state of never touches the store');
  t.match(JSON.parse(plain.body).reasons, ['not a known call']);
  t.match(await s.metrics.render(), /tollgate_state_errors_total\{operation="usage"\} [1-9]/);
});
