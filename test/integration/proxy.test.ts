// The sidecar as a real process in front of real upstreams, deciding with the
// committed default bundle (policies/dist/bundle.tar.gz) or a fixture policy built by opa.
import t from 'tap';
import { createServer } from 'node:net';
import { request as httpRequest } from 'node:http';
import { buildBundle, startTollgate, startUpstream, viaProxy } from '../helpers/processes.ts';
import { signAgentToken } from '../../src/identity/hs256.ts';

const SUPPORT = { id: 'support-bot', role: 'support' };

function resolveAll(
  port: number,
  hosts = ['payments.internal', 'hr.internal', 'mcp.internal', 'crm.internal'],
): Record<string, string> {
  return Object.fromEntries(hosts.map((h) => [`${h}:80`, `127.0.0.1:${port}`]));
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

t.test('default policy', async (t) => {
  const upstream = await startUpstream(t);
  const tg = await startTollgate(t, { agent: SUPPORT, proxy: { resolve: resolveAll(upstream.port) } });

  t.test('allows a permitted call and forwards it with the policy headers', async (t) => {
    const before = upstream.received.length;
    const r = await viaProxy(tg.proxyPort, { url: 'http://payments.internal/v1/refunds/r-1' });
    t.equal(r.status, 200);
    t.match(r.headers['x-tollgate-decision-id'], /^[0-9a-f-]{36}$/);
    t.equal(upstream.received.length, before + 1);
    const got = upstream.received.at(-1)!;
    t.equal(got.url, '/v1/refunds/r-1');
    t.equal(got.headers.host, 'payments.internal');
    t.equal(got.headers['x-tollgate-agent'], 'support-bot');
  });

  t.test('accepts origin-form requests with the destination from Host', async (t) => {
    const r = await viaProxy(tg.proxyPort, { url: 'http://payments.internal/v1/refunds/r-2', originForm: true });
    t.equal(r.status, 200);
    t.equal(upstream.received.at(-1)!.url, '/v1/refunds/r-2');
  });

  t.test('denies with reasons and a decision id and forwards nothing', async (t) => {
    const before = upstream.received.length;
    const r = await viaProxy(tg.proxyPort, { url: 'http://hr.internal/v1/employees' });
    t.equal(r.status, 403);
    t.equal(r.headers['content-type'], 'application/json');
    const body = JSON.parse(r.body);
    t.equal(body.allowed, false);
    t.equal(body.decision_id, r.headers['x-tollgate-decision-id']);
    t.ok(body.reasons.length > 0);
    t.match(body.reasons.join(' '), /hr\.internal/);
    t.match(body.revision, /\S/);
    t.equal(upstream.received.length, before);
  });

  t.test('allows a refund of exactly 500 and denies 500.01', async (t) => {
    const refund = (amount: number) =>
      viaProxy(tg.proxyPort, {
        method: 'POST',
        url: 'http://payments.internal/v1/refunds',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ order: 'o-1', amount }),
      });
    const ok = await refund(500);
    t.equal(ok.status, 200);
    t.equal(upstream.received.at(-1)!.body, JSON.stringify({ order: 'o-1', amount: 500 }));
    const before = upstream.received.length;
    const denied = await refund(500.01);
    t.equal(denied.status, 403);
    t.match(JSON.parse(denied.body).reasons.join(' '), /500\.01/);
    t.equal(upstream.received.length, before);
  });

  t.test('neither honours nor forwards an x-envoy-auth-partial-body header sent by an agent', async (t) => {
    const refund = (amount: number) =>
      viaProxy(tg.proxyPort, {
        method: 'POST',
        url: 'http://payments.internal/v1/refunds',
        headers: { 'content-type': 'application/json', 'x-envoy-auth-partial-body': 'true' },
        body: JSON.stringify({ order: 'o-1', amount }),
      });
    const before = upstream.received.length;
    const denied = await refund(900);
    t.equal(denied.status, 403, 'the whole body is read: the amount is decided on');
    t.match(JSON.parse(denied.body).reasons.join(' '), /900/);
    t.equal(upstream.received.length, before);
    const ok = await refund(100);
    t.equal(ok.status, 200);
    t.equal(upstream.received.at(-1)!.headers['x-envoy-auth-partial-body'], undefined, 'not forwarded');
  });

  t.test('answers a denied MCP tools/call with a JSON-RPC error carrying the reason', async (t) => {
    const call = (name: string) =>
      viaProxy(tg.proxyPort, {
        method: 'POST',
        url: 'http://mcp.internal/mcp',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 41,
          method: 'tools/call',
          params: { name, arguments: { id: 'c-1' } },
        }),
      });
    const before = upstream.received.length;
    const denied = await call('delete_customer');
    t.equal(denied.status, 200, 'the MCP session survives: HTTP 200 with a JSON-RPC error');
    const rpc = JSON.parse(denied.body);
    t.equal(rpc.id, 41);
    t.equal(rpc.error.code, -32001);
    t.match(rpc.error.message, /delete_customer/);
    t.equal(rpc.error.data.decision_id, denied.headers['x-tollgate-decision-id']);
    t.equal(upstream.received.length, before);
    const allowed = await call('lookup_customer');
    t.equal(allowed.status, 200);
    t.equal(upstream.received.length, before + 1);
  });

  t.test(
    'refuses a JSON refund whose body was truncated past the buffer limit: its amount may lie beyond it',
    async (t) => {
      const small = await startTollgate(t, {
        agent: SUPPORT,
        proxy: { maxRequestBytes: 1024, resolve: resolveAll(upstream.port) },
      });
      const before = upstream.received.length;
      const body = JSON.stringify({ order: 'o-1', note: 'x'.repeat(4096), amount: 900 });
      const r = await viaProxy(small.proxyPort, {
        method: 'POST',
        url: 'http://payments.internal/v1/refunds',
        headers: { 'content-type': 'application/json' },
        body,
      });
      t.equal(r.status, 413);
      t.equal(JSON.parse(r.body).error.code, 'TG_ERR_BODY_TOO_LARGE');
      t.equal(upstream.received.length, before);
    },
  );

  t.test('reports readiness, health and version on the admin port', async (t) => {
    const get = async (path: string) => {
      const res = await fetch(`http://127.0.0.1:${tg.adminPort}${path}`);
      return { status: res.status, body: (await res.json()) as Record<string, any> };
    };
    t.equal((await get('/healthz')).status, 200);
    const ready = await get('/readyz');
    t.equal(ready.status, 200);
    t.match(ready.body.revision, /\S/);
    const version = await get('/version');
    t.equal(version.body.policy.decisionPath, 'tollgate/authz/decision');
    t.equal((await get('/nope')).status, 404);
  });
});

