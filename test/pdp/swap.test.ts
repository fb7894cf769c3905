// Atomic hot swap under steady load, smoke checks, rollback, live data patches and
// shadow mode — with bundles built and signed by the real opa CLI and served by a real
// HTTP bundle server.
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadBundle } from '../../src/bundle/load.ts';
import { createSwappablePdp, type DataChangeEvent } from '../../src/pdp/swap.ts';
import type { ShadowDisagreement } from '../../src/pdp/shadow.ts';
import type { Decision } from '../../src/pdp/types.ts';
import { tempDir } from '../helpers/processes.ts';
import { buildSigned, makeKeys, requestInput, startBundleServer, until, startLifecycle } from '../bundle/fixtures.ts';

const keys = await makeKeys();
const signed = (revision: string, hosts: string[] = ['api.example']) =>
  buildSigned({ revision, signingKey: keys.rsaPrivate, hosts, rule: `DELETE denied by ${revision}` });

const lifecycle = startLifecycle;

const fast = { minDelayMs: 10, maxDelayMs: 30, timeoutMs: 2000 };

t.test(
  'hot swap under load: three revisions and one bad bundle, zero failures, each decision from exactly one revision',
  async (t) => {
    const [b1, b2, b3, b4, bad] = await Promise.all([
      signed('rev-1'),
      signed('rev-2'),
      signed('rev-3'),
      signed('rev-4'),
      buildSigned({ revision: 'rev-bad', hosts: ['evil.example'] }),
    ]);
    const server = await startBundleServer(t);
    await server.publish(b1);
    const activations: string[] = [];
    const lc = await lifecycle(
      t,
      {
        bundle: {
          source: `${server.url}/bundle.tar.gz`,
          ...fast,
          verification: { publicKeyFile: keys.rsaPublic },
          smoke: { input: requestInput('GET', 'http://api.example/health'), expectAllowed: true },
        },
      },
      { onActivate: (e) => activations.push(e.revision) },
    );
    await lc.start();

    // Steady traffic: 16 concurrent callers, each deciding in a loop, yielding to the event loop between calls.
    const decisions: Decision[] = [];
    const failures: unknown[] = [];
    let stop = false;
    const caller = async (n: number): Promise<void> => {
      for (let i = 0; !stop; i++) {
        const input =
          i % 2 === 0 ? requestInput('GET', 'http://api.example/x') : requestInput('DELETE', 'http://api.example/x');
        try {
          decisions.push(await lc.pdp.decide(input, `c${n}-${i}`));
        } catch (err) {
          failures.push(err);
        }
        await new Promise((resolve) => setImmediate(resolve));
      }
    };
    const load = Promise.all(Array.from({ length: 16 }, (_, n) => caller(n)));
    const waitFor = (rev: string) =>
      until(() => lc.pdp.info()?.revision === rev && decisions.some((d) => d.revision === rev), 10000, rev);
    await server.publish(b2);
    await waitFor('rev-2');
    await server.publish(bad);
    await until(() => lc.status().rejections.unsigned >= 1, 10000, 'bad bundle rejected');
    await server.publish(b3);
    await waitFor('rev-3');
    await server.publish(b4);
    await waitFor('rev-4');
    const settle = decisions.length;
    await until(() => decisions.length > settle + 200, 10000, 'more traffic on rev-4');
    stop = true;
    await load;

    t.equal(failures.length, 0, 'zero failed decisions');
    t.ok(decisions.length > 1000, `steady traffic (${decisions.length} decisions)`);
    const revisions = new Set(decisions.map((d) => d.revision));
    t.same([...revisions].sort(), ['rev-1', 'rev-2', 'rev-3', 'rev-4'], 'decided by the four good revisions only');
    t.notOk(revisions.has('rev-bad'), 'the bad bundle never decided');
    t.same(activations, ['rev-1', 'rev-2', 'rev-3', 'rev-4']);
    // Each revision's DELETE rule names it: a decision labelled rev-N was made entirely by rev-N.
    const mixed = decisions.filter(
      (d) => !d.allowed && !d.reasons.every((r) => r === `DELETE denied by ${d.revision}`),
    );
    t.equal(mixed.length, 0, 'no decision mixes two revisions');
    // Revisions appear in order: once a caller sees rev-N, it never sees an older one again.
    const order = ['rev-1', 'rev-2', 'rev-3', 'rev-4'];
    let highest = 0;
    let regressions = 0;
    for (const d of decisions) {
      const i = order.indexOf(d.revision);
      if (i < highest) regressions++;
      highest = Math.max(highest, i);
    }
    t.equal(regressions, 0, 'no decision after a swap came from an older revision');
  },
);

