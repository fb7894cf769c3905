// `tollgate replay` on a decision log recorded in the test: real inputs (normaliser +
// input builder), real results from the seed bundle, OPA decision-log records in a hash
// chain; the candidate is the seed Rego with a tighter refund limit and a wider role.
import t from 'tap';
import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { parseReplayArgs, runReplay } from '../../src/cli/replay.ts';
import { replayDecisionLog } from '../../src/replay/replay.ts';
import { loadBundle } from '../../src/bundle/load.ts';
import { tempDir } from '../helpers/processes.ts';
import { buildSigned } from '../bundle/fixtures.ts';
import { buildCandidate, recordDecisionLog, SAMPLE_LOG, SEED_BUNDLE, TRAFFIC } from './record.ts';

const dir = await tempDir('tollgate-replay-');
const log = join(dir, 'decisions.jsonl');
const recorded = await recordDecisionLog(log, 2);
await appendFile(log, 'this line is not json\n{"decision_id":"data-change","type":"data","patch":[]}\n');
const candidate = await buildCandidate();

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (s: string) => out.push(s), err: (s: string) => err.push(s) } };
}

t.test('reports totals and both flip directions grouped by agent, destination and rule', async (t) => {
  const report = await replayDecisionLog({
    log,
    bundle: await loadBundle(candidate),
    decisionPath: 'tollgate/authz/decision',
  });
  t.equal(recorded, TRAFFIC.length * 2);
  t.equal(report.totals.replayed, recorded);
  t.equal(report.totals.skippedNoInput, 2, 'genesis and data-change records are skipped');
  t.equal(report.totals.unreadable, 1);
  t.equal(report.totals.allowToDeny, 4, 'refunds of 120 and 499, twice');
  t.equal(report.totals.denyToAllow, 2, 'support reading hr.internal, twice');
  t.equal(report.totals.unchanged, recorded - 6);
  t.equal(report.totals.candidateErrors, 0);
  t.equal(report.candidate.revision, 'candidate-1');
  t.match(Object.keys(report.recordedRevisions), [/^seed-/]);
  t.same(
    report.byAgent.map((g) => [g.key, g.allowToDeny, g.denyToAllow]),
    [['support-bot', 4, 2]],
  );
  t.same(
    report.byDestination.map((g) => [g.key, g.allowToDeny, g.denyToAllow]),
    [
      ['payments.internal', 4, 0],
      ['hr.internal', 0, 2],
    ],
  );
  t.same(
    report.byRule.map((g) => g.key).sort(),
    [
      'refund of 120 exceeds the support limit of 100',
      'refund of 499 exceeds the support limit of 100',
      'role support may not reach hr.internal',
    ].sort(),
  );
  const hr = report.examples.find((f) => f.direction === 'deny_to_allow')!;
  t.equal(hr.destination, 'hr.internal');
  t.same(hr.recorded.reasons, ['role support may not reach hr.internal']);
  t.equal(hr.candidate.allowed, true);
  t.ok(report.byRule[0]!.examples.length > 0, 'each group names example decision ids');
});

t.test('the text report names flips, groups and examples; exit 0 without a threshold', async (t) => {
  const c = capture();
  t.equal(await runReplay({ ...parseReplayArgs(['--log', log, '--bundle', candidate]), ...c.io }), 0);
  const text = c.out.join('');
  t.match(text, /allow→deny 4\s+deny→allow 2/);
  t.match(text, /by agent:\n\s+support-bot/);
  t.match(text, /by destination:/);
  t.match(text, /refund of 120 exceeds the support limit of 100/);
  t.match(text, /decisions\/s/);
});

t.test('--format json with --max-flips: exit 2 when flips exceed the threshold, 0 within it', async (t) => {
  const over = capture();
  t.equal(
    await runReplay({
      ...parseReplayArgs(['--log', log, '--bundle', candidate, '--format', 'json', '--max-flips', '5']),
      ...over.io,
    }),
    2,
  );
  const json = JSON.parse(over.out.join('')) as {
    totals: { flips: number };
    passed: boolean;
    max_flips: number;
    byRule: unknown[];
  };
  t.equal(json.totals.flips, 6);
  t.equal(json.passed, false);
  t.equal(json.max_flips, 5);
  const within = capture();
  t.equal(
    await runReplay({
      ...parseReplayArgs(['--log', log, '--bundle', candidate, '-f', 'json', '--max-flips', '6']),
      ...within.io,
    }),
    0,
  );
  t.equal((JSON.parse(within.out.join('')) as { passed: boolean }).passed, true);
});

