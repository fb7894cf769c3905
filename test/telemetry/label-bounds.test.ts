/**
 * Label values that come from the agent (destination, MCP tool, agent id) are bounded:
 * the first maxLabelValues distinct values keep their own series, later ones count
 * under "__other__", the overflow is counted, and the exposition stays valid.
 */
import t from 'tap';
import { createMetrics, OVERFLOW_LABEL_VALUE, sanitizeLabelValue } from '../../src/telemetry/metrics.ts';
import { labelValues, parseExposition, sum } from './exposition.ts';

t.test('10,000 distinct destinations and tools keep at most cap + 1 values per label', async (t) => {
  const cap = 100;
  const metrics = createMetrics({ processMetrics: false, maxLabelValues: cap, maxSeriesPerMetric: 1_000_000 });
  for (let i = 0; i < 10_000; i++) {
    metrics.recordDecision({
      outcome: i % 3 === 0 ? 'allow' : 'deny',
      agent: 'support-bot',
      destination: `h${i}.example:443`,
      tool: `tool_${i}`,
      seconds: 0.0001,
    });
    metrics.recordUpstream(`h${i}.example:443`, 200, 0.001);
  }
  const samples = parseExposition(await metrics.render());
  const destinations = labelValues(samples, 'tollgate_decisions_total', 'destination');
  const tools = labelValues(samples, 'tollgate_decisions_total', 'tool');
  t.equal(destinations.size, cap + 1, 'cap destinations plus the overflow value');
  t.equal(tools.size, cap + 1, 'cap tools plus the overflow value');
  t.ok(destinations.has(OVERFLOW_LABEL_VALUE));
  t.ok(
    destinations.has('h0.example:443') && destinations.has(`h${cap - 1}.example:443`),
    'the first values keep their series',
  );
  t.notOk(destinations.has(`h${cap}.example:443`), 'the value past the cap has none');
  t.equal(labelValues(samples, 'tollgate_upstream_duration_seconds_count', 'destination').size, cap + 1);

  t.equal(sum(samples, 'tollgate_decisions_total'), 10_000, 'every decision is still counted');
  t.equal(sum(samples, 'tollgate_decisions_total', { destination: OVERFLOW_LABEL_VALUE }), 10_000 - cap);
  t.equal(sum(samples, 'tollgate_metric_label_overflow_total', { label: 'tool' }), 10_000 - cap);
  // Decisions and upstream round trips both recorded each destination past the cap.
  t.equal(sum(samples, 'tollgate_metric_label_overflow_total', { label: 'destination' }), 2 * (10_000 - cap));
  t.equal(sum(samples, 'tollgate_metric_label_overflow_total', { label: 'agent' }), 0);
  t.equal(sum(samples, 'tollgate_metric_label_values', { label: 'destination' }), cap);
  t.equal(sum(samples, 'tollgate_metric_label_values', { label: 'agent' }), 1);
});

t.test('agent ids past the cap count under the overflow value', async (t) => {
  const metrics = createMetrics({ processMetrics: false, maxLabelValues: 3 });
  for (const agent of ['a', 'b', 'c', 'd', 'e', 'a', 'e'])
    metrics.recordDecision({ outcome: 'deny', agent, destination: 'h:80', seconds: 0 });
  const samples = parseExposition(await metrics.render());
  t.same([...labelValues(samples, 'tollgate_decisions_total', 'agent')].sort(), ['__other__', 'a', 'b', 'c']);
  t.equal(sum(samples, 'tollgate_decisions_total', { agent: 'a' }), 2);
  t.equal(sum(samples, 'tollgate_decisions_total', { agent: OVERFLOW_LABEL_VALUE }), 3, 'd, e and e again');
  t.equal(sum(samples, 'tollgate_metric_label_overflow_total', { label: 'agent' }), 3);
});

t.test(
  'a new label combination past the series cap is counted with the bounded labels set to the overflow value',
  async (t) => {
    const metrics = createMetrics({ processMetrics: false, maxLabelValues: 100, maxSeriesPerMetric: 50 });
    // 10 destinations × 10 tools = 100 combinations, each under its label's cap.
    for (let d = 0; d < 10; d++)
      for (let k = 0; k < 10; k++)
        metrics.recordDecision({ outcome: 'allow', agent: 'x', destination: `h${d}:80`, tool: `t${k}`, seconds: 0 });
    const samples = parseExposition(await metrics.render());
    const series = samples.filter((s) => s.name === 'tollgate_decisions_total');
    t.equal(series.length, 51, '50 combinations plus the overflow series');
    t.equal(
      sum(samples, 'tollgate_decisions_total', {
        agent: OVERFLOW_LABEL_VALUE,
        destination: OVERFLOW_LABEL_VALUE,
        tool: OVERFLOW_LABEL_VALUE,
      }),
      50,
    );
    t.equal(sum(samples, 'tollgate_decisions_total'), 100);
    t.equal(sum(samples, 'tollgate_metric_label_overflow_total', { label: 'series' }), 50);
  },
);

t.test('label values are cut to the length cap, control characters replaced, surrogate pairs kept whole', async (t) => {
  t.equal(sanitizeLabelValue('a'.repeat(500), 128).length, 128);
  t.equal(sanitizeLabelValue('ok\u0000\u001b[31m\u0085x', 128), 'ok\ufffd\ufffd[31m\ufffdx');
  const emoji = `${'a'.repeat(127)}\u{1F600}`;
  t.equal(sanitizeLabelValue(emoji, 128), 'a'.repeat(127), 'half a surrogate pair is dropped, not emitted');
  t.equal(sanitizeLabelValue('payments.internal:80', 128), 'payments.internal:80');

  const metrics = createMetrics({ processMetrics: false, maxLabelValueLength: 32 });
  const long = `${'x'.repeat(40)}.example:80`;
  metrics.recordDecision({
    outcome: 'deny',
    agent: 'bot\r\n} 1\n# TYPE',
    destination: long,
    tool: 'a"b\\c',
    seconds: 0,
  });
  const samples = parseExposition(await metrics.render());
  const s = samples.find((x) => x.name === 'tollgate_decisions_total')!;
  t.equal(s.labels.destination, 'x'.repeat(32));
  t.equal(s.labels.agent, 'bot\ufffd\ufffd} 1\ufffd# TYPE');
  t.equal(s.labels.tool, 'a"b\\c', 'quotes and backslashes survive escaped');
});

t.test('a tool literally named like the overflow value joins the overflow series without taking a slot', async (t) => {
  const metrics = createMetrics({ processMetrics: false, maxLabelValues: 2 });
  for (const tool of ['__other__', 'a', 'b', 'c'])
    metrics.recordDecision({ outcome: 'allow', agent: 'x', destination: 'h:80', tool, seconds: 0 });
  const samples = parseExposition(await metrics.render());
  t.same([...labelValues(samples, 'tollgate_decisions_total', 'tool')].sort(), ['__other__', 'a', 'b']);
  t.equal(sum(samples, 'tollgate_decisions_total', { tool: OVERFLOW_LABEL_VALUE }), 2);
  t.equal(sum(samples, 'tollgate_metric_label_overflow_total', { label: 'tool' }), 1, 'only c overflowed');
});

t.test('the overflow counters are exported at 0 before any overflow', async (t) => {
  const samples = parseExposition(await createMetrics({ processMetrics: false }).render());
  for (const label of ['agent', 'destination', 'tool', 'series']) {
    t.equal(
      samples.find((s) => s.name === 'tollgate_metric_label_overflow_total' && s.labels.label === label)?.value,
      0,
      label,
    );
  }
});
