// The policy lifecycle end to end through the real sidecar process: real requests through
// the proxy while three signed revisions are published and one unsigned bundle is offered;
// the decision log shows which revision made each decision; `tollgate bundle rollback` and
// `tollgate bundle patch` over the admin API; a restart with the bundle server down
// enforces the last-known-good bundle from the first request; `tollgate replay` reports on
// the decision log this test recorded.
import t from 'tap';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CLI, ROOT, startTollgate, startUpstream, tempDir, viaProxy, type Reply } from '../helpers/processes.ts';
import { buildSigned, makeKeys, startBundleServer, until } from './fixtures.ts';

const run = promisify(execFile);

/** A policy whose every decision names its revision (x-policy-revision, from its own data). */
function revisionPolicy(): string {
  return `package tollgate.authz

import rego.v1

host := input.attributes.request.http.host

default allowed := false

allowed if {
  some h in data.tollgate.hosts
  h == host
  input.attributes.request.http.method != "DELETE"
}

reasons := [] if allowed
reasons := [sprintf("%s denied by %s", [input.attributes.request.http.method, data.tollgate.rev])] if not allowed

decision := {"allowed": allowed, "reasons": reasons, "headers": {"x-policy-revision": data.tollgate.rev}}
`;
}

const TOKEN = 'e2e-admin-token-0123456789';

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { cwd: ROOT });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

