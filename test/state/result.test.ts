// The state part of the result contract: what parses, and every malformed field naming itself.
import t from 'tap';
import { parseDuration, stateRequestsFrom } from '../../src/state/result.ts';

t.test('reads budgets, rates and an approval with their defaults', async (t) => {
  t.same(
    stateRequestsFrom({
      allowed: true,
      budgets: [{ key: 'refunds:a', cost: 100, limit: 2000, window: '24h' }],
      rates: [{ key: 'tool:a:x', rate: 2.5 }],
      approval: { required: true },
    }),
    {
      budgets: [{ key: 'refunds:a', name: 'refunds:a', cost: 100, limit: 2000, windowMs: 86_400_000, refundOn: [] }],
      rates: [{ key: 'tool:a:x', name: 'tool:a:x', rate: 2.5, burst: 3 }],
      approval: { reasons: [], approvers: [], ttlMs: 3_600_000, uses: 1 },
    },
  );
});

t.test('a result that names no state, or an approval not required, asks nothing', async (t) => {
  t.equal(stateRequestsFrom(true), undefined);
  t.equal(stateRequestsFrom({ allowed: true, headers: {} }), undefined);
  t.equal(stateRequestsFrom({ allowed: true, approval: { required: false } }), undefined);
  t.equal(stateRequestsFrom({ allowed: true, budgets: [] }), undefined);
});

t.test('reads Go-style durations and numbers of seconds', async (t) => {
  t.equal(parseDuration('1h30m', 'w'), 5_400_000);
  t.equal(parseDuration('500ms', 'w'), 500);
  t.equal(parseDuration('7d', 'w'), 604_800_000);
  t.equal(parseDuration(90, 'w'), 90_000);
});

t.test('refuses malformed state fields with TG_ERR_POLICY_RESULT naming the field', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [{ budgets: [{ cost: 1, limit: 2, window: '1h' }] }, /budgets\[0\]\.key/],
    [{ budgets: [{ key: 'k', cost: -1, limit: 2, window: '1h' }] }, /budgets\[0\]\.cost/],
    [{ budgets: [{ key: 'k', cost: 1, limit: 2, window: 'a day' }] }, /budgets\[0\]\.window/],
    [{ budgets: [{ key: 'k', cost: 1, limit: 2, window: '1h', refund_on: ['always'] }] }, /unknown outcome "always"/],
    [{ budgets: [{ key: 'k'.repeat(300), cost: 1, limit: 2, window: '1h' }] }, /longer than 256/],
    [{ rates: [{ key: 'k', rate: 0 }] }, /rates\[0\]\.rate/],
    [{ rates: [{ key: 'k', rate: 1, burst: 0.5 }] }, /burst to be at least 1/],
    [{ approval: { required: 'yes' } }, /approval\.required/],
    [{ approval: { required: true, uses: 0 } }, /approval\.uses/],
    [{ approval: { required: true, approvers: 'cfo' } }, /approval\.approvers/],
    [{ budgets: ['x'] }, /budgets\[0\] to be an object/],
  ];
  for (const [result, message] of cases) {
    t.throws(() => stateRequestsFrom({ allowed: true, ...(result as object) }), {
      code: 'TG_ERR_POLICY_RESULT',
      message,
    });
  }
});
