import t from 'tap';
import { decisionFromResult } from '../../src/pdp/result.ts';

const meta = { decisionId: 'd1', revision: 'r1', evalNanos: 5 };

t.test('accepts a boolean decision', async (t) => {
  t.equal(decisionFromResult(true, meta).allowed, true);
  const deny = decisionFromResult(false, meta);
  t.equal(deny.allowed, false);
  t.same(deny.reasons, []);
  t.equal(deny.httpStatus, undefined);
});

t.test('honours every field of the opa-envoy-plugin result object plus reasons', async (t) => {
  const d = decisionFromResult(
    {
      allowed: false,
      headers: [{ 'x-a': '1' }, { 'x-b': ['2', '3'] }],
      request_headers_to_remove: ['x-debug'],
      response_headers_to_add: { 'x-c': '4' },
      query_parameters_to_set: { q: ['1', '2'], r: 's' },
      query_parameters_to_remove: ['secret'],
      body: 'nope',
      http_status: 429,
      dynamic_metadata: { k: { v: 1 } },
      reasons: ['too many'],
    },
    meta,
  );
  t.same(d.headers, [
    ['x-a', '1'],
    ['x-b', '2'],
    ['x-b', '3'],
  ]);
  t.same(d.requestHeadersToRemove, ['x-debug']);
  t.same(d.responseHeadersToAdd, [['x-c', '4']]);
  t.same(d.queryParametersToSet, [
    ['q', '1'],
    ['q', '2'],
    ['r', 's'],
  ]);
  t.same(d.queryParametersToRemove, ['secret']);
  t.equal(d.body, 'nope');
  t.equal(d.httpStatus, 429);
  t.same(d.dynamicMetadata, { k: { v: 1 } });
  t.same(d.reasons, ['too many']);
  t.equal(d.decisionId, 'd1');
  t.equal(d.revision, 'r1');
});

t.test('rejects results that break the contract so the request fails closed', async (t) => {
  const bad: unknown[] = [
    null,
    'yes',
    1,
    [],
    {},
    { allowed: 'true' },
    { allowed: true, headers: 'x' },
    { allowed: true, headers: { a: 1 } },
    { allowed: true, headers: [1] },
    { allowed: true, request_headers_to_remove: 'x' },
    { allowed: true, request_headers_to_remove: [1] },
    { allowed: false, http_status: 999 },
    { allowed: false, http_status: '403' },
    { allowed: false, body: 1 },
    { allowed: true, dynamic_metadata: [] },
    { allowed: true, query_parameters_to_set: [] },
    { allowed: false, reasons: 'r' },
  ];
  for (const result of bad) {
    t.throws(() => decisionFromResult(result, meta), { code: 'TG_ERR_POLICY_RESULT' }, JSON.stringify(result));
  }
});

t.test('"applicable": false is a deny that does not apply, with or without "allowed"', async (t) => {
  const meta = { decisionId: 'd', revision: 'r', evalNanos: 1 };
  const d = decisionFromResult({ applicable: false, reasons: ['no opinion'] }, meta);
  t.equal(d.allowed, false, 'standing alone, no opinion denies');
  t.equal(d.applicable, false);
  t.same(d.reasons, ['no opinion']);
  t.equal(decisionFromResult({ applicable: false, allowed: true }, meta).allowed, false);
  t.notOk('applicable' in decisionFromResult({ applicable: true, allowed: true }, meta));
  t.throws(() => decisionFromResult({ applicable: 'no', allowed: true }, meta), { code: 'TG_ERR_POLICY_RESULT' });
});
