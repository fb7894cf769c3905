// `tollgate approvals` against a running sidecar on the embedded default policy: billing-bot's
// $900 refund waits for a human; the CLI lists it, refuses an answer without a name, records
// the approver, and the retried refund goes through.
import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { CLI, startTollgate, startUpstream, viaProxy } from '../helpers/processes.ts';

const run = promisify(execFile);

async function cli(args: string[], env: Record<string, string>): Promise<{ code: number; out: string; err: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, 'approvals', ...args], {
      env: { ...process.env, ...env },
    });
    return { code: 0, out: stdout, err: stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, out: err.stdout, err: err.stderr };
  }
}

t.test('approvals list, approve --as and the retried call going through', async (t) => {
  const upstream = await startUpstream(t);
  const tg = await startTollgate(t, {
    agent: { id: 'billing-bot', role: 'billing' },
    proxy: { resolve: { 'payments.internal:80': `127.0.0.1:${upstream.port}` } },
    state: { approvals: { token: 'cli-token' } },
  });
  const refund = () =>
    viaProxy(tg.proxyPort, {
      method: 'POST',
      url: 'http://payments.internal/v1/refunds',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ order: 'o-1', amount: 900 }),
    });
  const asked = await refund();
  t.equal(asked.status, 403);
  const id = JSON.parse(asked.body).approval.id as string;
  const env = { TOLLGATE_ADMIN_URL: `http://127.0.0.1:${tg.adminPort}`, TOLLGATE_APPROVALS_TOKEN: 'cli-token' };

  const listed = await cli(['list', '--status', 'pending'], env);
  t.equal(listed.code, 0, listed.err);
  t.match(listed.out, new RegExp(`${id}  PENDING  agent billing-bot`));
  t.match(listed.out, /call {7}POST payments\.internal\/v1\/refunds/);
  t.match(listed.out, /approvers {2}finance-lead, cfo/);

  const nameless = await cli(['approve', id], env);
  t.equal(nameless.code, 1);
  t.match(nameless.err, /needs --as NAME/);
  const badToken = await cli(['show', id], { ...env, TOLLGATE_APPROVALS_TOKEN: 'wrong' });
  t.equal(badToken.code, 1);
  t.match(badToken.err, /refused \(401\)/);

  const approved = await cli(['approve', id, '--as', 'finance-lead', '-m', 'goodwill'], env);
  t.equal(approved.code, 0, approved.err);
  t.match(approved.out, /APPROVED/);
  t.match(approved.out, /decided {4}approved by finance-lead at .* \("goodwill"\)/);
  t.equal((await refund()).status, 200, 'the retried refund goes through');
  const shown = await cli(['show', id, '--json'], env);
  t.match(JSON.parse(shown.out), { id, status: 'approved', uses_left: 0, decided_by: 'finance-lead' });
});
