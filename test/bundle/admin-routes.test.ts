// The policy admin endpoints on the real admin listener, and `tollgate bundle` talking
// to them: bearer token, loopback-only by default, rollback, data patch, status.
import t from 'tap';
import { request } from 'node:http';
import { createAdmin } from '../../src/admin/server.ts';
import { isLoopback } from '../../src/admin/policy-routes.ts';
import { createPolicyLifecycle } from '../../src/bundle/lifecycle.ts';
import { runBundleCommand } from '../../src/cli/bundle.ts';
import { parseConfig } from '../../src/config/load.ts';
import { DEFAULT_BUNDLE_FOR_TESTS } from './paths.ts';
import { buildSigned, quietLogger, requestInput, startBundleServer, until } from './fixtures.ts';

const TOKEN = 'admin-token-0123456789';

async function setup(t: { teardown(fn: () => unknown): void }, listen = '127.0.0.1:0', allowRemote = false) {
  const server = await startBundleServer(t);
  await server.publish(await buildSigned({ revision: 'adm-1' }));
  const config = parseConfig({
    bundle: { source: `${server.url}/bundle.tar.gz`, minDelayMs: 10, maxDelayMs: 20 },
    data: { token: TOKEN, allowRemote },
  });
  if (config.pdp.type !== 'wasm') throw new Error('wasm');
  const lc = await createPolicyLifecycle({
    pdp: config.pdp,
    bundle: config.bundle,
    shadow: config.shadow,
    data: config.data,
    defaultBundle: DEFAULT_BUNDLE_FOR_TESTS,
    logger: quietLogger,
  });
  t.teardown(() => lc.close());
  await lc.start();
  await server.publish(await buildSigned({ revision: 'adm-2' }));
  await until(() => lc.pdp.info()?.revision === 'adm-2', 5000, 'adm-2');
  const admin = createAdmin({
    listen,
    pdp: lc.pdp,
    version: 'test',
    policy: { lifecycle: lc, token: config.data.token, allowRemote: config.data.allowRemote },
  });
  const address = await admin.listen();
  t.teardown(() => admin.close());
  return { lc, port: address.port, url: `http://127.0.0.1:${address.port}` };
}

function call(
  url: string,
  method: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>),
        }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

const auth = { authorization: `Bearer ${TOKEN}` };

t.test('PATCH /v1/data applies a JSON patch with the token; without it 401; a non-JSON body 400', async (t) => {
  const { lc, url } = await setup(t);
  t.equal((await call(`${url}/v1/data`, 'PATCH', {}, '[]')).status, 401);
  t.equal((await call(`${url}/v1/data`, 'PATCH', { authorization: 'Bearer wrong' }, '[]')).status, 401);
  const bad = await call(`${url}/v1/data`, 'PATCH', auth, 'threat level: elevated');
  t.equal(bad.status, 400);
  t.equal(bad.body.code, 'TG_ERR_BAD_REQUEST');
  t.match(bad.body.error, /not valid JSON/);
  t.equal((await call(`${url}/v1/data`, 'GET', auth)).status, 405);
  const ok = await call(
    `${url}/v1/data`,
    'PATCH',
    { ...auth, 'content-type': 'application/json-patch+json' },
    JSON.stringify([{ op: 'add', path: '/tollgate/hosts/-', value: 'patched.example' }]),
  );
  t.equal(ok.status, 200);
  t.equal(ok.body.revision, 'adm-2');
  t.equal(ok.body.data_version, 1);
  t.equal((await lc.pdp.decide(requestInput('GET', 'http://patched.example/'), 'x')).allowed, true);
});

t.test('POST /v1/bundle/rollback and GET /v1/bundle/status; `tollgate bundle` drives them', async (t) => {
  const { lc, url } = await setup(t);
  const out: string[] = [];
  const err: string[] = [];
  const io = { out: (s: string) => out.push(s), err: (s: string) => err.push(s) };
  t.equal(await runBundleCommand({ subcommand: 'rollback', admin: url, token: 'wrong', ...io }), 1);
  t.match(err.join(''), /rollback refused \(401\)/);
  t.equal(await runBundleCommand({ subcommand: 'rollback', admin: url, token: TOKEN, ...io }), 0);
  t.match(out.join(''), /rolled back: adm-2 -> adm-1/);
  t.equal(lc.pdp.info()?.revision, 'adm-1');
  out.length = 0;
  t.equal(await runBundleCommand({ subcommand: 'status', admin: url.replace('http://', ''), token: TOKEN, ...io }), 0);
  const status = JSON.parse(out.join('')) as {
    active: { revision: string };
    previous: { revision: string };
    rejections: Record<string, number>;
  };
  t.equal(status.active.revision, 'adm-1');
  t.equal(status.previous.revision, 'adm-2');
  t.equal(status.rejections.unsigned, 0);
  out.length = 0;
  t.equal(
    await runBundleCommand({ subcommand: 'patch', admin: url, token: TOKEN, patch: '{"not": "a patch"}', ...io }),
    1,
  );
  t.match(err.at(-1), /patch refused \(400\): .*array of operations/);
  t.equal(
    await runBundleCommand({
      subcommand: 'patch',
      admin: url,
      token: TOKEN,
      patch: '[{"op":"add","path":"/tollgate/hosts/-","value":"cli.example"}]',
      ...io,
    }),
    0,
  );
  t.match(out.join(''), /data patched: revision adm-1, data version 1/);
  t.equal(await runBundleCommand({ subcommand: 'explode', admin: url, token: TOKEN, ...io }), 1);
  t.equal(await runBundleCommand({ subcommand: 'status', admin: 'http://127.0.0.1:1', token: TOKEN, ...io }), 1);
  t.match(err.at(-1), /cannot reach the admin API/);
});