t.test('policy lifecycle through the running sidecar', async (t) => {
  const keys = await makeKeys();
  const build = (rev: string, signed = true) =>
    buildSigned({
      revision: rev,
      rego: revisionPolicy(),
      data: { tollgate: { rev, hosts: ['api.example'] } },
      ...(signed ? { signingKey: keys.rsaPrivate } : {}),
    });
  const [r1, r2, r3, r4, bad] = await Promise.all([
    build('rev-1'),
    build('rev-2'),
    build('rev-3'),
    build('rev-4'),
    build('rev-bad', false),
  ]);
  const server = await startBundleServer(t);
  await server.publish(r1);
  const upstream = await startUpstream(t);
  const dir = await tempDir('tollgate-e2e-');
  const decisionLog = join(dir, 'decisions.jsonl');
  const config = {
    agent: { id: 'support-bot', role: 'support' },
    proxy: { resolve: { 'api.example:80': `127.0.0.1:${upstream.port}` } },
    bundle: {
      source: `${server.url}/bundle.tar.gz`,
      minDelayMs: 20,
      maxDelayMs: 50,
      verification: { publicKeyFile: keys.rsaPublic, algorithm: 'RS256' },
      smoke: {
        input: { attributes: { request: { http: { method: 'GET', host: 'api.example', path: '/' } } } },
        expectAllowed: true,
      },
      persistenceDir: join(dir, 'state'),
    },
    data: { token: TOKEN },
    decisionLog: { file: decisionLog },
  };
  const tg = await startTollgate(t, config);

  // Steady traffic: 8 concurrent callers, GETs (allowed) and DELETEs (denied).
  const replies: Reply[] = [];
  const paths = new Map<Reply, string>();
  const failures: string[] = [];
  let stop = false;
  const caller = async (n: number): Promise<void> => {
    for (let i = 0; !stop; i++) {
      const method = i % 3 === 2 ? 'DELETE' : 'GET';
      try {
        const r = await viaProxy(tg.proxyPort, { method, url: `http://api.example/item/${n}-${i}` });
        paths.set(r, `/item/${n}-${i}`);
        const expected = method === 'GET' ? 200 : 403;
        if (r.status !== expected) failures.push(`${method} → ${r.status} ${r.body.slice(0, 200)}`);
        replies.push(r);
      } catch (err) {
        failures.push(`${method}: ${(err as Error).message}`);
      }
    }
  };
  const load = Promise.all(Array.from({ length: 8 }, (_, n) => caller(n)));
  // A revision counts as serving once 25 of its denies came back (about 75 requests).
  const seen = (rev: string) =>
    until(
      () => replies.filter((r) => r.status === 403 && JSON.parse(r.body).revision === rev).length >= 25,
      20000,
      `${rev} deciding`,
    );
  await seen('rev-1');
  await server.publish(r2);
  await seen('rev-2');
  await server.publish(bad);
  await until(
    async () => /bundle rejected \(unsigned\)/.test(tg.output()),
    15000,
    'unsigned bundle rejected in the log',
  ).catch((err: unknown) => {
    stop = true;
    t.comment(tg.output().slice(-3000));
    throw err;
  });
  await server.publish(r3);
  await seen('rev-3');
  await server.publish(r4);
  await seen('rev-4');
  const count = replies.length;
  await until(() => replies.length > count + 50, 15000, 'traffic on rev-4');
  stop = true;
  await load;

  t.equal(failures.length, 0, `zero failed requests (${failures.slice(0, 3).join('; ')})`);
  t.ok(replies.length > 200, `steady traffic: ${replies.length} requests`);

  // The decision log shows exactly one revision per decision, and it is the one that decided.
  await until(
    async () =>
      (await readFile(decisionLog, 'utf8'))
        .split('\n')
        .filter((l) => l.includes('"decision_id"') && l.includes('"input"')).length >= replies.length,
    15000,
    'decision log flushed',
  );
  const records = new Map<string, { revision: string }>();
  for (const line of (await readFile(decisionLog, 'utf8')).split('\n')) {
    if (line === '') continue;
    const r = JSON.parse(line) as {
      decision_id?: string;
      input?: unknown;
      bundles?: Record<string, { revision: string }>;
    };
    if (r.input === undefined || r.decision_id === undefined) continue;
    const revisions = Object.values(r.bundles ?? {}).map((b) => b.revision);
    t.equal(revisions.length, 1, 'one bundle revision per record');
    records.set(r.decision_id, { revision: revisions[0]! });
  }
  let mismatched = 0;
  const revs = new Set<string>();
  for (const r of replies) {
    const id = r.headers['x-tollgate-decision-id'] as string;
    const logged = records.get(id)?.revision;
    // Allowed: the policy's own data put its revision on the forwarded request. Denied: in the reason.
    const decidedBy =
      r.status === 200
        ? upstream.received.find((u) => u.url === paths.get(r))?.headers['x-policy-revision']
        : (JSON.parse(r.body) as { reasons: string[] }).reasons[0]?.split(' denied by ')[1];
    if (logged === undefined || logged !== decidedBy) mismatched++;
    revs.add(logged ?? 'missing');
  }
  t.equal(mismatched, 0, 'the logged revision is the revision whose rules and data made the decision');
  t.same([...revs].sort(), ['rev-1', 'rev-2', 'rev-3', 'rev-4'], 'the unsigned bundle never decided');

  // Rollback and live data through the CLI and the admin API.
  const admin = `http://127.0.0.1:${tg.adminPort}`;
  const denied = await cli(['bundle', 'rollback', '--admin', admin, '--token', 'wrong']);
  t.equal(denied.code, 1);
  const rolled = await cli(['bundle', 'rollback', '--admin', admin, '--token', TOKEN]);
  t.equal(rolled.code, 0, rolled.stderr);
  t.match(rolled.stdout, /rolled back: rev-4 -> rev-3/);
  const afterRollback = await viaProxy(tg.proxyPort, { url: 'http://api.example/after-rollback' });
  t.equal(upstream.received.at(-1)?.headers['x-policy-revision'], 'rev-3');
  t.equal(afterRollback.status, 200);
  const patchFile = join(dir, 'patch.json');
  await writeFile(patchFile, JSON.stringify([{ op: 'add', path: '/tollgate/hosts/-', value: 'new.example' }]));
  const before = await viaProxy(tg.proxyPort, { url: 'http://new.example/x' });
  t.equal(before.status, 403);
  const patched = await cli(['bundle', 'patch', patchFile, '--admin', admin, '--token', TOKEN]);
  t.equal(patched.code, 0, patched.stderr);
  t.match(patched.stdout, /data patched: revision rev-3, data version 1/);
  await writeFile(join(dir, 'bad-patch.json'), 'threat_level = elevated');
  const notJson = await cli(['bundle', 'patch', join(dir, 'bad-patch.json'), '--admin', admin, '--token', TOKEN]);
  t.equal(notJson.code, 1);
  t.match(notJson.stderr, /patch refused \(400\): .*not valid JSON/);
  await until(
    async () => /data_change/.test(await readFile(decisionLog, 'utf8')),
    10000,
    'the data change is in the decision log',
  );
  const change = (await readFile(decisionLog, 'utf8')).split('\n').find((l) => l.includes('data_change'))!;
  t.match(JSON.parse(change), {
    path: 'system/tollgate/data_change',
    result: { origin: 'api', data_version: 1 },
    bundles: { tollgate: { revision: 'rev-3' } },
  });

  // Replay the decision log this test recorded against a candidate that denies api.example.
  const candidate = await buildSigned({
    revision: 'candidate',
    rego: revisionPolicy(),
    data: { tollgate: { rev: 'candidate', hosts: ['other.example'] } },
  });
  const replay = await cli([
    'replay',
    '--log',
    decisionLog,
    '--bundle',
    candidate,
    '--format',
    'json',
    '--max-flips',
    '0',
  ]);
  t.equal(replay.code, 2, 'flips exceed --max-flips 0');
  const report = JSON.parse(replay.stdout) as {
    totals: { replayed: number; allowToDeny: number; skippedNoInput: number };
    byDestination: Array<{ key: string }>;
  };
  t.ok(report.totals.replayed >= replies.length);
  t.ok(report.totals.allowToDeny > 0);
  t.ok(report.totals.skippedNoInput >= 1, 'genesis and data-change records are skipped');
  t.equal(report.byDestination[0]?.key, 'api.example');

  // Restart with the bundle server down: the last-known-good (rev-3 after the rollback) enforces from the first request.
  await tg.stop();
  await server.close();
  const restarted = await startTollgate(t, config);
  const first = await viaProxy(restarted.proxyPort, { method: 'DELETE', url: 'http://api.example/first' });
  t.equal(first.status, 403);
  t.match(JSON.parse(first.body), { revision: 'rev-3', reasons: ['DELETE denied by rev-3'] });
  const get = await viaProxy(restarted.proxyPort, { url: 'http://api.example/second' });
  t.equal(get.status, 200);
  t.match(restarted.output(), /last-known-good/);
});

t.test('start fails when no policy can be activated (bundle server down, no last-known-good)', async (t) => {
  const server = await startBundleServer(t);
  await server.close();
  await t.rejects(
    startTollgate(t, { bundle: { source: `${server.url}/bundle.tar.gz`, timeoutMs: 500 } }),
    /exited with 1 before listening[\s\S]*TG_ERR_BUNDLE_INVALID: no policy could be activated/,
  );
});
