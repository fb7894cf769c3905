// The alerting rules users load into Prometheus: the real promtool checks them and runs
// their unit tests (deploy/prometheus/tollgate-rules.test.yaml) on synthetic series, the
// PrometheusRule for the Operator carries exactly the same groups, and every alert has a
// unit test that expects it to fire.
import t from 'tap';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { ROOT, tempDir } from '../helpers/processes.ts';
import { prometheusRule } from '../../scripts/prometheus-rule.ts';

const run = promisify(execFile);
/** The pinned promtool (scripts/install-tools.sh promtool). */
export const PROMTOOL = join(ROOT, '.tools/bin/promtool');
const DIR = join(ROOT, 'deploy/prometheus');
const RULES = join(DIR, 'tollgate-rules.yaml');
const TESTS = join(DIR, 'tollgate-rules.test.yaml');

interface RuleFile {
  groups: { name: string; rules: { alert?: string; record?: string; expr: string }[] }[];
}

t.test('promtool check rules accepts the rules file', async (t) => {
  const { stdout } = await run(PROMTOOL, ['check', 'rules', RULES]);
  t.match(stdout, /SUCCESS: \d+ rules found/);
});

t.test('promtool test rules passes every unit test of the rules', async (t) => {
  const { stdout } = await run(PROMTOOL, ['test', 'rules', TESTS], { maxBuffer: 16 << 20 });
  t.match(stdout, /SUCCESS/);
});

// The unit tests are real: an expectation the rules do not meet fails promtool.
t.test('promtool test rules fails when an alert is expected that does not fire', async (t) => {
  const doc = parse(await readFile(TESTS, 'utf8')) as {
    rule_files: string[];
    tests: { alert_rule_test: { exp_alerts: { exp_labels: Record<string, string> }[] }[] }[];
  };
  doc.rule_files = [RULES];
  doc.tests = doc.tests.slice(0, 1);
  const first = doc.tests[0]!.alert_rule_test[1]!;
  first.exp_alerts[0]!.exp_labels.agent = 'somebody-else';
  const file = join(await tempDir(), 'broken.test.yaml');
  await writeFile(file, JSON.stringify(doc));
  const failed = await run(PROMTOOL, ['test', 'rules', file]).then(
    () => undefined,
    (err: { code: number; stdout: string; stderr: string }) => err,
  );
  t.ok(failed, 'promtool exits non-zero');
  t.match(`${failed?.stdout}${failed?.stderr}`, /somebody-else/);
});

t.test('every alert has a unit test that expects it to fire', async (t) => {
  const rules = parse(await readFile(RULES, 'utf8')) as RuleFile;
  const tests = parse(await readFile(TESTS, 'utf8')) as {
    tests: { alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }[];
  };
  const fired = new Set(
    tests.tests.flatMap((c) => c.alert_rule_test.filter((a) => a.exp_alerts.length > 0).map((a) => a.alertname)),
  );
  const alerts = rules.groups.flatMap((g) => g.rules.flatMap((r) => (r.alert === undefined ? [] : [r.alert])));
  t.ok(alerts.length >= 20, `${alerts.length} alerts`);
  t.same(
    alerts.filter((a) => !fired.has(a)),
    [],
  );
});

t.test('the PrometheusRule carries the same groups as the rules file and is up to date', async (t) => {
  const rulesText = await readFile(RULES, 'utf8');
  const committed = await readFile(join(DIR, 'tollgate-prometheusrule.yaml'), 'utf8');
  const crd = parse(committed) as { apiVersion: string; kind: string; spec: RuleFile };
  t.equal(crd.apiVersion, 'monitoring.coreos.com/v1');
  t.equal(crd.kind, 'PrometheusRule');
  t.same(crd.spec.groups, (parse(rulesText) as RuleFile).groups);
  t.equal(committed, prometheusRule(rulesText), 'regenerate with node scripts/prometheus-rule.ts');
});

t.test('the alerts use the metric names the budgets, rate limits and approvals export', async (t) => {
  const text = await readFile(RULES, 'utf8');
  for (const name of [
    'tollgate_budget_exhausted_total',
    'tollgate_rate_limited_total',
    'tollgate_approvals_pending',
    'tollgate_approvals_decided_total',
    'tollgate_state_errors_total',
  ])
    t.match(text, name);
});
