// The direct evaluation (input encoded straight into WASM memory, result decoded in place)
// must answer exactly what opa-wasm's own evaluate() answers, for any input: same policy
// instance, same inputs, alternating the two.
import t from 'tap';
import fc from 'fast-check';
import { fileURLToPath } from 'node:url';
import { loadBundle } from '../../src/bundle/load.ts';
import { createWasmEvaluator, directEvaluation, instantiate } from '../../src/pdp/wasm.ts';

const BUNDLE = fileURLToPath(new URL('../../policies/dist/bundle.tar.gz', import.meta.url));
const PATH = 'tollgate/authz/decision';

function request(body: unknown, path: string, method: string) {
  return {
    agent: { id: 'support-bot', role: 'support', labels: {} },
    attributes: {
      request: {
        http: {
          method,
          host: 'payments.internal',
          path,
          scheme: 'http',
          headers: { ':authority': 'payments.internal', 'content-type': 'application/json' },
          body: JSON.stringify(body),
        },
      },
    },
    parsed_body: body,
    parsed_path: path.split('/').filter(Boolean),
    parsed_query: {},
    truncated_body: false,
  };
}

t.test('answers exactly what opa-wasm evaluate() answers', async (t) => {
  const bundle = await loadBundle(BUNDLE);
  const policy = await instantiate(bundle, PATH);
  const direct = directEvaluation(policy);
  if (direct === undefined) return t.fail('the seed bundle is ABI 1.2: the direct evaluation applies');
  const id = (policy.entrypoints as Record<string, number>)[PATH]!;
  const same = (input: object) => {
    const json = JSON.stringify(input);
    const theirs = policy.evaluate(input, id);
    const ours = direct(json, id);
    t.same(ours, theirs);
    return ours;
  };
  // Known answers first: an allowed refund and a denied one.
  const allowed = same(request({ amount: 20, currency: 'EUR' }, '/v1/refunds', 'POST')) as Array<{
    result: { allowed: boolean };
  }>;
  t.equal(allowed[0]?.result.allowed, true);
  const denied = same(request({ amount: 9000, currency: 'EUR' }, '/v1/refunds', 'POST')) as Array<{
    result: { allowed: boolean };
  }>;
  t.equal(denied[0]?.result.allowed, false);
  // Multi-byte text (the encoded length differs from the string's) and a body that makes
  // the memory grow (a 3 MB string), then small inputs again in the grown memory.
  same(request({ note: 'Größe ✓ 😀 \u2028 \u0000' }, '/v1/refunds/ü', 'GET'));
  same(request({ blob: 'x'.repeat(3 * 1024 * 1024) }, '/v1/refunds', 'POST'));
  same(request({ amount: 20 }, '/v1/refunds', 'POST'));
  let runs = 0;
  fc.assert(
    fc.property(
      fc.jsonValue({ maxDepth: 4 }),
      fc.string({ unit: 'grapheme', maxLength: 40 }),
      fc.constantFrom('GET', 'POST', 'DELETE'),
      (body, path, method) => {
        runs++;
        const input = request(body, `/${path}`, method);
        return JSON.stringify(direct(JSON.stringify(input), id)) === JSON.stringify(policy.evaluate(input, id));
      },
    ),
    { numRuns: 300 },
  );
  t.equal(runs, 300);
});

t.test('follows setData: the data document and the heap pointer move', async (t) => {
  const bundle = await loadBundle(BUNDLE);
  const policy = await instantiate(bundle, PATH);
  const direct = directEvaluation(policy)!;
  const id = (policy.entrypoints as Record<string, number>)[PATH]!;
  const input = request({ amount: 20, currency: 'EUR' }, '/v1/refunds', 'POST');
  const before = direct(JSON.stringify(input), id);
  // An empty data document: the seed policy's allow-lists are gone.
  policy.setData({ padding: 'y'.repeat(200_000) });
  const after = direct(JSON.stringify(input), id);
  t.same(after, policy.evaluate(input, id));
  t.notSame(after, before, 'the answer follows the new data');
});

t.test('a decision carries the JSON text the policy evaluated, tied to its input object', async (t) => {
  const evaluator = await createWasmEvaluator({
    bundle: await loadBundle(BUNDLE),
    decisionPath: PATH,
    timeoutMs: 1000,
  });
  const input = request({ amount: 20, currency: 'EUR', note: 'café 😀' }, '/v1/refunds', 'POST');
  const decision = evaluator.decideSync(input as never, 'd-1');
  t.equal(decision.inputJson?.input, input, 'the same object, so a log can tell it is this input');
  t.equal(decision.inputJson?.text, JSON.stringify(input));
});
