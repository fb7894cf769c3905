// One suite, two stores: the in-memory store and the Redis store's Lua scripts (a real
// redis-server) must agree on every budget, rate and approval rule. Time is a test clock
// both stores are given (Redis scripts take it as an argument instead of TIME).
import t from 'tap';
import { createMemoryStore } from '../../src/state/memory-store.ts';
import { createRedisStore } from '../../src/state/redis-store.ts';
import type { ApprovalRequest, StateStore } from '../../src/state/types.ts';
import { startRedis } from '../helpers/redis.ts';
import type { TestLike } from '../helpers/processes.ts';

const T0 = 1_764_000_000_000;
const HOUR = 3_600_000;

type Factory = (t: TestLike, clock: { now: number }) => Promise<StateStore>;

const server = await startRedis(t);

const memory: Factory = async (t, clock) => {
  const store = createMemoryStore({ now: () => clock.now });
  t.teardown(() => store.close());
  return store;
};

let prefixes = 0;
const redis: Factory = async (t, clock) => {
  const store = await createRedisStore({
    url: server.url,
    keyPrefix: `test${++prefixes}:`,
    connections: 1,
    timeoutMs: 1000,
    circuitBreaker: { failureThreshold: 5, openMs: 1000 },
    now: () => clock.now,
  });
  t.teardown(() => store.close());
  return store;
};

const budget = (key: string, cost: number, limit = 2000, windowMs = 24 * HOUR) => ({
  key,
  cost,
  limit,
  windowMs,
  chargeId: `c-${Math.random().toString(36).slice(2)}`,
});

const approvalRequest = (id: string, extra: Partial<ApprovalRequest> = {}): ApprovalRequest => ({
  id,
  agent: 'billing-bot',
  method: 'POST',
  authority: 'payments.internal',
  path: '/v1/refunds',
  digest: 'd1',
  body_digest: 'b1',
  reasons: ['refund of 900 is above the billing limit of 500'],
  approvers: ['cfo'],
  decision_id: 'dec-1',
  ttl_ms: HOUR,
  uses: 1,
  ...extra,
});