t.test('a bundle that fails the smoke check is not activated', async (t) => {
  const rejected: string[] = [];
  const pdp = createSwappablePdp({
    decisionPath: 'tollgate/authz/decision',
    timeoutMs: 100,
    smoke: { input: requestInput('GET', 'http://api.example/health'), expectAllowed: true },
    hooks: { onReject: (e) => rejected.push(`${e.reason}: ${e.error.message}`) },
  });
  await pdp.activate(await loadBundle(await signed('ok-1')), 'startup');
  await t.rejects(pdp.activate(await loadBundle(await signed('locks-out', ['other.example'])), 'poll'), {
    code: 'TG_ERR_BUNDLE_INVALID',
    message: /smoke input was denied, expected allowed/,
  });
  t.match(rejected, [/^smoke: /]);
  t.equal(pdp.info()?.revision, 'ok-1');
});

t.test('rollback switches back to the previous revision and holds while the server is unchanged', async (t) => {
  const server = await startBundleServer(t);
  await server.publish(await signed('rev-a'));
  const lc = await lifecycle(t, {
    bundle: {
      source: `${server.url}/bundle.tar.gz`,
      ...fast,
      persistenceDir: join(await tempDir('tollgate-rb-'), 'p'),
    },
  });
  await lc.start();
  await t.rejects(lc.rollback(), { code: 'TG_ERR_BUNDLE_INVALID', message: /no previous revision/ });
  await server.publish(await signed('rev-b'));
  await until(() => lc.pdp.info()?.revision === 'rev-b', 5000, 'rev-b');
  const event = await lc.rollback();
  t.equal(event.revision, 'rev-a');
  t.equal(event.previousRevision, 'rev-b');
  t.equal(event.origin, 'rollback');
  const polls = server.requests.length;
  await until(() => server.requests.length > polls + 3, 5000, 'more polls');
  t.equal(lc.pdp.info()?.revision, 'rev-a', 'the unchanged server (304) does not undo the rollback');
  t.equal(
    (await lc.pdp.decide(requestInput('DELETE', 'http://api.example/'), 'x')).reasons[0],
    'DELETE denied by rev-a',
  );
  t.equal(lc.status().previous?.revision, 'rev-b');
});

t.test(
  'live data: an RFC 6902 patch changes decisions at once, is reported, and a bad patch changes nothing',
  async (t) => {
    const changes: DataChangeEvent[] = [];
    const rejected: string[] = [];
    const lc = await lifecycle(
      t,
      { pdp: { bundle: await signed('data-1') } },
      { onDataChange: (e) => changes.push(e), onDataRejected: (e) => rejected.push(e.code) },
    );
    await lc.start();
    const allowedNew = async () => (await lc.pdp.decide(requestInput('GET', 'http://new.example/'), 'x')).allowed;
    t.equal(await allowedNew(), false);
    const event = lc.patchData(JSON.stringify([{ op: 'add', path: '/tollgate/hosts/-', value: 'new.example' }]));
    t.equal(await allowedNew(), true);
    t.equal(event.dataVersion, 1);
    t.equal(event.revision, 'data-1');
    t.same(
      changes.map((c) => c.origin),
      ['api'],
    );
    for (const bad of [
      'not json at all',
      '{"op": "add"}',
      '[{"op": "frobnicate", "path": "/x"}]',
      '[{"op": "remove", "path": "/tollgate/missing"}]',
      '[{"op": "test", "path": "/tollgate/hosts/0", "value": "nope"}, {"op": "remove", "path": "/tollgate/hosts"}]',
    ]) {
      t.throws(() => lc.patchData(bad), { code: 'TG_ERR_BAD_REQUEST' }, bad);
    }
    t.equal(rejected.length, 5);
    t.equal(await allowedNew(), true, 'a rejected patch (even a partly applicable one) changed nothing');
    t.equal(changes.length, 1);
    t.equal(lc.status().dataVersion, 1);
  },
);

