// Behaviour signals with an injected clock: hourly rings, the agent's own baseline,
// values that jump, new destinations and tools, eviction past maxAgents, the config
// section through the real loader, and the PDP seen through the tracker.
import t from 'tap';
import { buildInput, type PolicyInput } from '../../src/input/build.ts';
import { normalizeRequest } from '../../src/http/normalize.ts';
import { createBehaviourTracker, watchBehaviour, type BehaviourDocument } from '../../src/behaviour/tracker.ts';
import { HOUR_MS, addToRing, createHourlyRing, readRing } from '../../src/behaviour/hourly-ring.ts';
import { compileValueSignal } from '../../src/behaviour/value-signals.ts';
import { parseConfig } from '../../src/config/load.ts';
import { createMetrics } from '../../src/telemetry/metrics.ts';
import type { Decision, Pdp } from '../../src/pdp/types.ts';

function input(agent: string, method: string, url: string, body?: unknown): PolicyInput {
  const target = new URL(url);
  const bytes = Buffer.from(body === undefined ? '' : JSON.stringify(body));
  const headers: Record<string, string> = { host: target.host };
  if (body !== undefined) headers['content-type'] = 'application/json';
  return buildInput(
    normalizeRequest({
      id: '1',
      method,
      target: url,
      httpVersion: '1.1',
      scheme: 'http',
      rawHeaders: Object.entries(headers).flat(),
      source: { address: '127.0.0.1', port: 1 },
      destination: { address: '127.0.0.1', port: 2 },
    }),
    { bytes, truncated: false },
    { id: agent, role: 'trader', labels: {} },
    0,
  );
}

const behaviourOf = (i: PolicyInput): BehaviourDocument =>
  (i as PolicyInput & { behaviour: BehaviourDocument }).behaviour;

const ORDER = {
  name: 'order_notional',
  from: ['body.quantity', 'body.price'],
  when: { method: 'POST', path: '/v1/orders' },
};

t.test('an hourly ring slides its last hour and averages only the hours the agent existed', async (t) => {
  const start = 100 * HOUR_MS;
  const ring = createHourlyRing(3, start);
  addToRing(ring, start, 10);
  let r = readRing(ring, start + HOUR_MS / 2, 100);
  t.same(r, { hour: 10, baselineHourlyAvg: undefined, baselineHours: 0 });
  addToRing(ring, start + HOUR_MS, 4);
  r = readRing(ring, start + 1.5 * HOUR_MS, 100);
  t.equal(r.hour, 4 + 10 * 0.5, 'half of the previous hour still counts');
  t.equal(r.baselineHourlyAvg, 10);
  t.equal(r.baselineHours, 1);
  // Five hours later the ring (3 complete hours) has forgotten both buckets.
  r = readRing(ring, start + 6 * HOUR_MS, 100);
  t.same(r, { hour: 0, baselineHourlyAvg: 0, baselineHours: 3 });
});

t.test('a value signal measures only the requests it names, and multiplies its paths', async (t) => {
  const signal = compileValueSignal(ORDER);
  t.equal(signal.measure(input('a', 'POST', 'http://orders.internal/v1/orders', { quantity: -10, price: '2.5' })), 25);
  t.equal(signal.measure(input('a', 'GET', 'http://orders.internal/v1/orders')), undefined);
  t.equal(signal.measure(input('a', 'POST', 'http://orders.internal/v1/other', { quantity: 1, price: 1 })), undefined);
  t.equal(
    signal.measure(input('a', 'POST', 'http://orders.internal/v1/orders', { quantity: 'x', price: 1 })),
    undefined,
  );
  const refunds = compileValueSignal({ name: 'refund', from: 'body.amount', when: { host: 'pay*' } });
  t.equal(refunds.measure(input('a', 'POST', 'http://payments.internal:8080/r', { amount: 7 })), 7);
  t.equal(refunds.measure(input('a', 'POST', 'http://crm.internal/r', { amount: 7 })), undefined);
});

t.test('an order notional that jumps reads as a ratio far above the agent baseline', async (t) => {
  let now = 1000 * HOUR_MS;
  const tracker = createBehaviourTracker({
    maxAgents: 10,
    baselineHours: 168,
    maxDestinationsPerAgent: 8,
    maxToolsPerAgent: 8,
    values: [ORDER],
    now: () => now,
  });
  // A day of steady trading: 10 orders of 100 an hour.
  for (let h = 0; h < 24; h++) {
    for (let i = 0; i < 10; i++) {
      now = (1000 + h) * HOUR_MS + i * 60_000;
      tracker
        .observe(input('trader-1', 'POST', 'http://orders.internal/v1/orders', { quantity: 1, price: 100 }))
        .settle('allow');
    }
  }
  now = 1024 * HOUR_MS + 30 * 60_000;
  const big = input('trader-1', 'POST', 'http://orders.internal/v1/orders', { quantity: 100, price: 100 });
  const watch = tracker.observe(big);
  const doc = behaviourOf(big);
  const notional = doc.values.order_notional!;
  t.equal(notional.value, 10_000);
  t.equal(notional.baseline_hours, 24);
  t.equal(notional.baseline_hourly_avg, 1000);
  // The previous hour still counts half (500) plus this order.
  t.equal(notional.hour, 10_500);
  t.ok(notional.ratio! > 4, 'the jump is over four times the baseline');
  t.equal(doc.calls.baseline_hourly_avg, 10);
  t.equal(doc.destination.new, false);
  watch.settle('deny');
  const after = input('trader-1', 'GET', 'http://orders.internal/v1/orders/1');
  tracker.observe(after).settle('allow');
  t.equal(behaviourOf(after).denies.hour, 1, 'the denial is counted');
  t.equal(
    behaviourOf(after).values.order_notional!.hour,
    10_500,
    'a denied order still counts: the agent asked for it',
  );
  t.equal(behaviourOf(after).values.order_notional!.value, undefined);
});

