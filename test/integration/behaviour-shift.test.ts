// A scripted trading agent keeps a steady day of orders, then its amounts jump. Through a
// real sidecar (in-process, its behaviour clock moved through the day): a Rego rule using
// input.behaviour, compiled by the real opa, starts denying once the order notional this
// hour passes four times the agent's hourly average; and the alert
// TollgateAgentValueAboveBaseline of deploy/prometheus/tollgate-rules.yaml, run by the real
// promtool on the series the sidecar's /metrics exported minute by minute, fires.
import t from 'tap';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { parse } from 'yaml';
import { ROOT, buildBundle, startUpstream, tempDir, viaProxy } from '../helpers/processes.ts';
import { parseConfig } from '../../src/config/load.ts';
import { startSidecar } from '../../src/sidecar.ts';
import { HOUR_MS } from '../../src/behaviour/hourly-ring.ts';

t.setTimeout(180_000);

const run = promisify(execFile);
const PROMTOOL = join(ROOT, '.tools/bin/promtool');
const RULES = join(ROOT, 'deploy/prometheus/tollgate-rules.yaml');
const ALERT = 'TollgateAgentValueAboveBaseline';
const MINUTE = 60_000;

const POLICY = `package tollgate.authz

import rego.v1

# Deny an order when this agent's order notional over the last hour (this order included)
# is over four times its hourly average, once there are at least 12 hours of baseline.
deny contains msg if {
	v := input.behaviour.values.order_notional
	v.baseline_hours >= 12
	v.ratio > 4
	msg := sprintf("order notional this hour (%v) is over four times the hourly average (%v)", [v.hour, v.baseline_hourly_avg])
}

decision := {"allowed": count(deny) == 0, "reasons": sort(deny)}
`;

