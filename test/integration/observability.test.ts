// Observability through the real sidecar process: Prometheus metrics after a known sequence
// of calls, the hash-chained decision log verified (and tamper detected) by the CLI,
// and spans in a real Jaeger under the agent's own trace.
import t from 'tap';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CLI, buildBundle, startTollgate, startUpstream, tempDir, viaProxy } from '../helpers/processes.ts';
import { JAEGER, getTrace, searchTraceIds, startJaeger, tag, until } from '../helpers/jaeger.ts';
import { existsSync } from 'node:fs';

t.setTimeout(120_000);

const SUPPORT = { id: 'support-bot', role: 'support' };
const resolve = (port: number) =>
  Object.fromEntries(['payments.internal', 'hr.internal', 'mcp.internal'].map((h) => [`${h}:80`, `127.0.0.1:${port}`]));

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, [CLI, ...args], (err, stdout, stderr) =>
      done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

/** Parses Prometheus text into "name{labels}" → value. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-z_:][a-z0-9_:]*(?:\{[^}]*\})?) (\S+)$/i.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

const refund = (port: number, amount: number) =>
  viaProxy(port, {
    method: 'POST',
    url: 'http://payments.internal/v1/refunds',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ amount }),
  });
const mcpCall = (port: number, name: string) =>
  viaProxy(port, {
    method: 'POST',
    url: 'http://mcp.internal/mcp',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name, arguments: {} } }),
  });

t.test('metrics and the decision log after a known sequence of calls', async (t) => {
  const upstream = await startUpstream(t);
  const dir = await tempDir();
  const logFile = join(dir, 'decisions.jsonl');
  const tg = await startTollgate(t, {
    agent: SUPPORT,
    proxy: { resolve: resolve(upstream.port) },
    decisionLog: { file: logFile },
  });
  // 3 allowed, 2 denied refunds/reads, 1 denied MCP tool call.
  t.equal((await refund(tg.proxyPort, 10)).status, 200);
  t.equal((await refund(tg.proxyPort, 500)).status, 200);
  t.equal((await viaProxy(tg.proxyPort, { url: 'http://payments.internal/v1/refunds/r-1' })).status, 200);
  t.equal((await refund(tg.proxyPort, 501)).status, 403);
  t.equal((await viaProxy(tg.proxyPort, { url: 'http://hr.internal/v1/employees' })).status, 403);
  t.equal((await mcpCall(tg.proxyPort, 'delete_customer')).status, 200);

  const res = await fetch(`http://127.0.0.1:${tg.adminPort}/metrics`);
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const m = samples(await res.text());
  t.equal(
    m.get('tollgate_decisions_total{decision="allow",agent="support-bot",destination="payments.internal",tool=""}'),
    3,
  );
  t.equal(
    m.get('tollgate_decisions_total{decision="deny",agent="support-bot",destination="payments.internal",tool=""}'),
    1,
  );
  t.equal(m.get('tollgate_decisions_total{decision="deny",agent="support-bot",destination="hr.internal",tool=""}'), 1);
  t.equal(
    m.get(
      'tollgate_decisions_total{decision="deny",agent="support-bot",destination="mcp.internal",tool="delete_customer"}',
    ),
    1,
  );
  t.equal(m.get('tollgate_decision_duration_seconds_count{decision="allow"}'), 3);
  t.equal(m.get('tollgate_decision_duration_seconds_count{decision="deny"}'), 3);
  t.equal(m.get('tollgate_upstream_duration_seconds_count{destination="payments.internal",status_class="2xx"}'), 3);
  t.ok(
    [...m.keys()].some(
      (k) => k.startsWith('tollgate_policy_info{') && k.includes('path="tollgate/authz/decision"') && m.get(k) === 1,
    ),
    'policy revision info',
  );
  t.ok(
    [...m.keys()].some((k) => k.startsWith('tollgate_active_connections')),
    'active connections gauge',
  );

  // Stop the sidecar so the log is flushed, then verify and tamper with it.
  t.equal(await tg.stop(), 0);
  const intact = await cli(['audit', 'verify', logFile]);
  t.equal(intact.code, 0, intact.stdout + intact.stderr);
  t.match(intact.stdout, /6 decisions/);
  const lines = (await readFile(logFile, 'utf8')).trimEnd().split('\n');
  const records = lines.map((l) => JSON.parse(l) as Record<string, any>);
  t.equal(records.filter((r) => r.decision_id !== undefined).length, 6);
  const denied = records.find((r) => r.result?.allowed === false && r.input?.parsed_body?.amount === 501)!;
  t.ok(denied, 'the $501 refund is logged with its input and result');
  t.equal(denied.path, 'tollgate/authz/decision');
  t.match(denied.bundles.tollgate.revision, /^seed-/);
  t.notOk(
    records.some((r) => 'trace_id' in r || 'span_id' in r),
    'tracing off: no trace ids (OTel leaves the invalid all-zero ones)',
  );

  const tamper = async (name: string, edit: (ls: string[]) => string[], line: RegExp) => {
    const copy = join(dir, `${name}.jsonl`);
    await writeFile(copy, `${edit([...lines]).join('\n')}\n`);
    const r = await cli(['audit', 'verify', copy]);
    t.equal(r.code, 2, `${name} is detected`);
    t.match(r.stdout + r.stderr, line, `${name}: says where`);
  };
  const idx = lines.findIndex((l) => l.includes('"amount":501'));
  await tamper(
    'edited',
    (ls) => {
      ls[idx] = ls[idx]!.replace('"allowed":false', '"allowed":true');
      return ls;
    },
    new RegExp(`:${idx + 1}: `),
  );
  await tamper(
    'deleted',
    (ls) => {
      ls.splice(idx, 1);
      return ls;
    },
    new RegExp(`:${idx + 1}: `),
  );
  await tamper(
    'reordered',
    (ls) => {
      [ls[idx], ls[idx + 1]] = [ls[idx + 1]!, ls[idx]!];
      return ls;
    },
    new RegExp(`:${idx + 1}: `),
  );
});

t.test('explain prints the decision for humans', async (t) => {
  const dir = t.testdir({
    'in.json': JSON.stringify({
      attributes: {
        request: {
          http: {
            method: 'POST',
            host: 'payments.internal',
            path: '/v1/refunds',
            scheme: 'http',
            headers: { 'content-type': 'application/json' },
          },
        },
      },
      parsed_path: ['v1', 'refunds'],
      parsed_query: {},
      parsed_body: { amount: 900 },
      truncated_body: false,
      agent: { id: 'support-bot', role: 'support', labels: {} },
    }),
  });
  const r = await cli(['explain', '--input', join(dir, 'in.json')]);
  t.equal(r.code, 2);
  t.match(r.stdout, /^DENY  by tollgate\/authz\/decision @ seed-/);
  t.match(r.stdout, /agent\s+support-bot \(role support\)/);
  t.match(r.stdout, /call\s+POST http:\/\/payments\.internal\/v1\/refunds/);
  t.match(r.stdout, /why it was denied:\n  - refund of 900 exceeds the support limit of 500/);
});

t.test('traces in Jaeger: the denied call sits in the agent trace with the decision', async (t) => {
  if (!existsSync(JAEGER)) {
    t.fail(`no ${JAEGER}: run bash scripts/install-tools.sh jaeger`);
    return;
  }
  const jaeger = await startJaeger(t);
  const upstream = await startUpstream(t);
  const service = `tollgate-e2e-${randomBytes(3).toString('hex')}`;
  const logFile = join(await tempDir(), 'decisions.jsonl');
  const tg = await startTollgate(
    t,
    {
      agent: SUPPORT,
      proxy: { resolve: resolve(upstream.port) },
      tracing: { enabled: true, endpoint: `http://127.0.0.1:${jaeger.grpc}`, serviceName: service },
      decisionLog: { file: logFile, fileFlushMs: 0 },
    },
    { OTEL_BSP_SCHEDULE_DELAY: '100' },
  );
  const ctx = () => {
    const traceId = randomBytes(16).toString('hex');
    const parentId = randomBytes(8).toString('hex');
    return { traceId, parentId, traceparent: `00-${traceId}-${parentId}-01` };
  };
  const allowed = ctx();
  const denied = ctx();
  t.equal(
    (
      await viaProxy(tg.proxyPort, {
        url: 'http://payments.internal/v1/refunds/r-1',
        headers: { traceparent: allowed.traceparent },
      })
    ).status,
    200,
  );
  t.match(
    upstream.received.at(-1)!.headers.traceparent,
    new RegExp(`^00-${allowed.traceId}-[0-9a-f]{16}-01$`),
    'the tool continues the agent trace',
  );
  const deny = await viaProxy(tg.proxyPort, {
    method: 'POST',
    url: 'http://payments.internal/v1/refunds',
    headers: { traceparent: denied.traceparent, 'content-type': 'application/json' },
    body: '{"amount": 900}',
  });
  t.equal(deny.status, 403);

  const trace = await getTrace(jaeger.query, denied.traceId, 1);
  t.equal(trace.traceID, denied.traceId);
  t.equal(trace.spans.length, 1, 'one span for the call');
  const call = trace.spans[0]!;
  t.equal(call.operationName, 'POST');
  t.equal(tag(call.tags, 'span.kind'), 'client');
  t.match(
    call.references,
    [{ refType: 'CHILD_OF', traceID: denied.traceId, spanID: denied.parentId }],
    'a child of the agent span',
  );
  t.equal(tag(call.tags, 'error'), true);
  t.equal(tag(call.tags, 'http.response.status_code'), 403);
  t.equal(tag(call.tags, 'url.full'), 'http://payments.internal/v1/refunds');
  t.equal(tag(call.tags, 'tollgate.decision.outcome'), 'deny');
  t.equal(tag(call.tags, 'tollgate.decision.id'), JSON.parse(deny.body).decision_id);
  t.equal(tag(call.tags, 'tollgate.decision.agent.id'), 'support-bot');
  t.match(String(tag(call.tags, 'tollgate.decision.bundle.revision')), /^seed-/);
  t.match(String(tag(call.tags, 'otel.status_description')), /refund of 900 exceeds/);
  const logged = await until('the denied decision in the decision log', async () =>
    (await readFile(logFile, 'utf8'))
      .split('\n')
      .filter((l) => l.includes(JSON.parse(deny.body).decision_id))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .at(0),
  );
  t.match(logged, { trace_id: denied.traceId, span_id: call.spanID }, 'the record names the span of its call');
  const found = await until('tag search for denied decisions', async () => {
    const ids = await searchTraceIds(jaeger.query, service, { 'tollgate.decision.outcome': 'deny' });
    return ids.includes(denied.traceId) ? ids : undefined;
  });
  t.notOk(found.includes(allowed.traceId));
  const allowedTrace = await getTrace(jaeger.query, allowed.traceId, 1);
  const client = allowedTrace.spans.find((s) => tag(s.tags, 'span.kind') === 'client');
  t.ok(client, 'the CLIENT span of the allowed call');
  t.equal(tag(client!.tags, 'http.response.status_code'), 200);
  t.equal(tag(client!.tags, 'tollgate.decision.outcome'), 'allow');
  t.equal(
    upstream.received.find((r) => r.headers.traceparent?.includes(allowed.traceId))!.headers.traceparent,
    `00-${allowed.traceId}-${client!.spanID}-01`,
    'the tool is a child of that span',
  );
});

t.test('with the exporter pointed at a dead endpoint, calls still succeed', async (t) => {
  const upstream = await startUpstream(t);
  const tg = await startTollgate(
    t,
    {
      agent: SUPPORT,
      proxy: { resolve: resolve(upstream.port) },
      tracing: { enabled: true, endpoint: 'http://127.0.0.1:9' },
    },
    { OTEL_BSP_SCHEDULE_DELAY: '50' },
  );
  for (let i = 0; i < 20; i++)
    t.equal((await viaProxy(tg.proxyPort, { url: 'http://payments.internal/v1/refunds/r-1' })).status, 200);
  t.equal((await refund(tg.proxyPort, 900)).status, 403);
  t.equal(tg.child.exitCode, null);
});

t.test('shadow mode: the candidate never enforces, and disagreements are counted', async (t) => {
  const upstream = await startUpstream(t);
  const candidate = await buildBundle(
    {
      'deny.rego':
        'package tollgate.authz\n\ndecision := {"allowed": false, "reasons": ["candidate denies everything"]}\n',
    },
    ['tollgate/authz/decision'],
    'candidate-1',
  );
  const tg = await startTollgate(t, {
    agent: SUPPORT,
    proxy: { resolve: resolve(upstream.port) },
    shadow: { bundle: candidate },
  });
  t.equal(
    (await viaProxy(tg.proxyPort, { url: 'http://payments.internal/v1/refunds/r-1' })).status,
    200,
    'the active policy enforces',
  );
  t.equal((await viaProxy(tg.proxyPort, { url: 'http://hr.internal/v1/employees' })).status, 403);
  const m = await until('shadow metrics', async () => {
    const s = samples(await (await fetch(`http://127.0.0.1:${tg.adminPort}/metrics`)).text());
    return s.get('tollgate_shadow_decisions_total{outcome="agree"}') === 1 ? s : undefined;
  });
  t.equal(m.get('tollgate_shadow_decisions_total{outcome="allow-to-deny"}'), 1);
  t.equal(m.get('tollgate_shadow_decisions_total{outcome="agree"}'), 1, 'both deny hr.internal');
});
