/**
 * The ext_authz client PDP against the real opa-envoy-plugin as the remote PDP:
 * `tollgate run` with pdp.type extauthz, requests through the proxy to a local
 * upstream. Allow (with the remote's header mutations), deny (the remote's status,
 * body, headers), a hung PDP (SIGSTOP) -> deadline -> fail closed -> circuit open
 * (immediate rejections) -> PDP resumes -> recovers; PDP killed -> fail closed ->
 * PDP back on the same port -> recovers; failureModeAllow lets requests through.
 */
import t from 'tap';
import { join } from 'node:path';
import { ROOT, startTollgate, startUpstream, viaProxy, type Reply } from '../helpers/processes.ts';
import { freePort, startOpaEnvoy, waitFor } from './peers.ts';

const POLICY = [join(ROOT, 'test/fixtures/extauthz-remote/remote.rego')];
const PATH = 'remote/authz/decision';
const TIMEOUT_MS = 300;

function errorCode(reply: Reply): string | undefined {
  try {
    return (JSON.parse(reply.body) as { error?: { code?: string } }).error?.code;
  } catch {
    return undefined;
  }
}

async function timed(fn: () => Promise<Reply>): Promise<{ reply: Reply; ms: number }> {
  const started = performance.now();
  const reply = await fn();
  return { reply, ms: performance.now() - started };
}