t.test('an agent whose order amounts jump is denied by input.behaviour and raises the alert', async (t) => {
  const upstream = await startUpstream(t);
  const bundle = await buildBundle({ 'behaviour.rego': POLICY }, ['tollgate/authz/decision'], 'behaviour-test');
  let now = 1000 * HOUR_MS;
  const config = parseConfig(
    {
      agent: { id: 'trader-1', role: 'trading' },
      pdp: { bundle },
      proxy: { listen: '127.0.0.1:0', resolve: { 'orders.internal:80': `127.0.0.1:${upstream.port}` } },
      admin: { listen: '127.0.0.1:0' },
      extAuthz: { enabled: false },
      behaviour: {
        enabled: true,
        values: [
          {
            name: 'order_notional',
            from: ['body.quantity', 'body.price'],
            when: { method: 'POST', path: '/v1/orders' },
          },
        ],
      },
    },
    {},
    'test',
  );
  const sidecar = await startSidecar(config, pino({ level: 'silent' }), { now: () => now });
  t.teardown(() => sidecar.close());
  const order = (quantity: number) =>
    viaProxy(sidecar.addresses.proxy!.port, {
      method: 'POST',
      url: 'http://orders.internal/v1/orders',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ symbol: 'ACME', quantity, price: 100 }),
    });
  /** The order_notional ratio and hour the sidecar exports now (undefined while absent). */
  const scrape = async (): Promise<{ ratio?: number; hour?: number }> => {
    const text = await (await fetch(`http://127.0.0.1:${sidecar.addresses.admin.port}/metrics`)).text();
    const value = (name: string) => {
      const m = new RegExp(`^${name}\\{agent="trader-1",signal="order_notional"\\} (\\S+)$`, 'm').exec(text);
      return m === null ? undefined : Number(m[1]);
    };
    const ratio = value('tollgate_behaviour_ratio');
    const hour = value('tollgate_behaviour_hour');
    return { ...(ratio === undefined ? {} : { ratio }), ...(hour === undefined ? {} : { hour }) };
  };

  // A steady day: five orders of 100 an hour, every one allowed.
  for (let h = 0; h < 24; h++)
    for (let i = 0; i < 5; i++) {
      now = (1000 + h) * HOUR_MS + i * 10 * MINUTE;
      const reply = await order(1);
      if (reply.status !== 200) t.fail(`steady order ${h}:${i} answered ${reply.status}: ${reply.body}`);
    }
  // Ten minutes of scrapes before the shift, one a minute.
  const series: { ratio: number; hour: number }[] = [];
  for (let m = 0; m < 10; m++) {
    now = 1024 * HOUR_MS + m * MINUTE;
    const s = await scrape();
    t.ok(s.ratio !== undefined && s.ratio <= 1, `minute ${m}: ratio ${s.ratio} within the baseline`);
    series.push({ ratio: s.ratio ?? 0, hour: s.hour ?? 0 });
  }
  // The shift: orders of 1,500. The first still fits four hourly averages; the next do not.
  now = 1024 * HOUR_MS + 10 * MINUTE;
  t.equal((await order(15)).status, 200, 'the first larger order is within four times the average');
  const denied: string[] = [];
  for (let m = 10; m < 20; m++) {
    now = 1024 * HOUR_MS + m * MINUTE + 30_000;
    const reply = await order(15);
    if (reply.status === 403) denied.push((JSON.parse(reply.body) as { reasons: string[] }).reasons[0]!);
    now = 1024 * HOUR_MS + (m + 1) * MINUTE;
    const s = await scrape();
    series.push({ ratio: s.ratio ?? 0, hour: s.hour ?? 0 });
  }
  t.equal(denied.length, 10, 'every later order is denied by the behaviour rule');
  t.match(denied[0], /^order notional this hour \(\d+(\.\d+)?\) is over four times the hourly average \(500\)$/);
  t.ok(series.at(-1)!.ratio > 4, `the exported ratio is ${series.at(-1)!.ratio}`);

  // The alert, as Prometheus would evaluate it on these scrapes (one a minute).
  const rules = parse(await readFile(RULES, 'utf8')) as {
    groups: { rules: { alert?: string; labels?: Record<string, string>; annotations: Record<string, string> }[] }[];
  };
  const rule = rules.groups.flatMap((g) => g.rules).find((r) => r.alert === ALERT)!;
  const labels = { agent: 'trader-1', signal: 'order_notional', job: 'tollgate', instance: 'sidecar' };
  const render = (text: string) =>
    text.replace(/\{\{ \$labels\.(\w+) \}\}/g, (_, l: string) => labels[l as keyof typeof labels] ?? '');
  const selector = `{agent="trader-1",signal="order_notional",job="tollgate",instance="sidecar"}`;
  const unitTest = {
    rule_files: [RULES],
    evaluation_interval: '1m',
    tests: [
      {
        interval: '1m',
        input_series: [
          { series: `tollgate_behaviour_ratio${selector}`, values: series.map((s) => String(s.ratio)).join(' ') },
          { series: `tollgate_behaviour_hour${selector}`, values: series.map((s) => String(s.hour)).join(' ') },
        ],
        alert_rule_test: [
          { eval_time: '9m', alertname: ALERT, exp_alerts: [] },
          {
            eval_time: `${series.length - 1}m`,
            alertname: ALERT,
            exp_alerts: [
              {
                exp_labels: { ...labels, ...rule.labels },
                exp_annotations: Object.fromEntries(Object.entries(rule.annotations).map(([k, v]) => [k, render(v)])),
              },
            ],
          },
        ],
      },
    ],
  };
  const file = join(await tempDir(), 'shift.test.yaml');
  await writeFile(file, JSON.stringify(unitTest));
  const result = await run(PROMTOOL, ['test', 'rules', file]).then(
    (r) => ({ code: 0, out: r.stdout }),
    (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, out: err.stdout + err.stderr }),
  );
  t.equal(result.code, 0, result.out);
  t.match(result.out, /SUCCESS/);
});
