/**
 * The PDP chain in process, over real OPA WASM bundles built with the real opa:
 * deny-overrides (either layer's deny wins, header changes of every allowing layer
 * apply), first-applicable (the first layer with an opinion decides, later ones are
 * not asked), "applicable": false, and a stage that fails under each failure mode.
 */
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadBundle } from '../../src/bundle/load.ts';
import { combine, createChainPdp, type ChainStage, type CombiningRule } from '../../src/pdp/chain.ts';
import type { Decision } from '../../src/pdp/types.ts';
import { createWasmPdp } from '../../src/pdp/wasm.ts';
import type { PolicyInput } from '../../src/input/build.ts';
import { explainDecision } from '../../src/cli/explain.ts';
import { ROOT, buildBundle } from '../helpers/processes.ts';

const fixture = (name: string): Promise<string> => readFile(join(ROOT, 'test/fixtures/chain', name), 'utf8');

async function wasmStage(
  name: string,
  file: string,
  entrypoint: string,
  options: { failureModeAllow?: boolean } = {},
): Promise<ChainStage> {
  const bundle = await loadBundle(await buildBundle({ [file]: await fixture(file) }, [entrypoint], `${name}-rev`));
  return {
    name,
    type: 'wasm',
    pdp: await createWasmPdp({ bundle, decisionPath: entrypoint, timeoutMs: 1000 }),
    timeoutMs: 1000,
    failureModeAllow: options.failureModeAllow ?? false,
  };
}

function input(path: string): PolicyInput {
  const parsed = path.split('/').filter((s) => s !== '');
  return {
    attributes: { request: { http: { method: 'GET', host: 'api.test', path, headers: {} } } },
    parsed_path: parsed,
    parsed_query: {},
    parsed_body: null,
    truncated_body: false,
    agent: { id: 'a', role: 'r', labels: {} },
  } as unknown as PolicyInput;
}

t.test('deny-overrides', async (t) => {
  const central = await wasmStage('central', 'central.rego', 'central/authz/decision');
  const local = await wasmStage('local', 'local.rego', 'local/authz/decision');
  const chain = createChainPdp({ stages: [central, local] });
  t.equal(chain.info()?.kind, 'chain');
  t.equal(chain.info()?.revision, 'central=central-rev,local=local-rev');

  await t.test('a central deny wins over a local allow, with the central status and reasons', async (t) => {
    const d = await chain.decide(input('/central-deny/x'), 'd1');
    t.equal(d.allowed, false);
    t.equal(d.decidedBy, 'central');
    t.equal(d.httpStatus, 429);
    t.same(d.reasons, ['central forbids this path']);
    t.match(d.stages, [
      { name: 'central', outcome: 'deny', allowed: false, revision: 'central-rev' },
      { name: 'local', outcome: 'allow', allowed: true, reasons: ['local allows'], revision: 'local-rev' },
    ]);
    t.match(d.result, {
      allowed: false,
      decided_by: 'central',
      combine: 'deny-overrides',
      stages: [
        { name: 'central', outcome: 'deny' },
        { name: 'local', outcome: 'allow' },
      ],
    });
  });

  await t.test('a local deny wins over a central allow', async (t) => {
    const d = await chain.decide(input('/local-deny/x'), 'd2');
    t.equal(d.allowed, false);
    t.equal(d.decidedBy, 'local');
    t.notOk('httpStatus' in d, 'the local deny names no status: the default applies');
    t.same(d.reasons, ['local forbids this path']);
    t.same(d.headers, [], 'the central allow adds no header to a deny reply');
  });

  await t.test('when both allow, the header changes of both apply in stage order', async (t) => {
    const d = await chain.decide(input('/fine'), 'd3');
    t.equal(d.allowed, true);
    t.equal(d.decidedBy, 'central');
    t.same(d.headers, [
      ['x-central', 'checked'],
      ['x-local', 'checked'],
    ]);
  });

  await t.test('a stage without an opinion leaves the decision to the others', async (t) => {
    const d = await chain.decide(input('/local-na/x'), 'd4');
    t.equal(d.allowed, true);
    t.match(d.stages, [
      { name: 'central', outcome: 'allow' },
      { name: 'local', outcome: 'not_applicable', allowed: null },
    ]);
    t.same(d.headers, [['x-central', 'checked']]);
  });

  await t.test('explain names the layer that decided and what each layer said', async (t) => {
    const d = await chain.decide(input('/local-deny/x'), 'd5');
    const text = explainDecision(input('/local-deny/x') as never, d, chain.info()!.decisionPath);
    t.match(text, /decided by layer "local"/);
    t.match(text, /  central\s+ALLOW\s+wasm @ central-rev/);
    t.match(text, /\* local\s+DENY\s+wasm @ local-rev/);
    t.match(text, /- local forbids this path/);
  });
});