const FIXTURE = `package tollgate.authz

import rego.v1

mode := object.get(input.attributes.request.http.headers, "x-mode", "")

decision := {
	"allowed": true,
	"headers": {"x-injected": "yes", "x-truncated": sprintf("%v", [input.truncated_body]), "x-agent": input.agent.id},
	"request_headers_to_remove": ["x-remove-me"],
	"response_headers_to_add": {"x-resp": "added"},
	"query_parameters_to_set": {"added": "1"},
	"query_parameters_to_remove": ["secret"],
} if mode == ""

decision := {"allowed": false, "http_status": 429, "headers": {"retry-after": "7"}, "reasons": ["slow down"]} if mode == "ratelimit"

decision := {"allowed": true} if mode == "conflict"

decision := {"allowed": false} if mode == "conflict"

decision := {"allowed": "yes"} if mode == "nonbool"
`;

t.test('fixture policy', async (t) => {
  const bundle = await buildBundle({ 'fixture.rego': FIXTURE }, ['tollgate/authz/decision'], 'fixture-1');
  const upstream = await startUpstream(t, (req, res, body) => {
    if (req.url?.startsWith('/sse')) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write('data: one\n\n');
      sseSecond.then(() => res.end('data: two\n\n'));
      return;
    }
    if (req.url?.startsWith('/slow')) return; // never answers
    const out = JSON.stringify({ bytes: Buffer.byteLength(body) });
    res.writeHead(200, {
      'content-type': 'application/json',
      'x-upstream': 'u',
      connection: 'x-upstream-private',
      'x-upstream-private': 'p',
    });
    res.end(out);
  });
  let releaseSecond!: () => void;
  const sseSecond = new Promise<void>((resolve) => (releaseSecond = resolve));
  const dead = await closedPort();
  const tg = await startTollgate(t, {
    agent: SUPPORT,
    pdp: { bundle, failureModeAllowHosts: ['status.internal'] },
    proxy: {
      maxRequestBytes: 1024,
      upstreamTimeoutMs: 300,
      resolve: {
        'tool.test:80': `127.0.0.1:${upstream.port}`,
        'status.internal:80': `127.0.0.1:${upstream.port}`,
        'down.test:80': `127.0.0.1:${dead}`,
      },
    },
  });

  t.test('applies header and query changes the policy asked for', async (t) => {
    const r = await viaProxy(tg.proxyPort, {
      url: 'http://tool.test/a?secret=s&keep=1',
      headers: { 'x-remove-me': 'gone', 'x-injected': 'spoofed', 'x-other': 'o' },
    });
    t.equal(r.status, 200);
    const got = upstream.received.at(-1)!;
    t.equal(got.headers['x-injected'], 'yes', 'policy header overrides the agent value');
    t.notOk('x-remove-me' in got.headers);
    t.equal(got.headers['x-other'], 'o');
    t.equal(got.headers['x-agent'], 'support-bot');
    t.equal(got.url, '/a?keep=1&added=1');
    t.equal(r.headers['x-resp'], 'added');
    t.equal(r.headers['x-upstream'], 'u');
    t.notOk('x-upstream-private' in r.headers, 'headers named in the upstream Connection header are hop-by-hop');
  });

  t.test('uses the policy status and headers on a deny', async (t) => {
    const r = await viaProxy(tg.proxyPort, { url: 'http://tool.test/', headers: { 'x-mode': 'ratelimit' } });
    t.equal(r.status, 429);
    t.equal(r.headers['retry-after'], '7');
    t.same(JSON.parse(r.body).reasons, ['slow down']);
  });

  t.test('forwards the whole body when the policy allows a truncated one', async (t) => {
    const body = 'z'.repeat(200_000);
    const r = await viaProxy(tg.proxyPort, {
      method: 'POST',
      url: 'http://tool.test/upload',
      headers: { 'content-type': 'application/octet-stream' },
      body,
    });
    t.equal(r.status, 200);
    const got = upstream.received.at(-1)!;
    t.equal(got.headers['x-truncated'], 'true');
    t.equal(got.body.length, 200_000);
    t.equal(got.body, body);
    t.equal(got.headers['content-length'], '200000');
  });

  t.test('forwards a chunked request body intact', async (t) => {
    const r = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port: tg.proxyPort,
          method: 'POST',
          path: 'http://tool.test/chunked',
          headers: { host: 'tool.test' },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.write('a'.repeat(3000));
      req.end('b'.repeat(3000));
    });
    t.equal(r, 200);
    t.equal(upstream.received.at(-1)!.body, 'a'.repeat(3000) + 'b'.repeat(3000));
  });

  t.test('streams an SSE response as it arrives', async (t) => {
    const events = await new Promise<string[]>((resolve, reject) => {
      const seen: string[] = [];
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port: tg.proxyPort,
          path: 'http://tool.test/sse',
          headers: { host: 'tool.test', accept: 'text/event-stream' },
        },
        (res) => {
          t.equal(res.headers['content-type'], 'text/event-stream');
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            seen.push(chunk);
            // The upstream only sends the second event after the first reached the agent:
            // a buffering proxy would never deliver "one" and this test would time out.
            if (chunk.includes('one')) releaseSecond();
          });
          res.on('end', () => resolve(seen));
        },
      );
      req.on('error', reject);
      req.end();
    });
    t.match(events.join(''), 'data: one\n\ndata: two\n\n');
    t.ok(events.length >= 2, 'events arrived in separate chunks');
  });

  t.test('answers 502 with a JSON body when the upstream is down', async (t) => {
    const r = await viaProxy(tg.proxyPort, { url: 'http://down.test/' });
    t.equal(r.status, 502);
    t.equal(JSON.parse(r.body).error.code, 'TG_ERR_UPSTREAM');
    t.match(r.headers['x-tollgate-decision-id'], /\S/);
  });

  t.test('answers 504 when the upstream does not answer in time', async (t) => {
    const r = await viaProxy(tg.proxyPort, { url: 'http://tool.test/slow' });
    t.equal(r.status, 504);
    t.equal(JSON.parse(r.body).error.code, 'TG_ERR_UPSTREAM_TIMEOUT');
  });

  t.test('fails closed when the policy errors, is undefined or breaks the result contract', async (t) => {
    for (const mode of ['conflict', 'undefined', 'nonbool']) {
      const before = upstream.received.length;
      const r = await viaProxy(tg.proxyPort, { url: 'http://tool.test/', headers: { 'x-mode': mode } });
      t.equal(r.status, 403, mode);
      const body = JSON.parse(r.body);
      t.equal(body.allowed, false);
      t.match(body.error.code, /^TG_ERR_POLICY_/, mode);
      t.equal(upstream.received.length, before, `${mode}: nothing forwarded`);
    }
  });

  t.test('fails open only for the destinations configured to', async (t) => {
    const before = upstream.received.length;
    const r = await viaProxy(tg.proxyPort, { url: 'http://status.internal/health', headers: { 'x-mode': 'conflict' } });
    t.equal(r.status, 200);
    t.equal(upstream.received.length, before + 1);
  });

  t.test('keeps serving after all of the above', async (t) => {
    t.equal((await viaProxy(tg.proxyPort, { url: 'http://tool.test/' })).status, 200);
    t.equal(tg.child.exitCode, null);
  });
});