for (const [name, factory] of [
  ['memory', memory],
  ['redis', redis],
] as const) {
  t.test(`${name} store`, async (t) => {
    t.test('charges a budget up to its limit and refuses the charge that would pass it', async (t) => {
      const clock = { now: T0 };
      const store = await factory(t, clock);
      for (let i = 0; i < 20; i++) t.ok((await store.consume([budget('refunds:a', 100)], [])).ok);
      const refused = await store.consume([budget('refunds:a', 100)], []);
      t.match(refused, { ok: false, kind: 'budget', index: 0, level: 2000 });
      t.same(await store.usage([{ key: 'refunds:a', windowMs: 24 * HOUR }]), [2000]);
    });

    t.test('consumes all budgets and rates or none of them', async (t) => {
      const clock = { now: T0 };
      const store = await factory(t, clock);
      t.ok((await store.consume([budget('b:big', 10, 100)], [])).ok);
      const result = await store.consume(
        [budget('b:big', 50, 100), budget('b:small', 6, 5)],
        [{ key: 'r:1', rate: 1, burst: 1 }],
      );
      t.match(result, { ok: false, kind: 'budget', index: 1 });
      t.same(await store.usage([{ key: 'b:big', windowMs: 24 * HOUR }]), [10], 'the first budget was not charged');
      const rated = await store.consume([budget('b:big', 50, 100)], [{ key: 'r:1', rate: 1, burst: 1 }]);
      t.match(rated, { ok: true, used: [60], tokens: [0] }, 'the bucket still had its token');
      const limited = await store.consume([budget('b:big', 1, 100)], [{ key: 'r:1', rate: 1, burst: 1 }]);
      t.match(limited, { ok: false, kind: 'rate', index: 0 });
      t.same(await store.usage([{ key: 'b:big', windowMs: 24 * HOUR }]), [60], 'a refused rate charges no budget');
    });

    t.test('lets charges leave a rolling window and says when there will be room', async (t) => {
      const clock = { now: T0 };
      const store = await factory(t, clock);
      t.ok((await store.consume([budget('w', 60, 100, HOUR)], [])).ok);
      clock.now = T0 + HOUR / 2;
      t.ok((await store.consume([budget('w', 40, 100, HOUR)], [])).ok);
      const refused = await store.consume([budget('w', 50, 100, HOUR)], []);
      t.match(refused, { ok: false, level: 100 });
      // The first charge (60) leaves the window at T0 + 1 h: then 50 fits.
      t.equal((refused as { retryAfterMs: number }).retryAfterMs, HOUR / 2 + 1);
      clock.now = T0 + HOUR + 1;
      t.same(await store.usage([{ key: 'w', windowMs: HOUR }]), [40]);
      t.ok((await store.consume([budget('w', 50, 100, HOUR)], [])).ok);
    });

    t.test('adds money amounts without floating-point refusals', async (t) => {
      const store = await factory(t, { now: T0 });
      t.ok((await store.consume([budget('f', 0.1, 0.3)], [])).ok);
      t.ok((await store.consume([budget('f', 0.2, 0.3)], [])).ok, '0.1 + 0.2 fits a 0.3 limit');
      t.notOk((await store.consume([budget('f', 0.01, 0.3)], [])).ok);
    });

    t.test('refunds exactly the charge named and ignores unknown ones', async (t) => {
      const store = await factory(t, { now: T0 });
      const first = budget('r', 70, 100);
      t.ok((await store.consume([first], [])).ok);
      t.notOk((await store.consume([budget('r', 70, 100)], [])).ok);
      await store.refund([first, { key: 'r', chargeId: 'unknown', cost: 5 }]);
      t.same(await store.usage([{ key: 'r', windowMs: 24 * HOUR }]), [0]);
      await store.refund([first]);
      t.same(await store.usage([{ key: 'r', windowMs: 24 * HOUR }]), [0], 'a second refund changes nothing');
      t.ok((await store.consume([budget('r', 70, 100)], [])).ok);
    });

    t.test('takes tokens up to the burst, refuses with the time to the next token, refills over time', async (t) => {
      const clock = { now: T0 };
      const store = await factory(t, clock);
      const rate = { key: 'tool:a:x', rate: 10, burst: 3 };
      for (let i = 0; i < 3; i++) t.ok((await store.consume([], [rate])).ok);
      const limited = await store.consume([], [rate]);
      t.match(limited, { ok: false, kind: 'rate', retryAfterMs: 100 });
      clock.now = T0 + 250;
      t.ok((await store.consume([], [rate])).ok, '2.5 tokens came back');
      t.ok((await store.consume([], [rate])).ok);
      t.notOk((await store.consume([], [rate])).ok);
    });

    t.test('keeps one pending approval per agent and call, and counts it', async (t) => {
      const store = await factory(t, { now: T0 });
      const first = await store.requestApproval(approvalRequest('a-1'));
      t.match(first, { created: true, record: { id: 'a-1', status: 'pending', uses_left: 0, expires_at: T0 + HOUR } });
      const again = await store.requestApproval(approvalRequest('a-2'));
      t.match(again, { created: false, record: { id: 'a-1' } }, 'the same call joins the open approval');
      const other = await store.requestApproval(approvalRequest('a-3', { digest: 'd2' }));
      t.equal(other.created, true, 'another call gets its own');
      t.equal(await store.pendingCount(), 2);
      t.same(
        (await store.listApprovals('pending', 10)).map((r) => r.id),
        ['a-3', 'a-1'],
      );
      t.same((await store.getApproval('a-1'))?.reasons, ['refund of 900 is above the billing limit of 500']);
    });

    t.test('an approved call is allowed exactly its uses, within its validity', async (t) => {
      const clock = { now: T0 };
      const store = await factory(t, clock);
      await store.requestApproval(approvalRequest('a-1', { uses: 2 }));
      t.equal(await store.useApproval('a-1'), undefined, 'a pending approval cannot be used');
      clock.now = T0 + 1000;
      const decided = await store.decideApproval('a-1', 'approved', 'cfo', 'fine');
      t.match(decided, {
        ok: true,
        record: { status: 'approved', decided_by: 'cfo', comment: 'fine', uses_left: 2, expires_at: T0 + 1000 + HOUR },
      });
      t.match(await store.findApproval('billing-bot', 'd1'), { id: 'a-1', status: 'approved' });
      t.match(await store.useApproval('a-1'), { uses_left: 1 });
      t.match(await store.useApproval('a-1'), { uses_left: 0 });
      t.equal(await store.useApproval('a-1'), undefined);
      t.equal(await store.findApproval('billing-bot', 'd1'), undefined, 'a used-up approval is no longer offered');
      t.match(await store.decideApproval('a-1', 'rejected', 'cfo', undefined), { ok: false, reason: 'not_pending' });
      t.match(await store.decideApproval('nope', 'approved', 'cfo', undefined), { ok: false, reason: 'not_found' });
      await store.requestApproval(approvalRequest('b-1', { digest: 'd9' }));
      await store.decideApproval('b-1', 'approved', 'cfo', undefined);
      clock.now = T0 + 1000 + HOUR + 1;
      t.equal(await store.useApproval('b-1'), undefined, 'an approval past its validity cannot be used');
    });

    t.test('a rejection stands for its validity; a lapsed request expires exactly once', async (t) => {
      const clock = { now: T0 };
      const store = await factory(t, clock);
      await store.requestApproval(approvalRequest('a-1'));
      t.match(await store.decideApproval('a-1', 'rejected', 'cfo', undefined), {
        ok: true,
        record: { status: 'rejected' },
      });
      t.match(await store.requestApproval(approvalRequest('a-2')), {
        created: false,
        record: { id: 'a-1', status: 'rejected' },
      });
      await store.requestApproval(approvalRequest('p-1', { digest: 'd5' }));
      clock.now = T0 + HOUR + 1;
      t.match(await store.getApproval('p-1'), { status: 'expired' });
      t.same(
        (await store.expireApprovals()).map((r) => r.id),
        ['p-1'],
      );
      t.same(await store.expireApprovals(), [], 'already expired');
      t.equal(await store.pendingCount(), 0);
      t.match(await store.decideApproval('p-1', 'approved', 'cfo', undefined), { ok: false, reason: 'not_pending' });
      t.match(
        await store.requestApproval(approvalRequest('a-3')),
        { created: true },
        'after the rejection lapses, a new request',
      );
    });
  });
}
