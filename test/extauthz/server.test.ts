/**
 * Tollgate's ext_authz server on its own: bad input gets a defined answer (deny with
 * a reason or a clear gRPC error) and never stops the server; concurrent callers are
 * all served; the agent token overrides input.agent and is stripped; reflection
 * and health work for grpcurl; the listener is off when disabled.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { checkMethod, type Message } from '../../src/proto/ext-authz.ts';
import { signAgentToken } from '../../src/identity/hs256.ts';
import { ROOT, startTollgate, tempDir } from '../helpers/processes.ts';
import { checkClient, startTollgateExtAuthz, type CheckOutcome } from './peers.ts';
import { moduleLoadRecorder } from '../helpers/module-loads.ts';

const GRPCURL = join(ROOT, '.tools/bin/grpcurl');
const run = promisify(execFile);
const SECRET = 'a-test-secret-of-32-characters!!';

function http(
  method: string,
  host: string,
  path: string,
  headers: Record<string, string> = {},
  extra: Message = {},
): Message {
  return {
    attributes: { request: { http: { method, host, path, headers: { ':authority': host, ...headers }, ...extra } } },
  };
}

function statusCode(outcome: CheckOutcome): number | string {
  if ('error' in outcome) return grpc.status[outcome.error.code]!;
  return ((outcome.response.status as Message | undefined)?.code as number | undefined) ?? 0;
}

const ALLOWED = http('GET', 'crm.internal', '/v1/customers');

t.test('bad input gets a defined answer and the server keeps serving concurrent callers', async (t) => {
  const { extAuthzPort, tollgate } = await startTollgateExtAuthz(t, { agent: { id: 'support-bot', role: 'support' } });
  const client = checkClient(extAuthzPort);
  t.teardown(() => client.close());

  // An empty CheckRequest and one with no http request: denied by the seed policy (no destination), not an error.
  t.equal(statusCode(await client.check({})), 7);
  t.equal(statusCode(await client.check({ attributes: { source: { principal: 'x' } } })), 7);

  const malformed = await client.check(http('GET', 'crm.internal', '/v1/%E0%A4%A'));
  t.equal(statusCode(malformed), 7, 'malformed path: PERMISSION_DENIED');
  if (!('error' in malformed)) {
    t.equal(((malformed.response.deniedResponse as Message).status as Message).code, 400, 'with HTTP 400');
    t.match(
      (malformed.response.deniedResponse as Message).body,
      /^request_parse_error: /,
      'and the reason as the body',
    );
  }

  const wire = checkMethod().requestSerialize(
    http(
      'POST',
      'payments.internal',
      '/v1/refunds',
      { 'content-type': 'application/json' },
      { body: '{"note": "AB"}' },
    ),
  );
  const at = wire.indexOf(Buffer.from('AB'));
  wire[at] = 0xc3;
  wire[at + 1] = 0x28;
  t.equal(statusCode(await client.check(wire)), 'INTERNAL', 'non-UTF-8 bytes in a string field: INTERNAL, as grpc-go');
  t.equal(
    statusCode(await client.check(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]))),
    'INTERNAL',
    'bytes that are not a CheckRequest: INTERNAL',
  );

  const huge = http(
    'POST',
    'payments.internal',
    '/v1/refunds',
    { 'content-type': 'application/json' },
    { body: `{"amount": 1, "pad": "${'x'.repeat(10 << 20)}"}` },
  );
  t.equal(
    statusCode(await client.check(huge, 20_000)),
    'RESOURCE_EXHAUSTED',
    'a 10 MiB CheckRequest: RESOURCE_EXHAUSTED (4 MiB limit)',
  );

  // Many callers at once, good and bad interleaved: every one gets its own answer.
  const mix = Array.from({ length: 120 }, (_, i) =>
    i % 3 === 0
      ? { request: ALLOWED, expect: 0 }
      : i % 3 === 1
        ? { request: http('GET', 'hr.internal', '/'), expect: 7 }
        : { request: http('GET', 'crm.internal', '/%zz'), expect: 7 },
  );
  const answers = await Promise.all(mix.map((m) => client.check(m.request)));
  t.same(
    answers.map(statusCode),
    mix.map((m) => m.expect),
    'all 120 concurrent calls answered correctly',
  );
  t.equal(statusCode(await client.check(ALLOWED)), 0, 'still serving after all of it');
  t.equal(tollgate.child.exitCode, null, 'the process is alive');
});

t.test(
  'a verified agent token in the CheckRequest overrides input.agent and is removed upstream; a bad one is UNAUTHENTICATED',
  async (t) => {
    const { extAuthzPort } = await startTollgateExtAuthz(t, {
      agent: { id: 'cs-bot', role: 'customer-service', token: { header: 'x-agent-token', secret: SECRET } },
    });
    const client = checkClient(extAuthzPort);
    t.teardown(() => client.close());
    const token = signAgentToken({ sub: 'support-bot', role: 'support' }, SECRET);
    const ok = await client.check(
      http(
        'POST',
        'payments.internal',
        '/v1/refunds',
        { 'content-type': 'application/json', 'x-agent-token': token },
        { body: '{"amount": 10}' },
      ),
    );
    t.equal(statusCode(ok), 0, 'support-bot may refund; cs-bot may not');
    if (!('error' in ok)) {
      const okResponse = ok.response.okResponse as Message;
      t.same(
        okResponse.headers,
        [{ header: { key: 'x-tollgate-agent', value: 'support-bot' } }],
        "the policy saw the token's agent",
      );
      t.ok((okResponse.headersToRemove as string[]).includes('x-agent-token'), 'Envoy is told to strip the token');
    }
    const bad = await client.check(http('GET', 'crm.internal', '/', { 'x-agent-token': `${token}x` }));
    t.equal(statusCode(bad), grpc.status.UNAUTHENTICATED);
    if (!('error' in bad)) t.equal(((bad.response.deniedResponse as Message).status as Message).code, 401);
    const without = await client.check(
      http(
        'POST',
        'payments.internal',
        '/v1/refunds',
        { 'content-type': 'application/json' },
        { body: '{"amount": 10}' },
      ),
    );
    t.equal(statusCode(without), 7, 'without a token, the configured agent (cs-bot) decides');
  },
);

t.test('grpcurl lists, describes and calls the server through reflection, and checks health', async (t) => {
  const { extAuthzPort } = await startTollgateExtAuthz(t, { agent: { id: 'support-bot', role: 'support' } });
  const target = `127.0.0.1:${extAuthzPort}`;
  const list = await run(GRPCURL, ['-plaintext', target, 'list']);
  t.match(list.stdout, 'envoy.service.auth.v3.Authorization');
  t.match(list.stdout, 'grpc.health.v1.Health');
  const describe = await run(GRPCURL, ['-plaintext', target, 'describe', 'envoy.service.auth.v3.CheckResponse']);
  t.match(
    describe.stdout,
    /\.envoy\.service\.auth\.v3\.DeniedHttpResponse denied_response = 2/,
    "Envoy's field names and numbers",
  );
  const health = await run(GRPCURL, [
    '-plaintext',
    '-d',
    '{"service":"envoy.service.auth.v3.Authorization"}',
    target,
    'grpc.health.v1.Health/Check',
  ]);
  t.same(JSON.parse(health.stdout), { status: 'SERVING' });
  const check = await run(GRPCURL, [
    '-plaintext',
    '-d',
    JSON.stringify({
      attributes: { request: { http: { method: 'GET', host: 'crm.internal', path: '/v1/customers' } } },
    }),
    target,
    'envoy.service.auth.v3.Authorization/Check',
  ]);
  const response = JSON.parse(check.stdout) as { okResponse?: { headers?: unknown } };
  t.same(response.okResponse?.headers, [{ header: { key: 'x-tollgate-agent', value: 'support-bot' } }]);
});

t.test('the ext_authz listener is off when extAuthz.enabled is false', async (t) => {
  const tollgate = await startTollgate(t, { extAuthz: { enabled: false } });
  t.notMatch(tollgate.output(), 'ext_authz', 'no ext_authz address is printed');
  t.match(
    tollgate.output(),
    /proxy http:\/\/127\.0\.0\.1:\d+  admin http:\/\/127\.0\.0\.1:\d+  policy /,
    'the listening line keeps its shape',
  );
});

t.test(
  'ext_authz only (proxy.enabled: false): Checks are decided, no proxy listens, its modules are never loaded',
  async (t) => {
    // A module hook in the child records every module it loads (ESM and require).
    const dir = await tempDir();
    const loadedBy = async (proxy: boolean): Promise<{ loaded: string[]; output: string }> => {
      const recorder = await moduleLoadRecorder(dir, `loaded-${proxy}`);
      const { extAuthzPort, tollgate } = await startTollgateExtAuthz(
        t,
        { agent: { id: 'support-bot', role: 'support' }, proxy: { enabled: proxy } },
        recorder.env,
      );
      const client = checkClient(extAuthzPort);
      try {
        t.equal(statusCode(await client.check(ALLOWED)), 0, `proxy ${proxy}: an allowed call is OK`);
        t.equal(statusCode(await client.check(http('GET', 'hr.internal', '/'))), 7, 'a denied one is not');
      } finally {
        client.close();
      }
      t.equal(await tollgate.stop(), 0, 'stops cleanly on SIGTERM');
      return { loaded: await recorder.loaded(), output: tollgate.output() };
    };
    // The listener registry (upstream/loop-guard) is shared: the ext_authz listener registers itself too.
    const outbound =
      /\/node_modules\/undici\/|\/src\/pep\/|\/src\/upstream\/(?!loop-guard\.)|\/src\/mcp\/response-relay\./;

    const off = await loadedBy(false);
    t.match(off.output, /listening: admin http:\/\/127\.0\.0\.1:\d+  ext_authz 127\.0\.0\.1:\d+  policy /);
    t.notMatch(off.output, /proxy http/, 'no proxy address is printed');
    t.ok(
      off.loaded.some((url) => url.includes('/src/extauthz/server.')),
      'the hook saw the modules the ext_authz server loads',
    );
    t.same(
      off.loaded.filter((url) => outbound.test(url)),
      [],
      'undici, the proxy, the upstream pools and the MCP relay are not loaded',
    );
    // The same hook with the proxy on: the outbound modules are loaded (the check above can fail).
    const on = await loadedBy(true);
    t.ok(on.loaded.filter((url) => outbound.test(url)).length > 10, 'with the proxy, they are');
  },
);

t.test('proxy.enabled: false refuses what would need the proxy, naming the field', async (t) => {
  const refused = async (config: Record<string, unknown>, message: RegExp): Promise<void> => {
    const tollgate = startTollgate(t, { proxy: { enabled: false }, ...config });
    await t.rejects(tollgate, message);
  };
  await refused(
    { extAuthz: { enabled: false } },
    /TG_ERR_CONFIG_INVALID: \/proxy\/enabled: false needs extAuthz\.enabled/,
  );
  await refused(
    { transparent: { enabled: true } },
    /TG_ERR_CONFIG_INVALID: \/transparent\/enabled: .*needs proxy\.enabled/,
  );
  await refused(
    { mcp: { response: { decisionPath: 'tollgate/mcp/response' } } },
    /TG_ERR_CONFIG_INVALID: \/mcp\/response\/decisionPath: .*need proxy\.enabled/,
  );
});
