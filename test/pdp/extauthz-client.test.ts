import t from 'tap';
import { createServer } from 'node:net';
import { checkRequestFor, createExtAuthzPdp, decisionFromCheckResponse } from '../../src/pdp/extauthz-client.ts';
import { buildInput, inputFromCheckRequest } from '../../src/input/build.ts';
import { normalizeRequest } from '../../src/http/normalize.ts';
import { decodeCheckRequest, encodeCheckRequest } from '../../src/proto/ext-authz.ts';

const meta = { decisionId: 'd', revision: 'remote', evalNanos: 1 };

t.test('maps an OK CheckResponse with mutations to an allow', async (t) => {
  const d = decisionFromCheckResponse(
    {
      status: {},
      okResponse: {
        headers: [
          { header: { key: 'a', value: '1' } },
          { header: { key: 'raw', rawValue: Buffer.from('v').toString('base64') } },
          {},
        ],
        headersToRemove: ['x'],
        responseHeadersToAdd: [{ header: { key: 'b', value: '2' } }],
        queryParametersToSet: [{ key: 'q', value: 'v' }],
        queryParametersToRemove: ['r'],
      },
      dynamicMetadata: { fields: { decision_id: { stringValue: 'remote-id' } } },
    },
    meta,
  );
  t.match(d, {
    allowed: true,
    headers: [
      ['a', '1'],
      ['raw', 'v'],
    ],
    requestHeadersToRemove: ['x'],
    responseHeadersToAdd: [['b', '2']],
    queryParametersToSet: [['q', 'v']],
    queryParametersToRemove: ['r'],
    dynamicMetadata: { decision_id: 'remote-id' },
    decisionId: 'd',
  });
  t.notOk('httpStatus' in d);
});

t.test('maps a denied CheckResponse to a deny with the remote status, body, headers and message', async (t) => {
  const d = decisionFromCheckResponse(
    {
      status: { code: 7, message: 'why' },
      deniedResponse: {
        status: { code: 429 },
        body: 'slow',
        headers: [{ header: { key: 'retry-after', value: '1' } }],
      },
    },
    meta,
  );
  t.match(d, {
    allowed: false,
    httpStatus: 429,
    body: 'slow',
    headers: [['retry-after', '1']],
    reasons: ['why'],
    requestHeadersToRemove: [],
  });
  const bare = decisionFromCheckResponse({ status: { code: 7 } }, meta);
  t.match(bare, { allowed: false, headers: [], reasons: [] });
  t.notOk('httpStatus' in bare || 'body' in bare, "no status or body: the PEP's defaults apply");
  t.equal(decisionFromCheckResponse({ status: { code: 16 } }, meta).allowed, false, 'UNAUTHENTICATED denies');
});

t.test(
  'the circuit opens after consecutive failures, rejects at once, and half-opens after the cool-down',
  async (t) => {
    // A port with nothing listening: every call fails fast with UNAVAILABLE.
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    let clock = 1_000_000;
    const pdp = createExtAuthzPdp({
      target: `127.0.0.1:${port}`,
      timeoutMs: 500,
      circuitBreaker: { failureThreshold: 2, openMs: 1000 },
      now: () => clock,
    });
    t.teardown(() => pdp.close());
    t.same(pdp.info(), { kind: 'extauthz', decisionPath: `extauthz://127.0.0.1:${port}`, revision: 'remote' });
    const input = inputFromCheckRequest(
      { attributes: { request: { http: { method: 'GET', path: '/' } } } },
      { id: 'a', role: 'r', labels: {} },
    );
    await t.rejects(pdp.decide(input, 'd1'), { code: 'TG_ERR_PDP_UNAVAILABLE' });
    t.equal(pdp.circuit(), 'closed', 'one failure is below the threshold');
    await t.rejects(pdp.decide(input, 'd2'), { code: 'TG_ERR_PDP_UNAVAILABLE' });
    t.equal(pdp.circuit(), 'open');
    await t.rejects(pdp.decide(input, 'd3'), { code: 'TG_ERR_PDP_UNAVAILABLE', message: /circuit is open/ });
    clock += 1000;
    t.equal(pdp.circuit(), 'half-open');
    const probe = pdp.decide(input, 'd4');
    await t.rejects(pdp.decide(input, 'd5'), { message: /probe is in flight/ }, 'only one probe at a time');
    await t.rejects(probe, { code: 'TG_ERR_PDP_UNAVAILABLE' });
    t.equal(pdp.circuit(), 'open', 'a failed probe opens the circuit again');
  },
);

