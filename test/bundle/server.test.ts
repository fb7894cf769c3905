// The bundle protocol against a real HTTP bundle server with content-hash ETags:
// If-None-Match/304, bearer token, long polling, jitter, faults (500, slow, garbage,
// truncated), signature rejections, and last-known-good across a restart.
import t from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { jitterDelay } from '../../src/bundle/fetch.ts';
import type { RejectionEvent } from '../../src/pdp/swap.ts';
import { tempDir } from '../helpers/processes.ts';
import { buildSigned, makeKeys, requestInput, startBundleServer, until, startLifecycle } from './fixtures.ts';

const keys = await makeKeys();
const [r1, r2, unsigned] = await Promise.all([
  buildSigned({ revision: 'rev-1', signingKey: keys.rsaPrivate }),
  buildSigned({ revision: 'rev-2', signingKey: keys.rsaPrivate, hosts: ['api.example', 'new.example'] }),
  buildSigned({ revision: 'rev-unsigned', hosts: ['evil.example'] }),
]);

const lifecycle = startLifecycle;

const fast = { minDelayMs: 20, maxDelayMs: 40, timeoutMs: 1000 };

t.test('polls with If-None-Match, gets 304 while unchanged, activates a newly published revision', async (t) => {
  const server = await startBundleServer(t, { token: 's3cret' });
  await server.publish(r1);
  const activated: string[] = [];
  const lc = await lifecycle(
    t,
    { bundle: { source: `${server.url}/bundle.tar.gz`, token: 's3cret', ...fast } },
    { onActivate: (e) => activated.push(`${e.origin}:${e.revision}`) },
  );
  await lc.start();
  t.equal(lc.pdp.info()?.revision, 'rev-1');
  await until(() => server.requests.filter((r) => r.status === 304).length >= 2, 5000, 'two 304 answers');
  const conditional = server.requests.find((r) => r.status === 304)!;
  t.match(conditional.headers['if-none-match'], /^"[0-9a-f]{32}"$/);
  t.equal(conditional.headers.authorization, 'Bearer s3cret');
  await server.publish(r2);
  await until(() => lc.pdp.info()?.revision === 'rev-2', 5000, 'rev-2 active');
  t.same(activated, ['startup:rev-1', 'poll:rev-2']);
  const d = await lc.pdp.decide(requestInput('GET', 'http://new.example/x'), 'd1');
  t.equal(d.allowed, true);
  t.equal(d.revision, 'rev-2');
});

t.test('a wrong bearer token is a source error and nothing activates', async (t) => {
  const server = await startBundleServer(t, { token: 'right' });
  await server.publish(r1);
  const lc = await lifecycle(t, { bundle: { source: `${server.url}/bundle.tar.gz`, token: 'wrong', ...fast } });
  await t.rejects(lc.start(), { code: 'TG_ERR_BUNDLE_INVALID', message: /answered 401/ });
  t.equal(lc.pdp.info(), undefined);
  await t.rejects(
    lc.pdp.decide(requestInput('GET', 'http://api.example/'), 'x'),
    { code: 'TG_ERR_PDP_UNAVAILABLE' },
    'no policy is never allow',
  );
});

t.test(
  'long polling: Prefer: wait=N is sent, the server holds the request, a publish is picked up at once',
  async (t) => {
    const server = await startBundleServer(t, { longPolling: true });
    await server.publish(r1);
    const lc = await lifecycle(t, {
      bundle: {
        source: `${server.url}/bundle.tar.gz`,
        longPollSeconds: 30,
        minDelayMs: 60000,
        maxDelayMs: 60000,
        timeoutMs: 1000,
      },
    });
    await lc.start();
    // The start-up download is a plain GET; the poller then long-polls.
    await until(() => server.requests.length >= 1, 5000, 'first request');
    const before = server.requests.length;
    const published = Date.now();
    await server.publish(r2);
    await until(() => lc.pdp.info()?.revision === 'rev-2', 5000, 'rev-2 via long poll');
    t.ok(Date.now() - published < 3000, 'activated well before the 60 s poll delay');
    t.ok(
      server.requests.slice(before).some((r) => r.headers.prefer === 'wait=30'),
      'Prefer: wait=30 sent',
    );
  },
);

t.test(
  'server faults (500, slow, garbage, truncated) are rejected and the active revision keeps enforcing',
  async (t) => {
    const server = await startBundleServer(t);
    await server.publish(r1);
    const errors: string[] = [];
    const rejections: string[] = [];
    const lc = await lifecycle(
      t,
      { bundle: { source: `${server.url}/bundle.tar.gz`, ...fast, timeoutMs: 300 } },
      { onSourceError: (e) => errors.push(e.message), onReject: (e) => rejections.push(e.error.message) },
    );
    await lc.start();
    await server.publish(r2); // the faults below hide it
    for (const [fault, pattern] of [
      ['error500', /answered 500: internal error/],
      ['slow', /within 300 ms/],
      ['garbage', /not a gzip file/],
      ['truncated', /truncated/],
    ] as const) {
      errors.length = 0;
      server.fault = fault;
      await until(() => errors.some((m) => pattern.test(m)), 5000, `${fault} reported`);
      t.equal(lc.pdp.info()?.revision, 'rev-1', `${fault}: rev-1 still active`);
      const d = await lc.pdp.decide(requestInput('GET', 'http://api.example/'), 'x');
      t.equal(d.revision, 'rev-1');
    }
    t.ok(lc.status().sourceErrors >= 4);
    server.fault = 'none';
    await until(() => lc.pdp.info()?.revision === 'rev-2', 5000, 'recovers once the server is healthy');
  },
);

