// The Grafana dashboard against what Tollgate really exports: real sidecars serve allowed,
// denied, MCP, shadow-compared, fail-open and fail-closed calls and a rejected bundle; every
// panel query and template variable must name metrics present in their /metrics scrapes,
// with the labels its matchers, grouping clauses and legends use. Labelled counters that
// only appear after their first event (a budget exhausted, a call rate-limited, a state
// store error) are listed once, in EVENT_ONLY: test/state/governance.test.ts asserts them,
// with the labels the dashboard uses, on a sidecar where those events happen.
import t from 'tap';
import { copyFile, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import pino from 'pino';
import { ROOT, buildBundle, startTollgate, startUpstream, tempDir, viaProxy } from '../helpers/processes.ts';
import { pollPause } from '../helpers/poll.ts';
import { parseExposition, type ExpositionSample } from '../telemetry/exposition.ts';
import { promqlRefs } from './promql-refs.ts';
import { parseConfig } from '../../src/config/load.ts';
import { startSidecar } from '../../src/sidecar.ts';
import { HOUR_MS } from '../../src/behaviour/hourly-ring.ts';

t.setTimeout(120_000);

/** Labelled counters exported from their first event on (asserted in test/state/governance.test.ts). */
const EVENT_ONLY = new Set([
  'tollgate_budget_exhausted_total',
  'tollgate_rate_limited_total',
  'tollgate_state_errors_total',
]);
/** Labels Prometheus adds to every scraped series (the target's). */
const TARGET_LABELS = new Set(['job', 'instance']);
const BUNDLE = join(ROOT, 'policies/dist/bundle.tar.gz');
const DASHBOARD = join(ROOT, 'deploy/grafana/tollgate-dashboard.json');

interface Panel {
  type: string;
  title: string;
  targets?: { expr: string; legendFormat?: string }[];
  panels?: Panel[];
}

const resolve = (port: number) =>
  Object.fromEntries(['payments.internal', 'hr.internal', 'mcp.internal'].map((h) => [`${h}:80`, `127.0.0.1:${port}`]));
const refund = (port: number, amount: number) =>
  viaProxy(port, {
    method: 'POST',
    url: 'http://payments.internal/v1/refunds',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ amount }),
  });
const BEHAVIOUR = {
  enabled: true,
  values: [{ name: 'refund_amount', from: 'body.amount', when: { path: '/v1/refunds' } }],
};

async function scrape(adminPort: number): Promise<ExpositionSample[]> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  // prom-client spells an event-loop gauge with no data "Nan" (Prometheus reads any case).
  return parseExposition(text.replace(/ Nan$/gm, ' NaN'));
}

/** Metric name → the label names its series carry (histograms: per _bucket/_sum/_count name). */
function catalogue(samples: readonly ExpositionSample[]): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const s of samples) {
    let labels = out.get(s.name);
    if (labels === undefined) out.set(s.name, (labels = new Set()));
    for (const l of Object.keys(s.labels)) labels.add(l);
  }
  return out;
}