t.test('the seed bundle replayed against its own log flips nothing', async (t) => {
  const c = capture();
  t.equal(
    await runReplay({ ...parseReplayArgs(['--log', log, '--bundle', SEED_BUNDLE, '--max-flips', '0']), ...c.io }),
    0,
  );
  t.match(c.out.join(''), /unchanged 26\s+allow→deny 0\s+deny→allow 0/);
});

t.test('bad usage and unreadable inputs exit 1 with a clear message', async (t) => {
  t.throws(() => parseReplayArgs(['--log', log]), { code: 'TG_ERR_INPUT_INVALID' });
  t.throws(() => parseReplayArgs(['--log', log, '--bundle', candidate, '--format', 'xml']), {
    code: 'TG_ERR_INPUT_INVALID',
  });
  t.throws(() => parseReplayArgs(['--log', log, '--bundle', candidate, '--max-flips', '-1']), {
    code: 'TG_ERR_INPUT_INVALID',
  });
  t.throws(() => parseReplayArgs(['--nope']), { code: 'TG_ERR_INPUT_INVALID' });
  const missing = capture();
  t.equal(
    await runReplay({
      ...parseReplayArgs(['--log', join(dir, 'missing.jsonl'), '--bundle', candidate]),
      ...missing.io,
    }),
    1,
  );
  t.match(missing.err.join(''), /TG_ERR_INPUT_INVALID: .*cannot read the decision log \(ENOENT\)/);
  const badBundle = capture();
  t.equal(await runReplay({ ...parseReplayArgs(['--log', log, '--bundle', log]), ...badBundle.io }), 1);
  t.match(badBundle.err.join(''), /TG_ERR_BUNDLE_INVALID: .*not a gzip file/);
});

t.test(
  'a candidate that is undefined for some recorded inputs counts them as errors and denies (fail closed)',
  async (t) => {
    const getsOnly = await buildSigned({
      revision: 'gets-only',
      rego: 'package tollgate.authz\n\nimport rego.v1\n\ndecision := {"allowed": true} if input.attributes.request.http.method == "GET"\n',
    });
    const report = await replayDecisionLog({
      log,
      bundle: await loadBundle(getsOnly),
      decisionPath: 'tollgate/authz/decision',
    });
    const posts = TRAFFIC.filter(([, , method]) => method === 'POST').length * 2;
    t.equal(report.totals.candidateErrors, posts);
    const undefinedRule = report.byRule.find((g) => g.key === '(policy error) TG_ERR_POLICY_UNDEFINED');
    t.ok(undefinedRule, 'errors are grouped as their own rule');
    t.equal(undefinedRule?.allowToDeny, 8, 'the recorded allowed POSTs (refunds 120, 80, 499 and the order), twice');
    t.match(
      report.examples.find((f) => f.candidate.error !== undefined)?.candidate.error,
      /^TG_ERR_POLICY_UNDEFINED: /,
    );
  },
);

t.test('the committed sample log is what test/replay/record.ts produces (shape check)', async (t) => {
  const c = capture();
  t.equal(
    await runReplay({
      ...parseReplayArgs(['--log', SAMPLE_LOG, '--bundle', SEED_BUNDLE, '--format', 'json', '--max-flips', '0']),
      ...c.io,
    }),
    0,
    'the seed bundle agrees with the sample',
  );
  const json = JSON.parse(c.out.join('')) as { totals: { replayed: number; skippedNoInput: number } };
  t.equal(json.totals.replayed, TRAFFIC.length);
  t.equal(json.totals.skippedNoInput, 1);
  // Keep the sample honest: it must parse with the same reader the CLI uses.
  t.equal(spawnSync('git', ['check-ignore', SAMPLE_LOG]).status, 1, 'the sample is not git-ignored');
});
