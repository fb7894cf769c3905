// The CLI as users run it: exit codes and messages of check, config, help, version, run.
import t from 'tap';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CLI, buildBundle } from '../helpers/processes.ts';

function tollgate(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

function input(method: string, host: string, path: string, agent: string, body?: unknown) {
  const text = body === undefined ? undefined : JSON.stringify(body);
  return {
    attributes: {
      request: {
        http: {
          method,
          host,
          path,
          scheme: 'http',
          headers: { ':authority': host, ...(text ? { 'content-type': 'application/json' } : {}) },
          ...(text ? { body: text } : {}),
        },
      },
    },
    parsed_path: path.split('?')[0]!.replace(/^\//, '').split('/'),
    parsed_query: {},
    parsed_body: body ?? null,
    truncated_body: false,
    agent: { id: agent, role: '', labels: {} },
  };
}

t.test('check exits 0 on allow and 2 on deny, printing the decision', async (t) => {
  const dir = t.testdir({
    'allow.json': JSON.stringify(input('POST', 'payments.internal', '/v1/refunds', 'support-bot', { amount: 500 })),
    'deny.json': JSON.stringify(input('POST', 'payments.internal', '/v1/refunds', 'support-bot', { amount: 500.01 })),
  });
  const allow = await tollgate(['check', '--input', join(dir, 'allow.json')]);
  t.equal(allow.code, 0, allow.stderr);
  t.equal(JSON.parse(allow.stdout).allowed, true);
  const deny = await tollgate(['check', '-i', join(dir, 'deny.json')]);
  t.equal(deny.code, 2, deny.stderr);
  const out = JSON.parse(deny.stdout);
  t.equal(out.allowed, false);
  t.match(out.reasons.join(' '), /500\.01/);
  t.equal(out.path, 'tollgate/authz/decision');
});

t.test('check exits 1 with a clear message on bad input or a policy error', async (t) => {
  const dir = t.testdir({ 'broken.json': '{not json', 'array.json': '[]', 'ok.json': '{}' });
  const broken = await tollgate(['check', '--input', join(dir, 'broken.json')]);
  t.equal(broken.code, 1);
  t.match(broken.stderr, /broken\.json is not valid JSON/);
  t.equal((await tollgate(['check', '--input', join(dir, 'array.json')])).code, 1);
  t.equal((await tollgate(['check', '--input', join(dir, 'missing.json')])).code, 1);
  t.equal((await tollgate(['check'])).code, 1);
  const bundle = await buildBundle({ 'p.rego': 'package tollgate.authz\n\ndecision := {"allowed": 1}\n' }, [
    'tollgate/authz/decision',
  ]);
  const bad = await tollgate(['check', '--input', join(dir, 'ok.json')], { TOLLGATE_BUNDLE: bundle });
  t.equal(bad.code, 1);
  t.match(bad.stderr, /TG_ERR_POLICY_RESULT/);
});

t.test('run refuses an invalid config, naming the field and the problem', async (t) => {
  const dir = t.testdir({ 'bad.yaml': 'proxy:\n  listen: everywhere\n  maxRequestBytes: lots\n' });
  const r = await tollgate(['run', '--config', join(dir, 'bad.yaml')]);
  t.equal(r.code, 1);
  t.match(r.stderr, /TG_ERR_CONFIG_INVALID/);
  t.match(r.stderr, /\/proxy\/listen: expected host:port/);
  t.match(r.stderr, /\/proxy\/maxRequestBytes/);
});

t.test('run refuses a bundle that is not a bundle', async (t) => {
  const dir = t.testdir({ 'junk.tar.gz': 'not gzip' });
  const r = await tollgate(['run'], {
    TOLLGATE_BUNDLE: join(dir, 'junk.tar.gz'),
    TOLLGATE_PROXY_LISTEN: '127.0.0.1:0',
    TOLLGATE_ADMIN_LISTEN: '127.0.0.1:0',
  });
  t.equal(r.code, 1);
  t.match(r.stderr, /TG_ERR_BUNDLE_INVALID: .*junk\.tar\.gz: not a gzip file/);
});

t.test('run refuses a decision path the bundle does not have', async (t) => {
  const dir = t.testdir({
    'c.yaml': 'pdp:\n  decisionPath: nope/allow\nproxy:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n',
  });
  const r = await tollgate(['run', '--config', join(dir, 'c.yaml')]);
  t.equal(r.code, 1);
  t.match(r.stderr, /"nope\/allow" is not an entrypoint/);
});

t.test('config validate and schema', async (t) => {
  const dir = t.testdir({ 'ok.yaml': 'agent:\n  id: cs-bot\n', 'bad.yaml': 'pdp:\n  timeoutMs: -5\n' });
  const ok = await tollgate(['config', 'validate', join(dir, 'ok.yaml')]);
  t.equal(ok.code, 0);
  t.match(ok.stdout, /valid/);
  const bad = await tollgate(['config', 'validate', join(dir, 'bad.yaml')]);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /\/pdp\/timeoutMs/);
  const schema = await tollgate(['config', 'schema']);
  t.equal(JSON.parse(schema.stdout).type, 'object');
  await writeFile(join(dir, 'x'), '');
});

t.test('help, per-command help and version', async (t) => {
  const help = await tollgate(['--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /Commands:/);
  const runHelp = await tollgate(['run', '--help']);
  t.match(runHelp.stdout, /--demo/);
  const checkHelp = await tollgate(['check', '--help']);
  t.match(checkHelp.stdout, /0 allow, 2 deny, 1 error/);
  t.match((await tollgate(['version'])).stdout, /^tollgate \d+\.\d+\.\d+/);
  const unknown = await tollgate(['frobnicate']);
  t.equal(unknown.code, 1);
  t.match(unknown.stderr, /unknown command "frobnicate"/);
});