t.test('signed bundles: an unsigned or foreign-signed publish is rejected, counted, and rev-1 stays', async (t) => {
  const server = await startBundleServer(t);
  await server.publish(r1);
  const rejected: RejectionEvent[] = [];
  const lc = await lifecycle(
    t,
    {
      bundle: {
        source: `${server.url}/bundle.tar.gz`,
        ...fast,
        verification: { publicKeyFile: keys.rsaPublic, algorithm: 'RS256' },
      },
    },
    { onReject: (e) => rejected.push(e) },
  );
  await lc.start();
  await server.publish(unsigned);
  await until(() => lc.status().rejections.unsigned >= 1, 5000, 'unsigned rejection');
  t.equal(lc.pdp.info()?.revision, 'rev-1');
  t.equal(rejected[0]?.reason, 'unsigned');
  t.equal(rejected[0]?.error.code, 'TG_ERR_BUNDLE_INVALID');
  t.equal(rejected[0]?.activeRevision, 'rev-1');
  t.equal(
    (await lc.pdp.decide(requestInput('GET', 'http://evil.example/'), 'x')).allowed,
    false,
    'the unsigned policy never decided',
  );
  await server.publish(await buildSigned({ revision: 'rev-foreign', signingKey: keys.otherRsaPrivate }));
  await until(() => lc.status().rejections.bad_signature >= 1, 5000, 'bad signature rejection');
  t.equal(lc.pdp.info()?.revision, 'rev-1');
  await server.publish(r2);
  await until(() => lc.pdp.info()?.revision === 'rev-2', 5000, 'signed rev-2 activates');
});

t.test('restart with the bundle server down: the last-known-good bundle enforces from the first request', async (t) => {
  const server = await startBundleServer(t);
  await server.publish(r2);
  const persistenceDir = join(await tempDir('tollgate-lkg-'), 'state');
  const doc = {
    bundle: {
      source: `${server.url}/bundle.tar.gz`,
      ...fast,
      persistenceDir,
      verification: { publicKeyFile: keys.rsaPublic },
    },
  };
  const first = await lifecycle(t, doc);
  await first.start();
  await until(() => existsSync(join(persistenceDir, 'bundle.tar.gz')), 5000, 'persisted');
  await first.close();
  await server.close();

  const second = await lifecycle(t, doc);
  const event = await second.start();
  t.equal(event.origin, 'last-known-good');
  const d = await second.pdp.decide(requestInput('GET', 'http://new.example/'), 'first-request');
  t.equal(d.revision, 'rev-2');
  t.equal(d.allowed, true);
});

t.test('server down and no last-known-good: start fails (never "no policy = allow")', async (t) => {
  const server = await startBundleServer(t);
  await server.close();
  const lc = await lifecycle(t, {
    bundle: {
      source: `${server.url}/bundle.tar.gz`,
      ...fast,
      persistenceDir: join(await tempDir('tollgate-empty-'), 'none'),
    },
  });
  await t.rejects(lc.start(), {
    code: 'TG_ERR_BUNDLE_INVALID',
    message: /no policy could be activated .*unreachable.*no last-known-good bundle stored/,
  });
});

t.test('a server without ETags: the same bytes are not activated again, new bytes are', async (t) => {
  const server = await startBundleServer(t, { etags: false });
  await server.publish(r1);
  const activated: string[] = [];
  const lc = await lifecycle(
    t,
    { bundle: { source: `${server.url}/bundle.tar.gz`, ...fast } },
    { onActivate: (e) => activated.push(e.revision) },
  );
  await lc.start();
  await until(() => server.requests.length >= 5, 5000, 'five polls');
  t.ok(server.requests.every((r) => r.headers['if-none-match'] === undefined && r.status === 200));
  t.same(activated, ['rev-1'], 'unchanged bytes: no re-activation, so rollback keeps its previous revision');
  await server.publish(r2);
  await until(() => lc.pdp.info()?.revision === 'rev-2', 5000, 'rev-2');
  t.same(activated, ['rev-1', 'rev-2']);
});

t.test('jitter: every poll delay lies within [minDelayMs, maxDelayMs]', async (t) => {
  t.equal(
    jitterDelay(100, 200, () => 0),
    100,
  );
  t.equal(
    jitterDelay(100, 200, () => 0.999999),
    200,
  );
  for (let i = 0; i < 1000; i++) {
    const d = jitterDelay(50, 80);
    if (d < 50 || d > 80) t.fail(`delay ${d} out of range`);
  }
  t.equal(
    jitterDelay(100, 50, () => 0.5),
    100,
    'max below min is treated as min',
  );
});