t.test('agent identity token', async (t) => {
  const secret = 'a-test-secret-of-32-characters!!';
  const upstream = await startUpstream(t);
  const tg = await startTollgate(t, {
    agent: { ...SUPPORT, token: { secret } },
    proxy: { resolve: resolveAll(upstream.port) },
  });

  t.test('a verified token overrides the configured agent and is not forwarded', async (t) => {
    const token = signAgentToken({ sub: 'cs-bot', role: 'customer-service' }, secret);
    const denied = await viaProxy(tg.proxyPort, {
      url: 'http://payments.internal/v1/refunds/r-1',
      headers: { 'x-tollgate-agent-token': token },
    });
    t.equal(denied.status, 403, 'cs-bot may not reach payments');
    const ok = await viaProxy(tg.proxyPort, {
      url: 'http://crm.internal/v1/customers/c-1',
      headers: { 'x-tollgate-agent-token': token },
    });
    t.equal(ok.status, 200);
    t.notOk('x-tollgate-agent-token' in upstream.received.at(-1)!.headers);
    t.equal(upstream.received.at(-1)!.headers['x-tollgate-agent'], 'cs-bot');
  });

  t.test('an invalid or expired token is refused with 401', async (t) => {
    const before = upstream.received.length;
    const forged = signAgentToken({ sub: 'support-bot' }, 'another-secret-that-is-long-enough');
    const expired = signAgentToken({ sub: 'support-bot', exp: 1 }, secret);
    for (const token of [forged, expired, 'not-a-jwt']) {
      const r = await viaProxy(tg.proxyPort, {
        url: 'http://payments.internal/v1/refunds/r-1',
        headers: { 'x-tollgate-agent-token': token },
      });
      t.equal(r.status, 401);
      t.equal(JSON.parse(r.body).error.code, 'TG_ERR_IDENTITY');
    }
    t.equal(upstream.received.length, before);
  });
});

t.test('a policy evaluation over its deadline fails closed', async (t) => {
  // Counting a few million numbers takes far longer than the 1 ms deadline.
  const slow = 'package tollgate.authz\n\ndecision := {"allowed": count(numbers.range(1, 3000000)) > 0}\n';
  const bundle = await buildBundle({ 'slow.rego': slow }, ['tollgate/authz/decision'], 'slow-1');
  const upstream = await startUpstream(t);
  const tg = await startTollgate(t, {
    pdp: { bundle, timeoutMs: 1 },
    proxy: { resolve: { 'tool.test:80': `127.0.0.1:${upstream.port}` } },
  });
  const r = await viaProxy(tg.proxyPort, { url: 'http://tool.test/' });
  t.equal(r.status, 403);
  t.equal(JSON.parse(r.body).error.code, 'TG_ERR_PDP_TIMEOUT');
  t.equal(upstream.received.length, 0);
});
