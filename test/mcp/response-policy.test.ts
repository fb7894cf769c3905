import t from 'tap';
import { applyResponseResult, responseResult, type ResponseResult } from '../../src/mcp/response-policy.ts';
import { decisionFromResult } from '../../src/pdp/result.ts';

const decided = (result: unknown) => decisionFromResult(result, { decisionId: 'd-1', revision: 'r1', evalNanos: 1 });
const allow = (extra: Partial<ResponseResult>): ResponseResult => ({
  allowed: true,
  reasons: [],
  removeTools: [],
  redact: [],
  ...extra,
});

t.test('the result contract is checked, and a bad result is a policy-result error', async (t) => {
  t.same(responseResult(decided(true)), { allowed: true, reasons: [], removeTools: [], redact: [] });
  t.same(responseResult(decided({ allowed: true, redact: [{ pattern: 'x' }] })).redact, [
    { pattern: 'x', replacement: '[REDACTED]' },
  ]);
  for (const [result, message] of [
    [{ allowed: true, remove_tools: 'x' }, /remove_tools to be an array of strings/],
    [{ allowed: true, redact: [{ path: '/a', pattern: 'x' }] }, /exactly one of path/],
    [{ allowed: true, redact: [{ path: 'result' }] }, /not a JSON pointer/],
    [{ allowed: true, redact: [{ pattern: '(' }] }, /does not compile/],
    [{ allowed: true, redact: [{ pattern: 'x', replacement: 1 }] }, /replacement is not a string/],
  ] as const) {
    t.throws(() => responseResult(decided(result)), { code: 'TG_ERR_POLICY_RESULT', message });
  }
});

t.test('a redaction by JSON pointer replaces one value of the result and never the envelope', async (t) => {
  const message = { jsonrpc: '2.0', id: 1, result: { structuredContent: { card: '4111', name: 'Ada' } } };
  const out = applyResponseResult(
    message,
    allow({
      redact: [
        { path: '/result/structuredContent/card', replacement: '****' },
        { path: '/id', replacement: 'x' },
      ],
    }),
    'd',
    'r',
  );
  t.equal(out.action, 'redact');
  t.same(out.message, { jsonrpc: '2.0', id: 1, result: { structuredContent: { card: '****', name: 'Ada' } } });
});

t.test('a pattern that matches nothing leaves the message allowed as it is', async (t) => {
  const message = { jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: 'plain' }] } };
  const out = applyResponseResult(message, allow({ redact: [{ pattern: 'sk_[a-z]+', replacement: 'R' }] }), 'd', 'r');
  t.equal(out.action, 'allow');
  t.equal(out.message.result, message.result);
});

t.test('a blocked message becomes a JSON-RPC error with the same id, the reasons and the decision id', async (t) => {
  const out = applyResponseResult(
    { jsonrpc: '2.0', id: 'abc', result: {} },
    { allowed: false, reasons: ['no'], removeTools: [], redact: [] },
    'd-9',
    'r1',
  );
  t.equal(out.action, 'block');
  t.same(out.message, {
    jsonrpc: '2.0',
    id: 'abc',
    error: {
      code: -32001,
      message: 'blocked by policy: no',
      data: { decision_id: 'd-9', reasons: ['no'], revision: 'r1' },
    },
  });
});
