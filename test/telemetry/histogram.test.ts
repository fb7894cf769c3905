/**
 * The request path's histogram against prom-client's own: the same observations in two
 * registries render the same /metrics text, byte for byte, in the Prometheus and the
 * OpenMetrics format, and the same JSON (registry.getMetricsAsJSON).
 */
import t from 'tap';
import fc from 'fast-check';
import { Histogram as PromHistogram, Registry } from 'prom-client';
import { Histogram } from '../../src/telemetry/histogram.ts';

const labelNames = ['destination', 'status_class'] as const;

const observation = fc.record({
  labels: fc.record({
    destination: fc.constantFrom('payments.internal', 'a"b\\c', 'line\nbreak', '', '__other__'),
    status_class: fc.constantFrom('2xx', '5xx', 'error'),
  }),
  value: fc.oneof(fc.double({ min: 0, max: 20, noNaN: true }), fc.constantFrom(0, 0.0005, 0.001, 1, 10, 1e-9, 1e6)),
});

const bounds = fc
  .uniqueArray(fc.double({ min: 1e-6, max: 15, noNaN: true }), { minLength: 1, maxLength: 14 })
  .map((xs) => [...xs].sort((a, b) => a - b));

t.test('renders what prom-client renders for the same observations', async (t) => {
  await fc.assert(
    fc.asyncProperty(bounds, fc.array(observation, { maxLength: 300 }), async (buckets, observations) => {
      const theirs = new Registry();
      const ours = new Registry();
      const prom = new PromHistogram({
        name: 'h_seconds',
        help: 'help "text"\\',
        labelNames,
        buckets,
        registers: [theirs],
      });
      const lean = new Histogram({ name: 'h_seconds', help: 'help "text"\\', labelNames, buckets, registers: [ours] });
      const series = new Map<string, ReturnType<Histogram['series']>>();
      for (const [i, { labels, value: drawn }] of observations.entries()) {
        // Every third value sits exactly on a bound (it counts in that bucket, not the next).
        const value = i % 3 === 0 ? buckets[i % buckets.length]! : drawn;
        prom.labels(labels).observe(value);
        const key = `${labels.destination}\u0000${labels.status_class}`;
        let s = series.get(key);
        if (s === undefined) series.set(key, (s = lean.series(labels)));
        s.observe(value);
      }
      if ((await ours.metrics()) !== (await theirs.metrics())) return false;
      t.same(await ours.getMetricsAsJSON(), await theirs.getMetricsAsJSON());
      const openMetrics = Registry.OPENMETRICS_CONTENT_TYPE as typeof Registry.PROMETHEUS_CONTENT_TYPE;
      ours.setContentType(openMetrics);
      theirs.setContentType(openMetrics);
      return (await ours.metrics()) === (await theirs.metrics());
    }),
    { numRuns: 150 },
  );
});

t.test('reset empties the exposition; the series count again after it', async (t) => {
  const registry = new Registry();
  const h = new Histogram({
    name: 'd_seconds',
    help: 'h',
    labelNames: ['decision'],
    buckets: [0.1, 1],
    registers: [registry],
  });
  const allow = h.series({ decision: 'allow' });
  allow.observe(0.05);
  allow.observe(5);
  const before = await registry.metrics();
  t.match(before, /d_seconds_bucket\{le="0.1",decision="allow"\} 1\n/);
  t.match(before, /d_seconds_bucket\{le="1",decision="allow"\} 1\n/);
  t.match(before, /d_seconds_bucket\{le="\+Inf",decision="allow"\} 2\n/);
  t.match(before, /d_seconds_sum\{decision="allow"\} 5.05\n/);
  registry.resetMetrics();
  t.notMatch(await registry.metrics(), /decision="allow"/);
  allow.observe(0.5);
  t.match(await registry.metrics(), /d_seconds_count\{decision="allow"\} 1\n/);
});

t.test('refuses the reserved label le and bounds that are not ascending', async (t) => {
  const registers = [new Registry()];
  t.throws(
    () => new Histogram({ name: 'x', help: 'h', labelNames: ['le'], buckets: [1], registers }),
    /le is a reserved label name/,
  );
  t.throws(() => new Histogram({ name: 'y', help: 'h', labelNames: [], buckets: [1, 1], registers }), /ascending/);
});