t.test('enforces the remote PDP decisions and fails closed while it is hung or dead', async (t) => {
  const upstream = await startUpstream(t);
  const grpcPort = await freePort();
  let opa = await startOpaEnvoy(t, { path: PATH, paths: POLICY, grpcPort });
  const tollgate = await startTollgate(t, {
    pdp: {
      type: 'extauthz',
      target: `127.0.0.1:${grpcPort}`,
      timeoutMs: TIMEOUT_MS,
      circuitBreaker: { failureThreshold: 2, openMs: 400 },
    },
    proxy: { resolve: { 'api.test:80': `127.0.0.1:${upstream.port}` } },
  });
  const get = (path: string, headers: Record<string, string> = {}): Promise<Reply> =>
    viaProxy(tollgate.proxyPort, { url: `http://api.test${path}`, headers });

  await t.test("allow: the request reaches the upstream with the remote PDP's header changes", async (t) => {
    const reply = await get('/allowed/x', { 'x-secret': 's3cret' });
    t.equal(reply.status, 200);
    t.equal(reply.headers['x-remote-resp'], '1', 'response_headers_to_add reached the client');
    const seen = upstream.received.at(-1)!;
    t.equal(seen.url, '/allowed/x');
    t.equal(seen.headers['x-remote-checked'], 'api.test', 'the remote saw the CheckRequest host and set a header');
    t.notOk('x-secret' in seen.headers, 'request_headers_to_remove applied');
  });

  await t.test('allow and deny on the body: the CheckRequest carries it and the remote parses it', async (t) => {
    const small = await viaProxy(tollgate.proxyPort, {
      method: 'POST',
      url: 'http://api.test/pay',
      headers: { 'content-type': 'application/json' },
      body: '{"amount": 99}',
    });
    t.equal(small.status, 200);
    const big = await viaProxy(tollgate.proxyPort, {
      method: 'POST',
      url: 'http://api.test/pay',
      headers: { 'content-type': 'application/json' },
      body: '{"amount": 101}',
    });
    t.equal(big.status, 429);
  });

  await t.test(
    "a body past the PEP's buffer reaches the remote flagged as partial, so its policy sees truncated_body",
    async (t) => {
      // Chunked, so there is no content-length from which the remote could tell. Not JSON:
      // a truncated JSON body is refused by the PEP itself (next test).
      const body = `amount 50 ${'x'.repeat(70_000)}`;
      const reply = await viaProxy(tollgate.proxyPort, {
        method: 'POST',
        url: 'http://api.test/pay',
        headers: { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' },
        body,
      });
      t.equal(reply.status, 429, 'denied by the remote policy (parsed_body is null), not a request_parse_error 400');
      t.equal(reply.body, 'denied by the remote PDP');
    },
  );

  await t.test(
    "a JSON body past the PEP's buffer is refused with 413 before any PDP or upstream sees it",
    async (t) => {
      const before = upstream.received.length;
      const body = `{"amount": 50, "pad": "${'x'.repeat(70_000)}"}`;
      const reply = await viaProxy(tollgate.proxyPort, {
        method: 'POST',
        url: 'http://api.test/pay',
        headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
        body,
      });
      t.equal(reply.status, 413);
      t.equal(errorCode(reply), 'TG_ERR_BODY_TOO_LARGE');
      t.equal(upstream.received.length, before);
    },
  );

  await t.test(
    "deny: the remote PDP's status, body and headers reach the client; nothing reaches the upstream",
    async (t) => {
      const before = upstream.received.length;
      const reply = await get('/forbidden');
      t.equal(reply.status, 429);
      t.equal(reply.body, 'denied by the remote PDP');
      t.equal(reply.headers['x-remote'], 'deny');
      t.ok(reply.headers['x-tollgate-decision-id']);
      t.equal(upstream.received.length, before);
    },
  );

  await t.test(
    'hung PDP: each request waits one deadline until the circuit opens, then fails closed at once; recovers when the PDP resumes',
    async (t) => {
      opa.child.kill('SIGSTOP');
      let resumed = false;
      t.teardown(() => {
        if (!resumed) opa.child.kill('SIGCONT');
      });
      const first = await timed(() => get('/allowed/1'));
      t.equal(first.reply.status, 403, 'fails closed');
      t.equal(errorCode(first.reply), 'TG_ERR_PDP_TIMEOUT');
      t.ok(first.ms >= TIMEOUT_MS * 0.9, `waited for the deadline (${Math.round(first.ms)} ms)`);
      const second = await timed(() => get('/allowed/2'));
      t.equal(errorCode(second.reply), 'TG_ERR_PDP_TIMEOUT');
      // failureThreshold 2 reached: the circuit is open.
      const third = await timed(() => get('/allowed/3'));
      t.equal(third.reply.status, 403);
      t.equal(errorCode(third.reply), 'TG_ERR_PDP_UNAVAILABLE');
      t.ok(third.ms < TIMEOUT_MS / 2, `rejected without waiting for a deadline (${Math.round(third.ms)} ms)`);
      const before = upstream.received.length;
      opa.child.kill('SIGCONT');
      resumed = true;
      await waitFor(
        async () => (await get('/allowed/back')).status === 200,
        'the circuit to close after the PDP resumed',
      );
      t.equal(upstream.received.length, before + 1, 'only the allowed request reached the upstream');
    },
  );

  await t.test('dead PDP: fails closed; a new PDP on the same port is used again', async (t) => {
    await opa.stop();
    const reply = await get('/allowed/dead');
    t.equal(reply.status, 403);
    t.match(errorCode(reply), /^TG_ERR_PDP_(UNAVAILABLE|TIMEOUT)$/);
    opa = await startOpaEnvoy(t, { path: PATH, paths: POLICY, grpcPort });
    await waitFor(async () => (await get('/allowed/again')).status === 200, 'recovery after the PDP restarted');
    t.equal((await get('/forbidden')).status, 429, 'and its denies are enforced again');
  });
});

t.test('failureModeAllow lets requests through when the remote PDP cannot be reached', async (t) => {
  const upstream = await startUpstream(t);
  const deadPort = await freePort();
  const tollgate = await startTollgate(t, {
    pdp: { type: 'extauthz', target: `127.0.0.1:${deadPort}`, timeoutMs: TIMEOUT_MS, failureModeAllow: true },
    proxy: { resolve: { 'api.test:80': `127.0.0.1:${upstream.port}` } },
  });
  const reply = await viaProxy(tollgate.proxyPort, { url: 'http://api.test/anything' });
  t.equal(reply.status, 200);
  t.equal(upstream.received.length, 1);
});

t.test('fails closed by default when the remote PDP cannot be reached', async (t) => {
  const upstream = await startUpstream(t);
  const tollgate = await startTollgate(t, {
    pdp: { type: 'extauthz', target: `127.0.0.1:${await freePort()}` },
    proxy: { resolve: { 'api.test:80': `127.0.0.1:${upstream.port}` } },
  });
  const reply = await viaProxy(tollgate.proxyPort, { url: 'http://api.test/anything' });
  t.equal(reply.status, 403);
  t.match(errorCode(reply), /^TG_ERR_PDP_/);
  t.equal(upstream.received.length, 0);
});
