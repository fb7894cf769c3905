// Budgets and approvals shared by two Tollgate replicas (two real sidecar processes)
// through one real redis-server: the budget holds exactly under concurrency, an outage
// fails closed within the deadline and recovers, and an approval given through one
// replica's admin API lets the call through the other exactly once.
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildBundle, startTollgate, startUpstream, tempDir, viaProxy, type Tollgate } from '../helpers/processes.ts';
import { startRedis } from '../helpers/redis.ts';
import { pollPause } from '../helpers/poll.ts';

const POLICY = `package tollgate.authz

default decision := {"allowed": false, "reasons": ["not a known call"]}

# A refund charges the account's budget: $2,000 per rolling 24 h.
decision := {"allowed": true, "budgets": [{
	"key": sprintf("refunds:%s", [input.parsed_body.account]),
	"name": "daily_refunds",
	"cost": input.parsed_body.amount,
	"limit": 2000,
	"window": "24h",
}]} if input.attributes.request.http.path == "/v1/refunds"

# A large refund needs the CFO.
decision := {"allowed": true, "approval": {
	"required": true,
	"reasons": ["refund above 500"],
	"approvers": ["cfo"],
	"ttl": "10m",
}} if input.attributes.request.http.path == "/v1/large-refunds"
`;

// Generous for a loaded test machine; the slow-redis case shows the deadline holds.
const TIMEOUT_MS = 2000;
const server = await startRedis(t);
const upstream = await startUpstream(t);
const bundle = await buildBundle({ 'policy.rego': POLICY }, ['tollgate/authz/decision']);
const logDir = await tempDir();

function replica(name: string): Promise<Tollgate> {
  return startTollgate(t, {
    agent: { id: 'billing-bot', role: 'billing' },
    pdp: { bundle },
    proxy: { resolve: { 'payments.internal:80': `127.0.0.1:${upstream.port}` } },
    decisionLog: { file: join(logDir, `${name}.jsonl`) },
    state: {
      redis: server.url,
      timeoutMs: TIMEOUT_MS,
      circuitBreaker: { failureThreshold: 5, openMs: 300 },
      approvals: { token: 'approver-token' },
    },
  });
}
const [a, b] = await Promise.all([replica('a'), replica('b')]);

const refund = (replica: Tollgate, account: string, amount: number, path = '/v1/refunds') =>
  viaProxy(replica.proxyPort, {
    method: 'POST',
    url: `http://payments.internal${path}`,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ account, amount }),
  });

const received = (path: string, account: string): number =>
  upstream.received.filter((r) => r.url === path && r.body.includes(`"${account}"`)).length;

t.test('200 concurrent $100 refunds through two replicas allow exactly 20 against a $2,000 budget', async (t) => {
  // Warm-up: each replica has loaded the scripts and compiled its hot path once.
  for (const r of [a, b]) t.equal((await refund(r, 'acct-warm-up', 1)).status, 200);
  // A replica alone would allow 20; half the calls go to each, so 20 in all means one shared budget.
  const replies = await Promise.all(
    Array.from({ length: 200 }, (_, i) => refund(i % 2 === 0 ? a : b, 'acct-concurrent', 100)),
  );
  const allowed = replies.filter((r) => r.status === 200);
  const denied = replies.filter((r) => r.status === 403);
  t.equal(allowed.length, 20, 'exactly 20 allowed');
  // A store call that missed its deadline on a loaded machine fails closed (503): never an allow.
  t.same(
    replies.filter((r) => r.status !== 200 && r.status !== 403 && r.status !== 503).map((r) => r.body),
    [],
    'every other refund is refused',
  );
  t.ok(denied.length >= 150, `${denied.length} refused for the budget, the rest failed closed`);
  t.equal(received('/v1/refunds', 'acct-concurrent'), 20, 'exactly 20 reached the payments service');
  t.match(JSON.parse(denied[0]!.body), {
    allowed: false,
    reasons: [/^budget daily_refunds exhausted: 2000 of 2000 used/],
    budget: { key: 'refunds:acct-concurrent', limit: 2000, cost: 100 },
  });
});

t.test('redis killed mid-run fails closed within the deadline and recovers when it returns', async (t) => {
  t.equal((await refund(a, 'acct-outage', 10)).status, 200, 'before the outage');
  await server.kill();
  // Every request during the outage is answered, closed, and none waits past the deadline
  // (plus the time a loaded machine takes to answer at all).
  const slowest: number[] = [];
  for (let i = 0; i < 12; i++) {
    const started = performance.now();
    const reply = await refund(i % 2 === 0 ? a : b, 'acct-outage', 10);
    slowest.push(performance.now() - started);
    t.equal(reply.status, 503, `request ${i} fails closed`);
    t.match(JSON.parse(reply.body), {
      allowed: false,
      reasons: ['state store unavailable (TG_ERR_STATE_UNAVAILABLE): failing closed'],
      error: { code: 'TG_ERR_STATE_UNAVAILABLE' },
    });
    t.equal(reply.headers['retry-after'], '1');
  }
  t.ok(Math.max(...slowest) < TIMEOUT_MS + 1000, `slowest answer ${Math.round(Math.max(...slowest))} ms`);
  t.ok(
    slowest.slice(-4).every((ms) => ms < TIMEOUT_MS),
    'with the circuit open, answers come at once',
  );
  t.equal(received('/v1/refunds', 'acct-outage'), 1, 'nothing was forwarded during the outage');
  const metrics = await (await fetch(`http://127.0.0.1:${a.adminPort}/metrics`)).text();
  t.match(metrics, /tollgate_state_errors_total\{operation="(usage|consume)"\} [1-9]/);

  await server.start();
  const deadline = Date.now() + 20_000;
  let recovered = false;
  while (!recovered && Date.now() < deadline) {
    const [ra, rb] = await Promise.all([refund(a, 'acct-outage', 10), refund(b, 'acct-outage', 10)]);
    recovered = ra.status === 200 && rb.status === 200;
    if (!recovered) await pollPause();
  }
  t.ok(recovered, 'both replicas allow again once redis is back');
});

