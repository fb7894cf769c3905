// `tollgate report` on a decision log a real sidecar recorded for three agents (allowed
// and denied refunds, orders and HR reads): the numbers match the log, rules resolve to
// the seed policy's Rego lines and the never-fired ones are listed, the chain check runs,
// a window filters, a tampered log exits 2, and the HTML page opens in a real headless
// Chromium with no console error, no request at all, and its charts drawn.
import t from 'tap';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { CLI, ROOT, startTollgate, startUpstream, tempDir, viaProxy } from '../helpers/processes.ts';
import { signAgentToken } from '../../src/identity/hs256.ts';
import { buildComplianceReport, type ComplianceReport } from '../../src/audit/compliance.ts';

t.setTimeout(180_000);

const SECRET = 'a-report-test-secret-32-chars!!!';
const BUNDLE = join(ROOT, 'policies/dist/bundle.tar.gz');
const CHROMIUM = '/usr/bin/chromium';

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, [CLI, ...args], { maxBuffer: 32 << 20 }, (err, stdout, stderr) =>
      done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

interface Expected {
  decisions: number;
  byAgent: Map<string, { allowed: number; denied: number }>;
}

/** Counts straight from the log's lines, independently of the report code. */
function countLog(text: string): Expected {
  const byAgent = new Map<string, { allowed: number; denied: number }>();
  let decisions = 0;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const r = JSON.parse(line) as { input?: { agent: { id: string } }; result?: { allowed: boolean } };
    if (r.input === undefined || r.result === undefined) continue;
    decisions += 1;
    const c = byAgent.get(r.input.agent.id) ?? { allowed: 0, denied: 0 };
    if (r.result.allowed) c.allowed += 1;
    else c.denied += 1;
    byAgent.set(r.input.agent.id, c);
  }
  return { decisions, byAgent };
}

