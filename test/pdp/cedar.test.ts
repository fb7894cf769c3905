/**
 * The Cedar PDP with the real cedar-wasm: the request mapping (principal with role
 * parent and label tags, HTTP method or tools/call action, Destination or Tool
 * resource, schema-typed context with `invalid`), reasons from @reason annotations,
 * "not applicable" when nothing permits, load-time validation errors that name the
 * problem, use as a chain stage, `pdp.type: cedar` in a real sidecar, and that a
 * sidecar configured without Cedar never loads cedar-wasm.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createCedarPdp } from '../../src/pdp/cedar.ts';
import { createChainPdp } from '../../src/pdp/chain.ts';
import type { PolicyInput } from '../../src/input/build.ts';
import { ROOT, startTollgate, startUpstream, tempDir, viaProxy } from '../helpers/processes.ts';

const DIR = join(ROOT, 'test/fixtures/cedar');
const SCHEMA = join(DIR, 'schema.cedarschema');

function input(
  method: string,
  host: string,
  path: string,
  agent: { id: string; role: string; labels?: Record<string, string> },
  mcp?: unknown,
): PolicyInput {
  return {
    attributes: { request: { http: { method, host, path, headers: {} } } },
    parsed_path: path.split('/').filter((s) => s !== ''),
    parsed_query: {},
    parsed_body: null,
    truncated_body: false,
    agent: { labels: {}, ...agent },
    ...(mcp === undefined ? {} : { mcp }),
  } as unknown as PolicyInput;
}

const support = { id: 'support-bot', role: 'support' };
const euBot = { id: 'eu-bot', role: 'support', labels: { region: 'eu' } };
const call = (name: string, args: unknown) => ({ method: 'tools/call', id: 1, tool: { name, arguments: args } });

t.test('decides with the documented request mapping', async (t) => {
  const pdp = await createCedarPdp({ policies: join(DIR, 'policies.cedar'), schema: SCHEMA, timeoutMs: 1000 });
  t.equal(pdp.info()?.kind, 'cedar');
  t.match(pdp.info()?.revision, /^cedar-[0-9a-f]{12}$/);

  const read = await pdp.decide(input('GET', 'CRM.Internal:80', '/v1/x', support), 'd1');
  t.equal(read.allowed, true, 'principal in Role::"support" through the role parent; host normalised');
  t.match(read.result, {
    cedar: {
      requests: [
        { principal: 'Agent::"support-bot"', action: 'Action::"GET"', resource: 'Destination::"crm.internal"' },
      ],
      determining_policies: ['support-reads-crm'],
    },
  });

  const tool = await pdp.decide(input('POST', 'mcp.internal', '/mcp', euBot, call('search', { limit: 10 })), 'd2');
  t.equal(tool.allowed, true, 'labels are tags; a Tool is in its Destination');

  const big = await pdp.decide(input('POST', 'mcp.internal', '/mcp', euBot, call('search', { limit: '500' })), 'd3');
  t.equal(big.allowed, false, 'a numeric string converts to the declared Long');
  t.same(big.reasons, ['tool calls may ask for at most 100 rows']);

  const text = await pdp.decide(input('POST', 'mcp.internal', '/mcp', euBot, call('search', { limit: 'many' })), 'd4');
  t.same(text.reasons, ['limit must be an integer'], 'a value that does not convert is named in context.invalid');

  const batch = await pdp.decide(
    input('POST', 'mcp.internal', '/mcp', euBot, {
      method: 'batch',
      batch: [call('search', { limit: 1 }), call('export_all_customers', {})],
    }),
    'd5',
  );
  t.equal(batch.allowed, false, 'every call of a batch is its own Cedar request');
  t.same(batch.reasons, ['exports are never allowed']);

  const nobody = await pdp.decide(input('GET', 'hr.internal', '/', support), 'd6');
  t.equal(nobody.allowed, false);
  t.equal(nobody.applicable, false, 'nothing permits it: a default deny is "not applicable"');
  t.same(nobody.reasons, ['no Cedar policy permits this request']);

  await t.rejects(pdp.decide(input('PATCH', 'crm.internal', '/', support), 'd7'), {
    code: 'TG_ERR_POLICY_EVAL',
    message: /PATCH request .* does not fit the schema/,
  });
  await t.rejects(pdp.decide(input('GET', 'crm.internal', '/', { id: '', role: 'support' }), 'd8'), {
    code: 'TG_ERR_POLICY_EVAL',
    message: /no agent id/,
  });
});

t.test('refuses policies, schemas and entities that do not validate, naming the problem', async (t) => {
  await t.rejects(createCedarPdp({ policies: join(DIR, 'invalid.cedar'), schema: SCHEMA, timeoutMs: 100 }), {
    code: 'TG_ERR_BUNDLE_INVALID',
    message: /invalid\.cedar policy "reads-an-undeclared-attribute" \(policy line \d\): .*nonexistent/,
  });
  const dir = await tempDir();
  await writeFile(join(dir, 'bad.cedarschema'), 'entity Agent { role: Strin };\nentity Destination;\n');
  await t.rejects(
    createCedarPdp({ policies: join(DIR, 'policies.cedar'), schema: join(dir, 'bad.cedarschema'), timeoutMs: 100 }),
    {
      code: 'TG_ERR_BUNDLE_INVALID',
      message: /bad\.cedarschema: the Cedar schema does not parse: .*Strin/,
    },
  );
  await writeFile(join(dir, 'no-agent.cedarschema'), 'entity Destination;\n');
  await t.rejects(
    createCedarPdp({
      policies: join(DIR, 'policies.cedar'),
      schema: join(dir, 'no-agent.cedarschema'),
      timeoutMs: 100,
    }),
    {
      message: /must declare entity type Agent/,
    },
  );
  await writeFile(
    join(dir, 'entities.json'),
    JSON.stringify([{ uid: { type: 'Destination', id: 'x' }, attrs: { host: 1 }, parents: [] }]),
  );
  await t.rejects(
    createCedarPdp({
      policies: join(DIR, 'policies.cedar'),
      schema: SCHEMA,
      entities: join(dir, 'entities.json'),
      timeoutMs: 100,
    }),
    {
      code: 'TG_ERR_BUNDLE_INVALID',
      message: /entities\.json: the Cedar entities do not fit the schema/,
    },
  );
});

t.test('a Cedar stage without an opinion lets the next chain stage decide', async (t) => {
  const cedar = await createCedarPdp({ policies: join(DIR, 'policies.cedar'), schema: SCHEMA, timeoutMs: 1000 });
  const second = await createCedarPdp({
    policies: join(ROOT, 'policies/cedar'),
    schema: join(ROOT, 'policies/cedar/tollgate.cedarschema'),
    timeoutMs: 1000,
  });
  const chain = createChainPdp({
    stages: [
      { name: 'local', type: 'cedar', pdp: cedar, timeoutMs: 1000, failureModeAllow: false },
      { name: 'central', type: 'cedar', pdp: second, timeoutMs: 1000, failureModeAllow: false },
    ],
    combine: 'first-applicable',
  });
  const d = await chain.decide(input('GET', 'hr.internal', '/', { id: 'cs-bot', role: 'customer-service' }), 'd');
  t.equal(d.allowed, false);
  t.equal(d.decidedBy, 'central');
  t.match(d.stages, [
    { name: 'local', outcome: 'not_applicable' },
    { name: 'central', outcome: 'deny', reasons: ['customer-service agents may never reach hr.internal'] },
  ]);
});

t.test('pdp.type cedar decides in a running sidecar', async (t) => {
  const upstream = await startUpstream(t);
  const tollgate = await startTollgate(t, {
    agent: { id: 'support-bot', role: 'support' },
    pdp: {
      type: 'cedar',
      policies: join(ROOT, 'policies/cedar'),
      schema: join(ROOT, 'policies/cedar/tollgate.cedarschema'),
    },
    proxy: { resolve: { 'payments.internal:80': `127.0.0.1:${upstream.port}` } },
  });
  const refund = (amount: unknown) =>
    viaProxy(tollgate.proxyPort, {
      method: 'POST',
      url: 'http://payments.internal/v1/refunds',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ amount }),
    });
  const ok = await refund(120);
  t.equal(ok.status, 200, ok.body);
  const denied = await refund(900);
  t.equal(denied.status, 403);
  t.match(JSON.parse(denied.body), { reasons: ["refund exceeds the role's limit of 500"] });
});

t.test('a sidecar configured without Cedar never loads cedar-wasm', async (t) => {
  // A resolve hook records every module specifier the process resolves.
  const script = `
    import { registerHooks } from 'node:module';
    const seen = [];
    registerHooks({ resolve(specifier, context, next) { seen.push(specifier); return next(specifier, context); } });
    const { createPdp } = await import(${JSON.stringify(join(ROOT, 'src/sidecar.ts'))});
    const { parseConfig } = await import(${JSON.stringify(join(ROOT, 'src/config/load.ts'))});
    const pdp = await createPdp(parseConfig({}, {}, 'test'));
    await pdp.close();
    process.stdout.write(JSON.stringify(seen.filter((s) => s.includes('cedar'))));
  `;
  const out = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT }, (err, stdout, stderr) =>
      err ? reject(new Error(stderr)) : resolve(stdout),
    ),
  );
  t.same(JSON.parse(out), []);
});