t.test('live data survives a new revision; a patch that no longer applies is dropped and reported', async (t) => {
  const changes: DataChangeEvent[] = [];
  const pdp = createSwappablePdp({
    decisionPath: 'tollgate/authz/decision',
    timeoutMs: 100,
    hooks: { onDataChange: (e) => changes.push(e) },
  });
  await pdp.activate(await loadBundle(await signed('d-1')), 'startup');
  pdp.patchData([{ op: 'add', path: '/tollgate/hosts/-', value: 'kept.example' }], 'api');
  pdp.patchData([{ op: 'add', path: '/tollgate/limits', value: { a: 1 } }], 'api');
  await pdp.activate(
    await loadBundle(await buildSigned({ revision: 'd-2', data: { tollgate: { hosts: ['api.example'] } } })),
    'poll',
  );
  t.equal(
    (await pdp.decide(requestInput('GET', 'http://kept.example/'), 'x')).allowed,
    true,
    'patches re-applied to the new revision',
  );
  // d-3 has no hosts list: the first patch no longer applies; the second still does.
  await pdp.activate(await loadBundle(await buildSigned({ revision: 'd-3', data: { tollgate: {} } })), 'poll');
  const dropped = changes.filter((c) => c.origin === 'dropped');
  t.equal(dropped.length, 1, 'one dropped patch reported');
  t.equal(dropped[0]?.revision, 'd-3');
  t.match(dropped[0]?.error, /path does not exist/);
  t.equal(pdp.status().patches, 1, 'the other patch is kept');
});

t.test(
  'live data from a watched file: applied at start and on change; a non-JSON file is rejected and data stays',
  async (t) => {
    const dir = await tempDir('tollgate-watch-');
    const file = join(dir, 'patch.json');
    await writeFile(file, JSON.stringify([{ op: 'add', path: '/tollgate/hosts/-', value: 'file1.example' }]));
    const rejected: string[] = [];
    const changes: DataChangeEvent[] = [];
    const lc = await lifecycle(
      t,
      { pdp: { bundle: await signed('w-1') }, data: { watchFile: file, watchIntervalMs: 20 } },
      { onDataRejected: (e) => rejected.push(e.message), onDataChange: (e) => changes.push(e) },
    );
    await lc.start();
    const allowed = async (host: string) => (await lc.pdp.decide(requestInput('GET', `http://${host}/`), 'x')).allowed;
    t.equal(await allowed('file1.example'), true);
    await writeFile(file, JSON.stringify([{ op: 'add', path: '/tollgate/hosts/-', value: 'file2.example' }]));
    await until(async () => allowed('file2.example'), 5000, 'file2 applied');
    t.equal(await allowed('file1.example'), false, 'the file is one layer: its new content replaces the old');
    await writeFile(file, '{ this is not json');
    await until(() => rejected.length > 0, 5000, 'rejection');
    t.match(rejected[0], /not valid JSON/);
    t.equal(await allowed('file2.example'), true, 'data unchanged after a bad file');
    t.same(
      changes.map((c) => c.origin),
      ['file', 'file'],
    );
  },
);

t.test(
  'shadow mode: the candidate is evaluated beside the active policy, only the active one enforces, disagreements carry both results',
  async (t) => {
    const disagreements: ShadowDisagreement[] = [];
    let compared = 0;
    const lc = await lifecycle(
      t,
      {
        pdp: { bundle: await signed('active-1', ['api.example', 'crm.example']) },
        shadow: { bundle: await signed('candidate-1', ['api.example']) },
      },
      { onShadowDisagreement: (d) => disagreements.push(d), onShadowCompared: () => (compared += 1) },
    );
    await lc.start();
    const crm = await lc.pdp.decide(requestInput('GET', 'http://crm.example/'), 'crm-1');
    t.equal(crm.allowed, true, 'the active policy enforces');
    t.equal(crm.revision, 'active-1');
    const api = await lc.pdp.decide(requestInput('GET', 'http://api.example/'), 'api-1');
    t.equal(api.allowed, true);
    await until(() => compared >= 2, 5000, 'comparisons');
    t.equal(disagreements.length, 1);
    const d = disagreements[0]!;
    t.equal(d.decisionId, 'crm-1');
    t.equal(d.kind, 'allow-to-deny');
    t.match(d.active, { allowed: true, revision: 'active-1' });
    t.match(d.candidate, { allowed: false, revision: 'candidate-1', reasons: ['host crm.example is not listed'] });
    t.equal(lc.status().shadow?.disagreements, 1);
    t.equal(lc.status().shadow?.compared, 2);
    t.equal(lc.status().shadow?.active?.revision, 'candidate-1');
  },
);