t.test('first-applicable', async (t) => {
  const stages = async (order: string[], rule: CombiningRule = 'first-applicable') => {
    const all: Record<string, ChainStage> = {
      central: await wasmStage('central', 'central.rego', 'central/authz/decision'),
      local: await wasmStage('local', 'local.rego', 'local/authz/decision'),
    };
    return createChainPdp({ stages: order.map((n) => all[n]!), combine: rule });
  };

  await t.test('the first stage that applies decides and later stages are not asked', async (t) => {
    const chain = await stages(['local', 'central']);
    const d = await chain.decide(input('/central-deny/x'), 'd1');
    t.equal(d.allowed, true, "local applies first, so central's deny is never asked for");
    t.equal(d.decidedBy, 'local');
    t.equal(d.stages?.length, 1);
    t.same(d.headers, [['x-local', 'checked']]);
  });

  await t.test('a stage without an opinion passes the request to the next', async (t) => {
    const chain = await stages(['local', 'central']);
    const d = await chain.decide(input('/local-na/x'), 'd2');
    t.equal(d.allowed, true);
    t.equal(d.decidedBy, 'central');
    t.match(d.stages, [
      { name: 'local', outcome: 'not_applicable' },
      { name: 'central', outcome: 'allow' },
    ]);
  });

  await t.test('an applicable first stage allows what a later one would deny', async (t) => {
    const chain = await stages(['central', 'local']);
    const d = await chain.decide(input('/local-deny/x'), 'd3');
    t.equal(d.allowed, true);
    t.equal(d.decidedBy, 'central');
  });

  await t.test('when no stage applies, the chain denies', async (t) => {
    const chain = await stages(['local']);
    const d = await chain.decide(input('/local-na/x'), 'd4');
    t.equal(d.allowed, false);
    t.notOk(d.decidedBy);
    t.same(d.reasons, ['no stage of the policy chain applied to this request']);
  });
});

