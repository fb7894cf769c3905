// The store guard: a deadline per call, and a circuit that opens after consecutive failures,
// answers at once while open, lets one probe through after the cool-down and closes on success.
import t from 'tap';
import { createGuard } from '../../src/state/guard.ts';

t.test('a call past its deadline fails with TG_ERR_STATE_UNAVAILABLE without waiting for it', async (t) => {
  const guard = createGuard({ timeoutMs: 30, failureThreshold: 5, openMs: 1000, target: 'redis x' });
  const started = performance.now();
  await t.rejects(
    guard.run('consume', () => new Promise(() => undefined)),
    { code: 'TG_ERR_STATE_UNAVAILABLE', message: /did not answer consume within 30 ms/ },
  );
  t.ok(performance.now() - started < 1000);
});

t.test('the circuit opens after the threshold, fails fast, probes once and closes on success', async (t) => {
  let now = 0;
  const errors: string[] = [];
  const guard = createGuard({
    timeoutMs: 1000,
    failureThreshold: 2,
    openMs: 500,
    target: 'redis x',
    now: () => now,
    onError: (operation) => errors.push(operation),
  });
  const boom = () => Promise.reject(new Error('ECONNREFUSED'));
  await t.rejects(guard.run('usage', boom), { message: /failed usage: ECONNREFUSED/ });
  t.equal(guard.state(), 'closed');
  await t.rejects(guard.run('usage', boom));
  t.equal(guard.state(), 'open');
  let called = false;
  await t.rejects(
    guard.run('consume', async () => (called = true)),
    { code: 'TG_ERR_STATE_UNAVAILABLE', message: /circuit is open/ },
  );
  t.equal(called, false, 'an open circuit does not call the store');
  now = 600;
  t.equal(guard.state(), 'half-open');
  let release!: () => void;
  const probe = guard.run('consume', () => new Promise<string>((resolve) => (release = () => resolve('ok'))));
  await t.rejects(
    guard.run('consume', async () => 'second'),
    { message: /circuit is open/ },
    'one probe at a time',
  );
  release();
  t.equal(await probe, 'ok');
  t.equal(guard.state(), 'closed');
  t.equal(await guard.run('consume', async () => 'after'), 'after');
  t.same(errors, ['usage', 'usage', 'consume', 'consume']);
});