// Tests only send traffic to loopback, so the peer rule is checked on addresses; the
// loopback path is exercised for real by every other test in this file.
t.test('the policy routes accept loopback peers only, unless allowRemote', async (t) => {
  for (const address of ['127.0.0.1', '127.8.9.10', '::1', '::ffff:127.0.0.1']) t.ok(isLoopback(address), address);
  for (const address of ['10.0.0.7', '192.168.1.2', '::ffff:10.0.0.7', 'fe80::1', '128.0.0.1', '', undefined])
    t.notOk(isLoopback(address), String(address));
  const { port } = await setup(t);
  const local = await call(`http://127.0.0.1:${port}/v1/bundle/status`, 'GET', auth);
  t.equal(local.status, 200);
});

t.test('without a token the policy routes are not mounted', async (t) => {
  const config = parseConfig({ pdp: { bundle: await buildSigned({ revision: 'no-token' }) } });
  if (config.pdp.type !== 'wasm') throw new Error('wasm');
  const lc = await createPolicyLifecycle({
    pdp: config.pdp,
    bundle: config.bundle,
    shadow: config.shadow,
    data: config.data,
    defaultBundle: DEFAULT_BUNDLE_FOR_TESTS,
    logger: quietLogger,
  });
  t.teardown(() => lc.close());
  await lc.start();
  const admin = createAdmin({
    listen: '127.0.0.1:0',
    pdp: lc.pdp,
    version: 'test',
    policy: { lifecycle: lc, token: '', allowRemote: false },
  });
  const { port } = await admin.listen();
  t.teardown(() => admin.close());
  t.equal(
    (await call(`http://127.0.0.1:${port}/v1/bundle/rollback`, 'POST', auth)).status,
    405,
    'falls through to the plain admin routes',
  );
  t.equal((await call(`http://127.0.0.1:${port}/v1/bundle/status`, 'GET', auth)).status, 404);
  t.equal((await call(`http://127.0.0.1:${port}/readyz`, 'GET')).body.revision, 'no-token');
});

t.test('`tollgate bundle` argument parsing: defaults from the environment, clear usage errors', async (t) => {
  const { parseBundleArgs } = await import('../../src/cli/bundle.ts');
  const parsed = await parseBundleArgs(
    ['status'],
    { TOLLGATE_ADMIN_URL: 'http://127.0.0.1:9', TOLLGATE_ADMIN_TOKEN: 'tok' },
    async () => '',
  );
  t.match(parsed, { subcommand: 'status', admin: 'http://127.0.0.1:9', token: 'tok' });
  t.match(await parseBundleArgs(['patch', '-', '-t', 'x'], {}, async () => '[]'), {
    subcommand: 'patch',
    patch: '[]',
    token: 'x',
    admin: 'http://127.0.0.1:15000',
  });
  t.match(await parseBundleArgs(['verify', 'b.tar.gz', '--key', 'k.pem', '--alg', 'ES256'], {}, async () => ''), {
    verify: { bundle: 'b.tar.gz', keyFile: 'k.pem', algorithm: 'ES256', keyId: 'default', scope: '' },
  });
  await t.rejects(
    parseBundleArgs(['patch'], {}, async () => ''),
    { code: 'TG_ERR_INPUT_INVALID', message: /needs a FILE/ },
  );
  await t.rejects(
    parseBundleArgs(['patch', '/nonexistent/patch.json'], {}, async () => ''),
    { code: 'TG_ERR_INPUT_INVALID', message: /ENOENT/ },
  );
  await t.rejects(
    parseBundleArgs(['status', '--bogus'], {}, async () => ''),
    { code: 'TG_ERR_INPUT_INVALID' },
  );
  const out: string[] = [];
  const io = { out: (s: string) => out.push(s), err: (s: string) => out.push(s) };
  t.equal(await runBundleCommand({ subcommand: 'verify', admin: '', token: '', ...io }), 1);
  t.equal(
    await runBundleCommand({
      subcommand: 'verify',
      admin: '',
      token: '',
      verify: { bundle: 'x', keyFile: 'y', algorithm: 'HS256', keyId: 'default', scope: '' },
      ...io,
    }),
    1,
  );
  t.match(out.join(''), /--alg must be one of/);
});
