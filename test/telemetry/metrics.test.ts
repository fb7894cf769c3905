/**
 * The Prometheus text after a known sequence of calls, parsed back: names, types,
 * labels and counts.
 */
import t from 'tap';
import { createMetrics } from '../../src/telemetry/metrics.ts';

interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** Parses the text exposition format (enough of it for these metrics). */
function parse(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.startsWith('# TYPE ')) {
      const [, , name, type] = line.split(' ');
      types.set(name!, type!);
      continue;
    }
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null) throw new Error(`unparseable line: ${line}`);
    const labels: Record<string, string> = {};
    for (const lm of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[lm[1]!] = lm[2]!.replace(/\\(.)/g, '$1');
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { samples, types };
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

t.test('counts decisions by outcome, agent, destination and tool after a known sequence of calls', async (t) => {
  const metrics = createMetrics({ processMetrics: false });
  const base = { agent: 'support-bot', destination: 'payments.internal:80', seconds: 0.0004 };
  metrics.recordDecision({ ...base, outcome: 'allow' });
  metrics.recordDecision({ ...base, outcome: 'allow' });
  metrics.recordDecision({ ...base, outcome: 'deny' });
  metrics.recordDecision({ ...base, outcome: 'deny', destination: 'mcp.internal:80', tool: 'delete_customer' });
  metrics.recordDecision({ ...base, outcome: 'error', errorCode: 'TG_ERR_PDP_TIMEOUT', seconds: 0.1 });
  metrics.recordDecision({ ...base, outcome: 'failure_mode_allowed', errorCode: 'TG_ERR_PDP_TIMEOUT', seconds: 0.1 });
  metrics.recordPdpError('TG_ERR_BUNDLE_INVALID');
  metrics.recordUpstream('payments.internal:80', 200, 0.02);
  metrics.recordUpstream('payments.internal:80', 502, 3);
  metrics.recordUpstream('payments.internal:80', undefined, 5);
  metrics.connectionOpened('proxy');
  metrics.connectionOpened('proxy');
  metrics.connectionClosed('proxy');
  metrics.setPolicy({ revision: 'rev-1', path: 'tollgate/authz/decision' });
  metrics.setPolicy({ revision: 'rev-2', path: 'tollgate/authz/decision' });
  metrics.recordDecisionLogDropped(3);
  metrics.recordDecisionLogDropped(0);

  t.match(metrics.contentType, /^text\/plain; version=0\.0\.4/);
  const { samples, types } = parse(await metrics.render());

  t.equal(types.get('tollgate_decisions_total'), 'counter');
  t.equal(types.get('tollgate_decision_duration_seconds'), 'histogram');
  t.equal(types.get('tollgate_upstream_duration_seconds'), 'histogram');
  t.equal(types.get('tollgate_pdp_errors_total'), 'counter');
  t.equal(types.get('tollgate_failure_mode_allowed_total'), 'counter');
  t.equal(types.get('tollgate_active_connections'), 'gauge');
  t.equal(types.get('tollgate_policy_info'), 'gauge');
  t.equal(types.get('tollgate_decision_log_dropped_total'), 'counter');

  const d = (labels: Record<string, string>): number | undefined => value(samples, 'tollgate_decisions_total', labels);
  t.equal(d({ decision: 'allow', agent: 'support-bot', destination: 'payments.internal:80', tool: '' }), 2);
  t.equal(d({ decision: 'deny', destination: 'payments.internal:80', tool: '' }), 1);
  t.equal(d({ decision: 'deny', destination: 'mcp.internal:80', tool: 'delete_customer' }), 1);
  t.equal(d({ decision: 'error' }), 1);
  t.equal(d({ decision: 'failure_mode_allowed' }), 1);

  t.equal(value(samples, 'tollgate_decision_duration_seconds_count', { decision: 'allow' }), 2);
  t.equal(value(samples, 'tollgate_decision_duration_seconds_bucket', { decision: 'allow', le: '0.0005' }), 2);
  t.equal(value(samples, 'tollgate_decision_duration_seconds_bucket', { decision: 'allow', le: '0.00025' }), 0);
  t.equal(
    value(samples, 'tollgate_upstream_duration_seconds_count', {
      destination: 'payments.internal:80',
      status_class: '2xx',
    }),
    1,
  );
  t.equal(value(samples, 'tollgate_upstream_duration_seconds_count', { status_class: '5xx' }), 1);
  t.equal(value(samples, 'tollgate_upstream_duration_seconds_count', { status_class: 'error' }), 1);

  t.equal(
    value(samples, 'tollgate_pdp_errors_total', { code: 'TG_ERR_PDP_TIMEOUT' }),
    2,
    'error and failure_mode_allowed both count as PDP errors',
  );
  t.equal(value(samples, 'tollgate_pdp_errors_total', { code: 'TG_ERR_BUNDLE_INVALID' }), 1);
  t.equal(value(samples, 'tollgate_failure_mode_allowed_total', { destination: 'payments.internal:80' }), 1);
  t.equal(value(samples, 'tollgate_active_connections', { listener: 'proxy' }), 1);
  t.equal(value(samples, 'tollgate_policy_info', { revision: 'rev-2', path: 'tollgate/authz/decision' }), 1);
  t.equal(
    value(samples, 'tollgate_policy_info', { revision: 'rev-1' }),
    undefined,
    'the previous revision series is gone',
  );
  t.equal(value(samples, 'tollgate_decision_log_dropped_total'), 3);
});

t.test('label values are escaped so a hostile agent id cannot forge series', async (t) => {
  const metrics = createMetrics({ processMetrics: false });
  metrics.recordDecision({ outcome: 'deny', agent: 'a"} 1\nx', destination: 'h:80', seconds: 0 });
  const text = await metrics.render();
  const { samples } = parse(text);
  t.equal(value(samples, 'tollgate_decisions_total', { decision: 'deny' }), 1);
  t.equal(samples.filter((s) => s.name === 'tollgate_decisions_total').length, 1);
});

t.test('two instances do not share series; process metrics are there by default', async (t) => {
  const a = createMetrics();
  const b = createMetrics({ processMetrics: false });
  a.recordDecision({ outcome: 'allow', agent: 'x', destination: 'h:80', seconds: 0 });
  t.match(await a.render(), /process_cpu_seconds_total/);
  t.equal(value(parse(await b.render()).samples, 'tollgate_decisions_total'), undefined);
});

t.test('denials count their reasons with numbers replaced, so amounts do not make new series', async (t) => {
  const metrics = createMetrics({ processMetrics: false });
  for (const amount of [600, 750.5])
    metrics.recordDecision({
      outcome: 'deny',
      agent: 'cs',
      destination: 'payments.internal:80',
      seconds: 0,
      reasons: [`refund of ${amount} exceeds the support limit of 500`, 'agent cs is not registered'],
    });
  metrics.recordDecision({ outcome: 'allow', agent: 'cs', destination: 'x:80', seconds: 0, reasons: ['ignored'] });
  const { samples } = parse(await metrics.render());
  const reasons = samples.filter((s) => s.name === 'tollgate_deny_reasons_total');
  t.same(
    reasons.map((s) => [s.labels.reason, s.value]),
    [
      ['refund of # exceeds the support limit of #', 2],
      ['agent cs is not registered', 2],
    ],
  );
});
