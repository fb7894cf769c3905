/**
 * `tollgate policy conflicts` with the real opa: the seed policies as the central layer
 * against the hybrid example's local layer (clean: exit 0), a local layer with a planted
 * conflict (a local grant central overrides) and one with a planted shadowed rule.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { CLI, ROOT } from '../helpers/processes.ts';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function conflicts(local: string, ...extra: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [
        CLI,
        'policy',
        'conflicts',
        '--central',
        join(ROOT, 'policies'),
        '--local',
        join(ROOT, local),
        '--local-path',
        'tollgate/local/decision',
        '--max-generated',
        '1500',
        '--ignore',
        'hybrid',
        ...extra,
      ],
      { maxBuffer: 1 << 28 },
      (err, stdout, stderr) => resolve({ code: err ? Number(err.code) : 0, stdout, stderr }),
    );
  });
}

interface Report {
  failing: number;
  corpus: { tests: number; recorded: number; generated: number };
  conflicts: {
    kind: string;
    failing: boolean;
    count: number;
    example: string;
    example_input: unknown;
    central_reasons: string[];
    local_reasons: string[];
  }[];
  shadowed: { rule: string; fired: number }[];
}

t.test('clean layers: the hybrid example only restricts, so the check passes', async (t) => {
  const run = await conflicts(
    'policies/hybrid/local',
    '--format',
    'json',
    '--inputs',
    join(ROOT, 'test/replay/fixtures/decisions.jsonl'),
  );
  t.equal(run.code, 0, run.stderr);
  const report = JSON.parse(run.stdout) as Report;
  t.equal(report.failing, 0);
  t.ok(report.corpus.tests > 100, 'the opa test cases of both layers are inputs');
  t.ok(report.corpus.recorded > 0, 'the recorded decisions are inputs');
  t.ok(report.corpus.generated > 0);
  t.same(report.shadowed, []);
  const restricts = report.conflicts.filter((g) => g.kind === 'local-denies-central-allows');
  t.ok(restricts.length > 0, 'the EU cap is reported as a local restriction');
  t.ok(
    restricts.every((g) => !g.failing),
    'and does not fail under deny-overrides',
  );
  t.match(restricts[0]!.local_reasons[0], /exceeds the EU regional limit of 200/);
});

t.test('a planted conflict: a local grant the central limit overrides fails the check', async (t) => {
  const run = await conflicts('test/fixtures/conflicts/planted-conflict', '--format', 'json');
  t.equal(run.code, 2);
  const report = JSON.parse(run.stdout) as Report;
  const overridden = report.conflicts.filter((g) => g.kind === 'local-allows-central-denies');
  t.ok(overridden.length > 0);
  t.ok(overridden.every((g) => g.failing));
  const overLimit = overridden.find((g) => /exceeds the support limit of 500/.test(g.central_reasons.join()));
  t.ok(overLimit, 'an EU refund above the central limit, generated from the constants, is a conflict');
  const amount = Number((overLimit?.example_input as { parsed_body?: { amount?: unknown } })?.parsed_body?.amount);
  t.ok(amount > 500 && amount <= 1000, `its example amount ${amount} is between the two limits`);
});

t.test('a planted shadowed rule: a local deny central always makes first fails the check', async (t) => {
  const run = await conflicts('test/fixtures/conflicts/planted-shadow');
  t.equal(run.code, 2);
  t.match(run.stdout, /SHADOWED\s+local rule second_approval\.rego:16\s+deny contains "refunds above 5000/);
  t.notMatch(run.stdout, /SHADOWED\s+local rule second_approval\.rego:22/, 'the EU cap is not shadowed');
  t.match(run.stdout, /restricts\s+local denies what central allows/);
});

t.test('first-applicable makes a local restriction a failing conflict', async (t) => {
  const run = await conflicts('policies/hybrid/local', '--combine', 'first-applicable', '--format', 'json');
  t.equal(run.code, 2);
  const report = JSON.parse(run.stdout) as Report;
  t.ok(report.conflicts.some((g) => g.kind === 'local-denies-central-allows' && g.failing));
});

t.test('bad arguments exit 1 with a message naming the problem', async (t) => {
  const run = await conflicts('policies/hybrid/local', '--combine', 'most-specific');
  t.equal(run.code, 1);
  t.match(run.stderr, /--combine must be deny-overrides or first-applicable/);
  const wasm = await conflicts('policies/hybrid/local.tar.gz');
  t.equal(wasm.code, 1);
  t.match(wasm.stderr, /TG_ERR_INPUT_INVALID: .*pass the policy directory/);
});