t.test('new destinations and tools are flagged, and counted after the learning hour', async (t) => {
  let now = 50 * HOUR_MS;
  const tracker = createBehaviourTracker({
    maxAgents: 10,
    baselineHours: 24,
    maxDestinationsPerAgent: 2,
    maxToolsPerAgent: 2,
    values: [],
    now: () => now,
  });
  const first = input('bot', 'GET', 'http://a.internal/');
  tracker.observe(first).settle('allow');
  t.equal(behaviourOf(first).destination.new, true);
  const again = input('bot', 'GET', 'http://a.internal/');
  tracker.observe(again).settle('allow');
  t.equal(behaviourOf(again).destination.new, false);
  now += 2 * HOUR_MS;
  const later = input('bot', 'GET', 'http://b.internal/');
  tracker.observe(later).settle('deny');
  t.same(behaviourOf(later).destination, { name: 'b.internal', new: true, seen: 1 });
  const [series] = [...tracker.behaviourSeries()];
  t.equal(series!.newDestinations, 1, 'only the destination after the first hour counts');
  // Past maxDestinationsPerAgent a destination is never remembered, so it stays new.
  for (let i = 0; i < 2; i++) {
    const over = input('bot', 'GET', 'http://c.internal/');
    tracker.observe(over).settle('allow');
    t.equal(behaviourOf(over).destination.new, true);
  }
});

t.test('past maxAgents the least recently seen agent is forgotten', async (t) => {
  const tracker = createBehaviourTracker({
    maxAgents: 2,
    baselineHours: 24,
    maxDestinationsPerAgent: 2,
    maxToolsPerAgent: 2,
    values: [],
    now: () => 0,
  });
  for (const agent of ['a', 'b', 'a', 'c']) tracker.observe(input(agent, 'GET', 'http://x.internal/')).settle('allow');
  t.same(
    [...tracker.behaviourSeries()].map((s) => s.agent),
    ['a', 'c'],
  );
  t.equal(tracker.behaviourAgents(), 2);
  t.equal(tracker.behaviourEvicted(), 1);
});

t.test('the metrics export the signals with agent and signal labels', async (t) => {
  let now = 10 * HOUR_MS;
  const tracker = createBehaviourTracker({
    maxAgents: 2,
    baselineHours: 24,
    maxDestinationsPerAgent: 2,
    maxToolsPerAgent: 2,
    values: [ORDER],
    now: () => now,
  });
  tracker.observe(input('t1', 'POST', 'http://orders.internal/v1/orders', { quantity: 2, price: 50 })).settle('allow');
  now += HOUR_MS;
  tracker.observe(input('t1', 'POST', 'http://orders.internal/v1/orders', { quantity: 4, price: 50 })).settle('allow');
  // At the hour boundary the whole previous hour still counts: 200 + 100.
  const metrics = createMetrics({ processMetrics: false });
  metrics.observeBehaviour(tracker);
  const text = await metrics.render();
  t.match(text, /tollgate_behaviour_hour\{agent="t1",signal="order_notional"\} 300\n/);
  t.match(text, /tollgate_behaviour_baseline_hourly_avg\{agent="t1",signal="order_notional"\} 100\n/);
  t.match(text, /tollgate_behaviour_ratio\{agent="t1",signal="order_notional"\} 3\n/);
  t.match(text, /tollgate_behaviour_agents 1\n/);
});

t.test('the PDP seen through the tracker records its answer, or an error', async (t) => {
  const tracker = createBehaviourTracker({
    maxAgents: 2,
    baselineHours: 24,
    maxDestinationsPerAgent: 2,
    maxToolsPerAgent: 2,
    values: [],
    now: () => 0,
  });
  let fail = false;
  const pdp: Pick<Pdp, 'decide' | 'info'> = {
    info: () => undefined,
    async decide(i, decisionId) {
      if (fail) throw new Error('down');
      t.ok(behaviourOf(i), 'the policy sees input.behaviour');
      return {
        allowed: false,
        reasons: [],
        decisionId,
        revision: '',
        evalNanos: 0,
        result: false,
      } as unknown as Decision;
    },
  };
  const watched = watchBehaviour(pdp, tracker);
  t.equal(watchBehaviour(pdp, undefined), pdp);
  await watched.decide(input('a', 'GET', 'http://x.internal/'), '1');
  fail = true;
  await t.rejects(watched.decide(input('a', 'GET', 'http://x.internal/'), '2'));
  const probe = input('a', 'GET', 'http://x.internal/');
  tracker.observe(probe);
  t.equal(behaviourOf(probe).calls.hour, 3, 'both calls and this one');
  t.equal(behaviourOf(probe).denies.hour, 1, 'the error is not a denial');
});

t.test('the behaviour section is off by default and validated by the loader', async (t) => {
  const defaults = parseConfig({}, {}, 'test');
  t.equal(defaults.behaviour.enabled, false);
  t.equal(defaults.behaviour.baselineHours, 168);
  const on = parseConfig({ behaviour: { enabled: true, values: [ORDER] } }, {}, 'test');
  t.same(on.behaviour.values[0]!.from, ['body.quantity', 'body.price']);
  t.throws(
    () =>
      parseConfig(
        {
          behaviour: {
            values: [
              { name: 'x', from: 'body.a' },
              { name: 'x', from: 'body.b' },
            ],
          },
        },
        {},
        'test',
      ),
    { code: 'TG_ERR_CONFIG_INVALID' },
  );
  t.throws(() => parseConfig({ behaviour: { surprise: 1 } }, {}, 'test'), { code: 'TG_ERR_CONFIG_INVALID' });
});
