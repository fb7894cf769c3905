/**
 * Cedar and Rego decide alike: the Cedar translation of the refund-limit and
 * HR-isolation scenarios (policies/cedar) and the Rego ones (policies/request.rego,
 * refunds.rego, hr_isolation.rego, decision.rego, data.json, built to WASM with the real
 * opa) are run over every input the seed policies' opa tests evaluate (captured from
 * `opa test`), and must reach the same allow/deny on each. The one exception is
 * written out below: an input without an HTTP method has no Cedar action.
 */
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadBundle } from '../../src/bundle/load.ts';
import { createWasmPdp } from '../../src/pdp/wasm.ts';
import { createCedarPdp } from '../../src/pdp/cedar.ts';
import { captureTestInputs, prepareLayer, removeLayer } from '../../src/conflicts/layer.ts';
import { describeInput } from '../../src/cli/policy.ts';
import type { PolicyInput } from '../../src/input/build.ts';
import { OPA, ROOT, buildBundle } from '../helpers/processes.ts';

const REGO = ['request.rego', 'refunds.rego', 'hr_isolation.rego', 'decision.rego', 'data.json'];
// decision.rego merges what an allowed call consumes (governance.rego, which needs the whole
// seed); the Cedar twins decide allow/deny only, so the subset names no budgets or approvals,
// and refunds above a role's limit are denied outright (no approval exception).
const NO_GOVERNANCE = 'package tollgate.authz\n\ngovernance := {}\n';
const CEDAR = join(ROOT, 'policies/cedar');

t.test('the Cedar refund and HR policies decide as the Rego ones on every seed test input', async (t) => {
  const files: Record<string, string> = {};
  for (const f of REGO) files[f] = await readFile(join(ROOT, 'policies', f), 'utf8');
  files['no_governance.rego'] = NO_GOVERNANCE;
  const data = JSON.parse(files['data.json']!) as { tollgate: { governance?: unknown } };
  delete data.tollgate.governance;
  files['data.json'] = JSON.stringify(data);
  const rego = await createWasmPdp({
    bundle: await loadBundle(await buildBundle(files, ['tollgate/authz/decision'])),
    decisionPath: 'tollgate/authz/decision',
    timeoutMs: 1000,
  });
  const cedar = await createCedarPdp({
    policies: CEDAR,
    schema: join(CEDAR, 'tollgate.cedarschema'),
    timeoutMs: 1000,
  });
  const seed = await prepareLayer({ name: 'seed', source: join(ROOT, 'policies'), opa: OPA });
  t.teardown(() => removeLayer(seed));
  const { inputs } = await captureTestInputs(seed, OPA);
  t.ok(inputs.length > 100, `${inputs.length} inputs from the seed tests`);

  const mismatches: string[] = [];
  const denied = { rego: 0, cedar: 0 };
  let unnamed = 0;
  for (const [i, input] of inputs.entries()) {
    // A request without a method names no Cedar action: Cedar refuses it (fail closed)
    // where the Rego subset, lacking the seed's zero-trust rules, would allow it.
    const method = (input as PolicyInput).attributes?.request?.http?.method;
    if (typeof method !== 'string' || method === '') {
      unnamed++;
      await t.rejects(cedar.decide(input as PolicyInput, `u${i}`), { code: 'TG_ERR_POLICY_EVAL' });
      continue;
    }
    const r = await rego.decide(input as PolicyInput, `r${i}`).then(
      (d) => ({ allowed: d.allowed, why: d.reasons.join('; ') }),
      (e: Error) => ({ allowed: false, why: `error ${e.message}` }),
    );
    const c = await cedar.decide(input as PolicyInput, `c${i}`).then(
      (d) => ({ allowed: d.allowed, why: d.reasons.join('; ') }),
      (e: Error) => ({ allowed: false, why: `error ${e.message}` }),
    );
    if (!r.allowed) denied.rego++;
    if (!c.allowed) denied.cedar++;
    if (r.allowed !== c.allowed)
      mismatches.push(`${describeInput(input)}\n    rego: ${r.allowed} ${r.why}\n    cedar: ${c.allowed} ${c.why}`);
  }
  t.same(mismatches, [], `every input decided alike (${inputs.length - unnamed} compared)`);
  t.ok(unnamed <= 2, `${unnamed} input(s) without a method are refused by Cedar`);
  t.ok(denied.rego >= 20, `both deny many inputs (rego ${denied.rego}, cedar ${denied.cedar})`);
});