t.test('a body the PEP buffered only in part is flagged as Envoy flags it', async (t) => {
  const agent = { id: 'a', role: 'r', labels: {} };
  const partial = inputFromCheckRequest(
    {
      attributes: {
        request: {
          http: { method: 'POST', path: '/', headers: { 'content-type': 'application/json' }, body: '{"a": 1' },
        },
      },
    },
    agent,
    { truncated: true },
  );
  t.equal(checkRequestFor(partial).attributes?.request?.http?.headers?.['x-envoy-auth-partial-body'], 'true');
  const whole = inputFromCheckRequest(
    {
      attributes: {
        request: {
          http: { method: 'POST', path: '/', headers: { 'content-type': 'application/json' }, body: '{"a": 1}' },
        },
      },
    },
    agent,
  );
  t.notOk('x-envoy-auth-partial-body' in (checkRequestFor(whole).attributes?.request?.http?.headers ?? {}));
  // An agent's own x-envoy-auth-partial-body on a body the PEP read whole does not reach the remote.
  const claimed = buildInput(
    normalizeRequest({
      id: 'r',
      method: 'POST',
      target: 'http://payments.internal/refund',
      rawHeaders: [
        'Host',
        'payments.internal',
        'Content-Type',
        'application/json',
        'x-envoy-auth-partial-body',
        'true',
      ],
      httpVersion: '1.1',
      scheme: 'http',
      source: { address: '127.0.0.1', port: 40000 },
      destination: { address: '127.0.0.1', port: 15001 },
    }),
    { bytes: Buffer.from('{"amount": 900}'), truncated: false },
    agent,
    1_700_000_000_000,
  );
  t.equal(claimed.truncated_body, false);
  t.same(claimed.parsed_body, { amount: 900 });
  t.notOk('x-envoy-auth-partial-body' in (checkRequestFor(claimed).attributes?.request?.http?.headers ?? {}));
  t.equal(
    partial.attributes.request.http.headers['x-envoy-auth-partial-body'],
    undefined,
    'the input itself is not changed',
  );
});

t.test('the agent travels as source.principal and metadata_context.filter_metadata.tollgate', async (t) => {
  const agent = { id: 'support bot/1', role: 'support', labels: { team: 'refunds' } };
  const input = inputFromCheckRequest(
    { attributes: { request: { http: { method: 'GET', path: '/', headers: {} } } } },
    agent,
  );
  const sent = decodeCheckRequest(encodeCheckRequest(checkRequestFor(input)));
  t.equal(sent.attributes?.source?.principal, 'tollgate://agent/support%20bot%2F1');
  t.same(
    (sent.attributes?.metadataContext as { filterMetadata: unknown }).filterMetadata,
    { tollgate: { agent } },
    'survives the wire as a Struct',
  );
  // A principal Envoy authenticated is kept; Tollgate's own namespace is always Tollgate's.
  const chained = inputFromCheckRequest(
    {
      attributes: {
        source: { principal: 'spiffe://cluster/ns/a/sa/b' },
        metadataContext: { filterMetadata: { tollgate: { agent: { id: 'forged', role: 'admin' } }, other: { x: 1 } } },
        request: { http: { method: 'GET', path: '/', headers: {} } },
      },
    },
    agent,
  );
  const forwarded = checkRequestFor(chained).attributes!;
  t.equal(forwarded.source?.principal, 'spiffe://cluster/ns/a/sa/b');
  t.same((forwarded.metadataContext as { filterMetadata: unknown }).filterMetadata, {
    tollgate: { agent },
    other: { x: 1 },
  });
});