t.test('a redis that hangs costs each request at most the deadline, then recovers', async (t) => {
  t.equal((await refund(b, 'acct-hang', 10)).status, 200);
  // DEBUG SLEEP blocks the server: connections stay open, nothing answers.
  const sleeping = server.command('DEBUG SLEEP 5');
  const times = await Promise.all(
    Array.from({ length: 6 }, async (_, i) => {
      const started = performance.now();
      const reply = await refund(i % 2 === 0 ? a : b, 'acct-hang', 10);
      return { status: reply.status, ms: performance.now() - started };
    }),
  );
  for (const { status, ms } of times) {
    t.equal(status, 503, 'fails closed');
    t.ok(ms < TIMEOUT_MS + 1000, `answered in ${Math.round(ms)} ms (deadline ${TIMEOUT_MS} ms)`);
  }
  await sleeping;
  const deadline = Date.now() + 20_000;
  let back = false;
  while (!back && Date.now() < deadline) {
    back = (await refund(a, 'acct-hang', 10)).status === 200 && (await refund(b, 'acct-hang', 10)).status === 200;
    if (!back) await pollPause();
  }
  t.ok(back, 'both replicas allow again once redis answers');
});

t.test(
  'an approval requested on one replica and given through the other lets the call through exactly once',
  async (t) => {
    const first = await refund(a, 'acct-approval', 900, '/v1/large-refunds');
    t.equal(first.status, 403);
    const body = JSON.parse(first.body) as { approval: { id: string; status: string; status_url: string } };
    t.equal(body.approval.status, 'pending');
    t.match(
      body.approval.status_url,
      new RegExp(`^http://127\\.0\\.0\\.1:${a.adminPort}/v1/approvals/${body.approval.id}$`),
    );
    const id = body.approval.id;
    const again = await refund(b, 'acct-approval', 900, '/v1/large-refunds');
    t.equal(JSON.parse(again.body).approval.id, id, 'a retry before the answer joins the same approval');

    const admin = (path: string, init: RequestInit = {}) =>
      fetch(`http://127.0.0.1:${b.adminPort}${path}`, {
        ...init,
        headers: { authorization: 'Bearer approver-token', 'content-type': 'application/json' },
      });
    const listed = (await (await admin('/v1/approvals?status=pending')).json()) as { approvals: { id: string }[] };
    t.ok(
      listed.approvals.some((x) => x.id === id),
      'the other replica lists it',
    );
    t.equal((await fetch(`http://127.0.0.1:${b.adminPort}/v1/approvals/${id}`)).status, 401, 'the token is required');
    const wrong = await admin(`/v1/approvals/${id}/approve`, {
      method: 'POST',
      body: JSON.stringify({ approver: 'bob' }),
    });
    t.equal(wrong.status, 403, 'only a named approver may approve');
    const approved = await admin(`/v1/approvals/${id}/approve`, {
      method: 'POST',
      body: JSON.stringify({ approver: 'cfo', comment: 'customer goodwill' }),
    });
    t.equal(approved.status, 200);
    t.match(await approved.json(), { id, status: 'approved', decided_by: 'cfo', uses_left: 1 });

    const retried = await refund(a, 'acct-approval', 900, '/v1/large-refunds');
    t.equal(retried.status, 200, 'the retried call goes through');
    const once = await refund(a, 'acct-approval', 900, '/v1/large-refunds');
    t.equal(once.status, 403, 'but only once');
    t.not(JSON.parse(once.body).approval.id, id, 'a further call asks for a new approval');
    t.equal(received('/v1/large-refunds', 'acct-approval'), 1, 'exactly one reached the payments service');
    const other = await refund(a, 'acct-approval', 901, '/v1/large-refunds');
    t.equal(other.status, 403, 'an approval is for that exact call, not another amount');

    // The approval's events are in the hash-chained decision logs of the replicas that saw them.
    const records = async (name: string) => {
      const path = join(logDir, `${name}.jsonl`);
      const deadline = Date.now() + 10_000;
      for (;;) {
        const lines = (await readFile(path, 'utf8').catch(() => '')).split('\n').filter(Boolean);
        const parsed = lines.map((l) => JSON.parse(l) as Record<string, any>);
        if (
          parsed.some((r) => r.path === 'system/tollgate/approval' || r.custom?.state?.approval?.outcome === 'used') ||
          Date.now() > deadline
        )
          return parsed;
        await pollPause();
      }
    };
    const logB = await records('b');
    t.ok(
      logB.some(
        (r) =>
          r.path === 'system/tollgate/approval' &&
          r.result?.event === 'approval.approved' &&
          r.result?.approval?.decided_by === 'cfo',
      ),
      'replica b logged the approval',
    );
    const logA = await records('a');
    t.ok(
      logA.some((r) => r.path === 'system/tollgate/approval' && r.result?.event === 'approval.requested'),
      'replica a logged the request',
    );
    t.ok(
      logA.some((r) => r.custom?.state?.approval?.outcome === 'used' && r.custom.state.approval.id === id),
      'and the call that used it',
    );
    t.ok(
      logA.every((r) => typeof r.hash === 'string' && typeof r.prev_hash === 'string'),
      'all hash-chained',
    );
  },
);