t.test('the compliance report of a recorded decision log', async (t) => {
  const upstream = await startUpstream(t);
  const dir = await tempDir();
  const log = join(dir, 'decisions.jsonl');
  const resolve = Object.fromEntries(
    ['payments.internal', 'hr.internal', 'orders.internal'].map((h) => [`${h}:80`, `127.0.0.1:${upstream.port}`]),
  );
  const tg = await startTollgate(t, {
    agent: { id: 'support-bot', role: 'support', token: { header: 'x-agent-token', secret: SECRET } },
    proxy: { resolve },
    decisionLog: { file: log },
  });
  const as = (sub: string, role: string) => ({ 'x-agent-token': signAgentToken({ sub, role }, SECRET) });
  const post = (headers: Record<string, string>, url: string, body: unknown) =>
    viaProxy(tg.proxyPort, {
      method: 'POST',
      url,
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  const support = as('support-bot', 'support');
  const trader = as('trader-1', 'trading');
  const cs = as('cs-bot', 'customer-service');
  t.equal((await post(support, 'http://payments.internal/v1/refunds', { amount: 10 })).status, 200);
  t.equal((await post(support, 'http://payments.internal/v1/refunds', { amount: 200 })).status, 200);
  t.equal((await post(support, 'http://payments.internal/v1/refunds', { amount: 501 })).status, 403);
  t.equal((await post(support, 'http://payments.internal/v1/refunds', { amount: 750 })).status, 403);
  t.equal((await post(trader, 'http://orders.internal/v1/orders', { quantity: 1, price: 100 })).status, 200);
  t.equal((await post(trader, 'http://orders.internal/v1/orders', { quantity: 10000, price: 100 })).status, 403);
  t.equal((await viaProxy(tg.proxyPort, { url: 'http://hr.internal/v1/employees', headers: cs })).status, 403);
  await tg.stop();
  const logText = await readFile(log, 'utf8');
  const expected = countLog(logText);
  t.equal(expected.decisions, 7, 'the sidecar recorded every decision');

  t.test('json: the numbers, rules and never-fired rules match the log', async (t) => {
    const r = await cli(['report', '--log', log, '--bundle', BUNDLE, '--format', 'json']);
    t.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as ComplianceReport;
    t.equal(report.totals.decisions, 7);
    t.equal(report.totals.allowed, 3);
    t.equal(report.totals.denied, 4);
    t.equal(report.totals.overrideRatio, 4 / 7);
    for (const [agent, c] of expected.byAgent) {
      const row = report.byAgent.find((a) => a.key === agent);
      t.same([row?.allowed, row?.denied], [c.allowed, c.denied], agent);
    }
    // Rule ids are file:line in the bundle's own Rego sources; found here by their reason template.
    const rule = (template: string) => report.byRule.find((x) => x.template?.startsWith(template));
    const refunds = rule('refund of %v exceeds the %s limit');
    t.match(refunds?.rule, /^policies\/refunds\.rego:\d+$/);
    t.equal(refunds?.denials, 2, 'both refunds over the limit resolve to one rule');
    t.same(refunds?.agents, ['support-bot']);
    t.match(rule('order notional of %v')?.rule, /^policies\/trading\.rego:/, 'the order over its notional');
    t.match(rule('agent %s has role customer-service')?.rule, /^policies\/hr_isolation\.rego:/, 'cs reaching HR');
    const never = report.rules!.neverFired;
    t.ok(
      never.some((x) => x.template === 'loan decision requires a non-empty x-fair-lending-check-id header'),
      'a rule nothing triggered is listed',
    );
    t.notOk(
      never.some((x) => x.id === refunds?.rule),
      'a rule that fired is not',
    );
    t.equal(never.length + report.byRule.length, report.rules!.total, 'every denial matched a rule of the bundle');
    t.equal(report.integrity.ok, true);
    t.equal(report.integrity.records, 8, 'genesis and seven decisions');
    t.equal(report.approvals.present, false);
    t.same(
      report.byDestination.map((d) => d.key),
      ['payments.internal', 'orders.internal', 'hr.internal'],
    );
  });

  t.test('text: a summary for the terminal; without --bundle the never-fired rules are unknown', async (t) => {
    const r = await cli(['report', '--log', log]);
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /decisions 7: allowed 3, denied 4 \(overrides, 57\.1%\)/);
    t.match(r.stdout, /chain integrity: intact \(8 records/);
    t.match(r.stdout, /rules that never fired: unknown/);
    t.match(r.stdout, /approvals: no approval events in this log/);
  });

  t.test('--since and --until select a window', async (t) => {
    const future = await cli(['report', '--log', log, '--since', '2999-01-01', '--format', 'json']);
    const report = JSON.parse(future.stdout) as ComplianceReport;
    t.equal(report.totals.decisions, 0);
    t.equal(report.totals.outsideWindow, 7);
    const bad = await cli(['report', '--log', log, '--since', 'yesterday-ish']);
    t.equal(bad.code, 1);
    t.match(bad.stderr, /TG_ERR_INPUT_INVALID: report: --since must be an ISO 8601 date/);
  });

  t.test('a tampered log is reported as broken and exits 2', async (t) => {
    const tampered = join(dir, 'tampered.jsonl');
    await writeFile(tampered, logText.replace('"amount":501', '"amount":51'));
    const r = await cli(['report', '--log', tampered, '--format', 'json']);
    t.equal(r.code, 2);
    const report = JSON.parse(r.stdout) as ComplianceReport;
    t.equal(report.integrity.ok, false);
    t.equal(report.integrity.problems[0]?.kind, 'edited');
  });

  t.test('approval events in the log are counted; their absence is said', async (t) => {
    const withApprovals = join(dir, 'approvals.jsonl');
    const events = [
      {
        type: 'approval',
        timestamp: '2026-12-01T10:00:00Z',
        approval: { id: 'ap-1', event: 'requested', agent: 'cs-bot' },
      },
      {
        type: 'approval',
        timestamp: '2026-12-01T10:05:00Z',
        approval: { id: 'ap-1', event: 'approved', approver: 'alice' },
      },
    ];
    await writeFile(withApprovals, `${logText}${events.map((e) => JSON.stringify(e)).join('\n')}\n`);
    const report = await buildComplianceReport({ log: withApprovals });
    t.equal(report.approvals.present, true);
    t.same(report.approvals.byEvent, { requested: 1, approved: 1 });
    t.equal(report.approvals.events[1]?.approver, 'alice');
  });

  t.test('html: one self-contained page a real Chromium renders with its charts', async (t) => {
    const html = join(dir, 'report.html');
    const r = await cli(['report', '--log', log, '--bundle', BUNDLE, '--format', 'html', '--out', html]);
    t.equal(r.code, 0, r.stderr);
    t.equal(r.stdout, '', 'written to --out');
    const page = await readFile(html, 'utf8');
    t.notMatch(page, /<script|https?:\/\/|src=/i, 'no script, no link out');
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    t.teardown(() => browser.close());
    const tab = await browser.newPage();
    const problems: string[] = [];
    const requests: string[] = [];
    tab.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
    });
    tab.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    tab.on('requestfailed', (req) => problems.push(`failed: ${req.url()}`));
    tab.on('request', (req) => requests.push(req.url()));
    const url = pathToFileURL(html).href;
    await tab.goto(url, { waitUntil: 'load' });
    t.same(problems, [], 'no console errors, no failed requests');
    t.same(requests, [url], 'the page itself is the only request');
    t.equal(await tab.title(), 'Tollgate compliance report');
    t.equal(await tab.getAttribute('#total-decisions b', 'data-value'), '7');
    t.equal(await tab.getAttribute('#integrity', 'data-ok'), 'true');

    for (const chart of ['days', 'agents', 'rules']) {
      const box = await tab.locator(`svg[data-chart="${chart}"]`).boundingBox();
      t.ok(box !== null && box.width > 0 && box.height > 0, `the ${chart} chart has a box`);
      const bars = tab.locator(`svg[data-chart="${chart}"] rect.bar`);
      const n = await bars.count();
      t.ok(n > 0, `the ${chart} chart has bars`);
      for (let i = 0; i < n; i++) {
        const b = await bars.nth(i).boundingBox();
        t.ok(b !== null && b.width > 0 && b.height > 0, `${chart} bar ${i} is drawn`);
      }
    }
    // The agents chart carries the log's numbers.
    const drawn = await tab.$$eval('svg[data-chart="agents"] rect.bar', (rects) =>
      rects.map((r) => [r.getAttribute('data-key'), r.getAttribute('data-kind'), Number(r.getAttribute('data-value'))]),
    );
    for (const [agent, c] of expected.byAgent) {
      const value = (kind: string) => drawn.find(([k, d]) => k === agent && d === kind)?.[2] ?? 0;
      t.same([value('allowed'), value('denied')], [c.allowed, c.denied], `${agent} bars`);
    }
    const dayTotal = await tab.$$eval('svg[data-chart="days"] rect.bar', (rects) =>
      rects.reduce((n, r) => n + Number(r.getAttribute('data-value')), 0),
    );
    t.equal(dayTotal, 7, 'the daily columns add up to every decision');
    const neverFired = await tab.locator('#never-fired tbody tr').count();
    t.ok(neverFired > 5, `${neverFired} never-fired rules listed`);
  });
});
