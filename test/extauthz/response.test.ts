import t from 'tap';
import { checkResponseFromDecision, requestParseErrorResponse } from '../../src/extauthz/response.ts';
import { grpcStatusFor } from '../../src/extauthz/server.ts';
import { decisionFromResult } from '../../src/pdp/result.ts';
import { TollgateError } from '../../src/errors.ts';

const meta = { decisionId: 'd-1', revision: 'r', evalNanos: 1 };
const idOnly = { fields: { decision_id: { stringValue: 'd-1' } } };

t.test('a boolean result carries no HTTP response, only the status and decision_id', async (t) => {
  t.same(checkResponseFromDecision(decisionFromResult(true, meta), false), { status: {}, dynamicMetadata: idOnly });
  t.same(checkResponseFromDecision(decisionFromResult(false, meta), false), {
    status: { code: 7 },
    dynamicMetadata: idOnly,
  });
});

t.test('an allowed object result maps every mutation into OkHttpResponse', async (t) => {
  const d = decisionFromResult(
    {
      allowed: true,
      headers: { a: '1' },
      request_headers_to_remove: ['x'],
      response_headers_to_add: [{ b: ['2', '3'] }],
      query_parameters_to_set: { q: 'v' },
      query_parameters_to_remove: ['r'],
      dynamic_metadata: { k: [1, 'two', null, { n: true }] },
    },
    meta,
  );
  t.same(checkResponseFromDecision(d, false), {
    status: {},
    okResponse: {
      headers: [{ header: { key: 'a', value: '1' } }],
      headersToRemove: ['x'],
      responseHeadersToAdd: [{ header: { key: 'b', value: '2' } }, { header: { key: 'b', value: '3' } }],
      queryParametersToRemove: ['r'],
      queryParametersToSet: [{ key: 'q', value: 'v' }],
    },
    dynamicMetadata: {
      fields: {
        k: {
          listValue: {
            values: [
              { numberValue: 1 },
              { stringValue: 'two' },
              { nullValue: 0 },
              { structValue: { fields: { n: { boolValue: true } } } },
            ],
          },
        },
        decision_id: { stringValue: 'd-1' },
      },
    },
  });
});

t.test(
  'a denied object result maps status, body and headers into DeniedHttpResponse; an empty body is left out',
  async (t) => {
    const d = decisionFromResult(
      { allowed: false, http_status: 429, body: 'slow', headers: { 'retry-after': '1' } },
      meta,
    );
    t.same(checkResponseFromDecision(d, false).deniedResponse, {
      status: { code: 429 },
      headers: [{ header: { key: 'retry-after', value: '1' } }],
      body: 'slow',
    });
    t.same(checkResponseFromDecision(decisionFromResult({ allowed: false, body: '' }, meta), false).deniedResponse, {
      status: { code: 403 },
      headers: [],
    });
  },
);

t.test("a deny status outside Envoy's StatusCode enum is a policy error, as in opa-envoy-plugin", async (t) => {
  t.throws(() => checkResponseFromDecision(decisionFromResult({ allowed: false, http_status: 418 }, meta), false), {
    code: 'TG_ERR_POLICY_RESULT',
  });
});

t.test('dry-run answers a deny with an empty OK and keeps the policy metadata', async (t) => {
  const d = decisionFromResult({ allowed: false, http_status: 429, dynamic_metadata: { why: 'rate' } }, meta);
  t.same(checkResponseFromDecision(d, true), {
    status: {},
    okResponse: {},
    dynamicMetadata: { fields: { why: { stringValue: 'rate' }, decision_id: { stringValue: 'd-1' } } },
  });
  t.same(
    checkResponseFromDecision(decisionFromResult(true, meta), true),
    { status: {}, dynamicMetadata: idOnly },
    'an allow is unchanged',
  );
});

t.test('a request that does not parse is denied 400 with the reason, as request_parse_error', async (t) => {
  t.same(requestParseErrorResponse(new TollgateError('TG_ERR_BAD_REQUEST', 'bad path')), {
    status: { code: 7, message: 'request_parse_error: bad path' },
    deniedResponse: { status: { code: 400 }, body: 'request_parse_error: bad path' },
  });
});

t.test('failures to decide map to the gRPC codes Envoy treats as errors', async (t) => {
  t.equal(grpcStatusFor(new TollgateError('TG_ERR_POLICY_UNDEFINED', 'x')), 2, 'UNKNOWN, as opa-envoy-plugin');
  t.equal(grpcStatusFor(new TollgateError('TG_ERR_PDP_TIMEOUT', 'x')), 4);
  t.equal(grpcStatusFor(new TollgateError('TG_ERR_PDP_UNAVAILABLE', 'x')), 14);
});