t.test('a stage that makes no decision counts as its failure mode', async (t) => {
  // The decision path is undefined on every input: TG_ERR_POLICY_UNDEFINED.
  const broken = async (failureModeAllow: boolean): Promise<ChainStage> => {
    const bundle = await loadBundle(
      await buildBundle({ 'p.rego': 'package broken\n\ndecision := true if input.never\n' }, ['broken/decision'], 'b'),
    );
    return {
      name: 'central',
      type: 'wasm',
      pdp: await createWasmPdp({ bundle, decisionPath: 'broken/decision', timeoutMs: 1000 }),
      timeoutMs: 1000,
      failureModeAllow,
    };
  };
  const local = await wasmStage('local', 'local.rego', 'local/authz/decision');

  const closed = await createChainPdp({ stages: [await broken(false), local] }).decide(input('/fine'), 'd1');
  t.equal(closed.allowed, false, 'fail closed: the failed stage counts as a deny');
  t.equal(closed.decidedBy, 'central');
  t.match(closed.stages?.[0], {
    outcome: 'error',
    allowed: false,
    error: { code: 'TG_ERR_POLICY_UNDEFINED', failureMode: 'deny' },
  });
  t.match(closed.reasons[0], /stage central made no decision \(TG_ERR_POLICY_UNDEFINED/);

  const open = await createChainPdp({ stages: [await broken(true), local] }).decide(input('/local-deny/x'), 'd2');
  t.equal(open.allowed, false, 'fail open lets the other stage decide: local still denies');
  t.equal(open.decidedBy, 'local');
  const allowed = await createChainPdp({ stages: [await broken(true), local] }).decide(input('/fine'), 'd3');
  t.equal(allowed.allowed, true);
  t.match(allowed.stages?.[0], { outcome: 'error', allowed: true, error: { failureMode: 'allow' } });
});

t.test('refuses an empty chain and duplicate stage names', async (t) => {
  const local = await wasmStage('local', 'local.rego', 'local/authz/decision');
  t.throws(() => createChainPdp({ stages: [] }), { code: 'TG_ERR_CONFIG_INVALID' });
  t.throws(() => createChainPdp({ stages: [local, local] }), { code: 'TG_ERR_CONFIG_INVALID' });
});

t.test('an allow carries the budgets, rates and approval of every allowing stage to the state step', async (t) => {
  const stage = (name: string): ChainStage => ({
    name,
    type: 'wasm',
    pdp: { info: () => undefined, decide: async () => Promise.reject(new Error('unused')), close: async () => {} },
    timeoutMs: 1000,
    failureModeAllow: false,
  });
  const decision = (result: Record<string, unknown>): Decision =>
    ({
      allowed: result.allowed === true,
      headers: [],
      requestHeadersToRemove: [],
      responseHeadersToAdd: [],
      queryParametersToSet: [],
      queryParametersToRemove: [],
      reasons: [],
      decisionId: 'd',
      revision: 'r',
      evalNanos: 0,
      result,
    }) as Decision;
  const central = {
    stage: stage('central'),
    ms: 1,
    decision: decision({
      allowed: true,
      budgets: [{ key: 'refunds:a', cost: 100, limit: 2000, window: '24h' }],
      approval: { required: true, reasons: ['over 500'], approvers: ['cfo'] },
    }),
  };
  const local = {
    stage: stage('local'),
    ms: 1,
    decision: decision({
      allowed: true,
      rates: [{ key: 'calls:a', rate: 10 }],
      approval: { required: true, reasons: ['eu review'], approvers: ['eu-lead'] },
    }),
  };
  const meta = { decisionId: 'd', revision: 'r', evalNanos: 0 };
  const allowed = combine('deny-overrides', [central, local], meta).result as Record<string, unknown>;
  t.same(allowed.budgets, [{ key: 'refunds:a', cost: 100, limit: 2000, window: '24h' }]);
  t.same(allowed.rates, [{ key: 'calls:a', rate: 10 }]);
  t.same(allowed.approval, { required: true, reasons: ['over 500', 'eu review'], approvers: ['cfo', 'eu-lead'] });

  const denyingLocal = { ...local, decision: decision({ allowed: false, reasons: ['no'] }) };
  const denied = combine('deny-overrides', [central, denyingLocal], meta).result as Record<string, unknown>;
  t.equal(denied.budgets, undefined, 'a deny consumes nothing');
  t.equal(denied.approval, undefined);
});

t.test('another entrypoint is decided by the first stage whose policy has it, as that stage alone', async (t) => {
  const central = await wasmStage('central', 'central.rego', 'central/authz/decision');
  const local = await wasmStage('local', 'local.rego', 'local/authz/decision');
  const chain = createChainPdp({ stages: [central, local] });
  const alone = await local.pdp.decide(input('/central-deny/x'), 'd', 'local/authz/decision');
  const viaChain = await chain.decide(input('/central-deny/x'), 'd', 'local/authz/decision');
  t.equal(viaChain.allowed, alone.allowed, 'the local stage decides, central is not combined in');
  t.same(viaChain.result, alone.result);
  t.equal(viaChain.stages, undefined);
  await t.rejects(chain.decide(input('/x'), 'd', 'tollgate/authz/response'), {
    code: 'TG_ERR_POLICY_EVAL',
    message: /no stage of the policy chain has the entrypoint "tollgate\/authz\/response"/,
  });
});