t.test('every dashboard query names metrics and labels a running sidecar exports', async (t) => {
  const upstream = await startUpstream(t);
  const dir = await tempDir();
  const source = join(dir, 'bundle.tar.gz');
  await copyFile(BUNDLE, source);
  const closed = await buildBundle(
    { 'closed.rego': 'package tollgate.authz\n\ndecision := {"allowed": false, "reasons": ["closed"]}\n' },
    ['tollgate/authz/decision'],
    'closed',
  );

  // Sidecar 1: the seed policy from a polled bundle file, a shadow policy, behaviour signals.
  const tg = await startTollgate(t, {
    agent: { id: 'support-bot', role: 'support' },
    proxy: { resolve: resolve(upstream.port) },
    bundle: {
      source,
      minDelayMs: 50,
      maxDelayMs: 100,
      smoke: {
        input: {
          agent: { id: 'support-bot', role: 'support', labels: {} },
          attributes: { request: { http: { method: 'GET', host: 'crm.internal', path: '/', headers: {} } } },
          parsed_path: [],
          parsed_query: {},
        },
        expectAllowed: true,
      },
    },
    shadow: { bundle: BUNDLE },
    behaviour: BEHAVIOUR,
  });
  t.equal((await refund(tg.proxyPort, 10)).status, 200);
  t.equal((await refund(tg.proxyPort, 501)).status, 403);
  t.equal((await viaProxy(tg.proxyPort, { url: 'http://hr.internal/v1/employees' })).status, 403);
  const mcp = await viaProxy(tg.proxyPort, {
    method: 'POST',
    url: 'http://mcp.internal/mcp',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'delete_customer', arguments: {} },
    }),
  });
  t.match(mcp.body, /"error"/, 'the MCP tool call is denied as a JSON-RPC error');
  // A bundle that fails the smoke check replaces the file: it is rejected, the seed policy stays.
  await copyFile(closed, `${source}.tmp`);
  await rename(`${source}.tmp`, source);
  let samples = await scrape(tg.adminPort);
  for (const deadline = Date.now() + 20_000; Date.now() < deadline; samples = await scrape(tg.adminPort)) {
    if (samples.some((s) => s.name === 'tollgate_bundle_rejections_total')) break;
    await pollPause();
  }
  const all = [...samples];

  // Sidecar 2: a remote PDP that does not answer, fail-open for one host, closed for the rest.
  const failing = await startTollgate(t, {
    agent: { id: 'support-bot', role: 'support' },
    proxy: { resolve: resolve(upstream.port) },
    pdp: { type: 'extauthz', target: '127.0.0.1:9', timeoutMs: 200, failureModeAllowHosts: ['payments.internal'] },
  });
  t.equal((await refund(failing.proxyPort, 10)).status, 200, 'failure mode allow');
  t.equal((await viaProxy(failing.proxyPort, { url: 'http://hr.internal/v1/employees' })).status, 403);
  all.push(...(await scrape(failing.adminPort)));

  // Sidecar 3, in-process with a clock: baselines and ratios need an hour of history.
  let now = 1000 * HOUR_MS;
  const config = parseConfig(
    {
      agent: { id: 'support-bot', role: 'support' },
      proxy: { listen: '127.0.0.1:0', resolve: resolve(upstream.port) },
      admin: { listen: '127.0.0.1:0' },
      extAuthz: { enabled: false },
      behaviour: BEHAVIOUR,
    },
    {},
    'test',
  );
  const sidecar = await startSidecar(config, pino({ level: 'silent' }), { now: () => now });
  t.teardown(() => sidecar.close());
  t.equal((await refund(sidecar.addresses.proxy!.port, 10)).status, 200);
  now += 2 * HOUR_MS;
  t.equal((await refund(sidecar.addresses.proxy!.port, 20)).status, 200);
  all.push(...(await scrape(sidecar.addresses.admin.port)));

  const exported = catalogue(all);
  for (const name of ['tollgate_behaviour_ratio', 'tollgate_bundle_rejections_total', 'tollgate_pdp_errors_total'])
    t.ok(exported.has(name), `the scrapes carry ${name}`);

  const dashboard = JSON.parse(await readFile(DASHBOARD, 'utf8')) as {
    panels: Panel[];
    templating: { list: { name: string; type: string; query?: { query: string } | string }[] };
  };
  const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).filter((p) => p.type !== 'row');
  t.ok(panels.length >= 20, `${panels.length} panels`);
  const used = new Set<string>();
  const check = (where: string, expr: string, legend = ''): void => {
    const refs = promqlRefs(expr);
    const present: string[] = [];
    const labelsOf = new Set<string>(TARGET_LABELS);
    if (refs.metrics.size === 0) t.fail(`${where}: no metric in ${expr}`);
    for (const [metric, matchers] of refs.metrics) {
      used.add(metric);
      if (EVENT_ONLY.has(metric)) continue;
      const labels = exported.get(metric);
      if (labels === undefined) {
        t.fail(`${where}: ${metric} is not exported`);
        continue;
      }
      present.push(metric);
      for (const l of labels) labelsOf.add(l);
      for (const m of matchers) t.ok(labels.has(m) || TARGET_LABELS.has(m), `${where}: ${metric} has label ${m}`);
    }
    if (present.length === 0) return;
    for (const g of refs.groupings) t.ok(labelsOf.has(g), `${where}: grouping label ${g} exists`);
    for (const [, l] of legend.matchAll(/\{\{\s*(\w+)\s*\}\}/g))
      t.ok(labelsOf.has(l!), `${where}: legend label ${l} exists`);
  };
  for (const panel of panels) {
    t.ok(panel.targets !== undefined && panel.targets.length > 0, `${panel.title} has a query`);
    for (const target of panel.targets ?? []) check(panel.title, target.expr, target.legendFormat);
  }
  for (const variable of dashboard.templating.list.filter((v) => v.type === 'query')) {
    const query = typeof variable.query === 'string' ? variable.query : variable.query!.query;
    const m = /^label_values\((\w+),\s*(\w+)\)$/.exec(query);
    t.ok(m, `variable ${variable.name} is label_values(metric, label)`);
    if (m === null) continue;
    check(`variable ${variable.name}`, `sum by (${m[2]}) (${m[1]})`);
  }
  // The list stays honest: each entry is used by the dashboard and absent before its first event.
  for (const name of EVENT_ONLY) {
    t.ok(used.has(name), `${name} is on the dashboard`);
    t.notOk(exported.has(name), `${name} is not exported before its first event (else drop it from EVENT_ONLY)`);
  }
});
