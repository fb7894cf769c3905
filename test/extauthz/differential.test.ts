/**
 * Differential test: the same CheckRequests go to the real opa-envoy-plugin and to
 * Tollgate's ext_authz server, both loaded with the same Rego (policies/ plus the
 * fixtures in test/fixtures/extauthz; opa-envoy-plugin evaluates the Rego, Tollgate
 * the WASM bundle opa builds from it). Every CheckResponse must match: gRPC status,
 * OK/Denied HTTP response (status, headers, body, mutations) and dynamic_metadata.
 *
 * Normalised before comparing, because they are not deterministic on either side:
 * the decision_id value (a random UUID on both; its presence is compared), the order
 * of headers and query parameters (opa-envoy-plugin iterates Go maps, which is random),
 * and the text after "request_parse_error: " and in gRPC error details (Go's and
 * Tollgate's error messages are worded differently; the codes are compared).
 *
 * Deliberate differences, asserted to differ as documented (docs/extauthz.md):
 *   - input.mcp is a Tollgate extension: opa-envoy-plugin's input has none, so an MCP
 *     deny-list rule only fires in Tollgate.
 */
import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import { checkMethod, type Message } from '../../src/proto/ext-authz.ts';
import { ROOT } from '../helpers/processes.ts';
import { buildWasmBundle, checkClient, startOpaEnvoy, startTollgateExtAuthz, type CheckOutcome } from './peers.ts';
import { join } from 'node:path';
import { readdirSync } from 'node:fs';

// Files, not the policies/ folder: it also holds the built bundle, which opa would load a second time.
const PATHS = [
  ...readdirSync(join(ROOT, 'policies'))
    .filter((f) => (f.endsWith('.rego') && !f.endsWith('_test.rego')) || f === 'data.json')
    .map((f) => join(ROOT, 'policies', f)),
  join(ROOT, 'test/fixtures/extauthz'),
];
const ENTRY = 'tollgate/differential/decision';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface Case {
  readonly name: string;
  readonly request: Message | Buffer;
  /** Set when the two sides are documented to differ on this request. */
  readonly differs?: string;
  /** Tollgate refuses it (request_parse_error, 400) where opa-envoy-plugin decides: README "Deliberate differences". */
  readonly refused?: true;
}

function http(
  method: string,
  host: string,
  path: string,
  headers: Record<string, string> = {},
  extra: Message = {},
): Message {
  return {
    attributes: {
      source: { address: { socketAddress: { address: '10.0.0.7', portValue: 43210 } } },
      destination: { address: { socketAddress: { address: '10.0.0.8', portValue: 80 } } },
      request: {
        time: { seconds: 1_764_000_000, nanos: 123_000_000 },
        http: {
          id: 'req-1',
          method,
          host,
          path,
          scheme: 'http',
          protocol: 'HTTP/1.1',
          headers: { ':authority': host, ':method': method, ':path': path, ...headers },
          ...extra,
        },
      },
    },
  };
}

const json = (v: unknown): Record<string, string> => ({
  'content-type': 'application/json',
  'content-length': String(Buffer.byteLength(JSON.stringify(v))),
});
const refund = (
  body: string,
  headers: Record<string, string> = { 'content-type': 'application/json' },
  extra: Message = {},
): Message => http('POST', 'payments.internal', '/v1/refunds', headers, { body, ...extra });
const fx = (
  kase: string,
  extra: Message = {},
  headers: Record<string, string> = {},
  method = 'GET',
  path = `/fixture/${kase}`,
): Message => http(method, 'fixture.internal', path, { 'x-policy': 'fixture', ...headers }, extra);

/** A CheckRequest whose body string holds bytes that are not UTF-8 (Envoy without pack_as_bytes could send them). */
function nonUtf8Body(): Buffer {
  const wire = checkMethod().requestSerialize(refund('{"amount": 100, "note": "XX"}'));
  const at = wire.indexOf(Buffer.from('"XX"'));
  wire[at + 1] = 0xff;
  wire[at + 2] = 0xfe;
  return wire;
}

const MCP_CALL = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'tools/call',
  params: { name: 'delete_customer', arguments: { id: 'c-1' } },
});
const MULTIPART = [
  'preamble to skip\r\n',
  '--XyZ\r\nContent-Disposition: form-data; name="amount"\r\n\r\n100\r\n',
  '--XyZ\r\nContent-Disposition: form-data; name="amount"\r\n\r\n200\r\n',
  '--XyZ \r\nContent-Disposition: form-data; name="meta"\r\nContent-Type: application/json\r\n\r\n{"k": [1, "v"]}\r\n',
  '--XyZ\r\nContent-Disposition: form-data; name="file"; filename="C:\\dir\\a.txt"\r\nContent-Type: text/plain\r\n\r\nline1\r\nline2 --XyZ not a boundary\r\n--XyZabc still content\r\n',
  '--XyZ\r\nContent-Disposition: attachment; name="ignored"\r\n\r\nx\r\n',
  '--XyZ\r\nContent-Disposition: form-data; name="empty"\r\n\r\n\r\n',
  '--XyZ\r\nContent-Disposition: form-data\r\n\r\nno name\r\n',
  '--XyZ--\r\nepilogue',
].join('');
const multipart = (body: string, contentType = 'multipart/form-data; boundary=XyZ'): Message =>
  fx('echo', { body }, { 'content-type': contentType }, 'POST');

const CASES: Case[] = [
  // Seed policies (policies/), agent support-bot.
  { name: 'seed: GET to an allowed destination', request: http('GET', 'crm.internal', '/v1/customers/42') },
  { name: 'seed: refund of 120 (JSON body)', request: refund('{"amount": 120}', json({ amount: 120 })) },
  { name: 'seed: refund of exactly 500', request: refund('{"amount": 500}') },
  { name: 'seed: refund of 500.01', request: refund('{"amount": 500.01}') },
  { name: 'seed: refund amount as a string', request: refund('{"amount": "900"}') },
  { name: 'seed: refund without amount', request: refund('{"order": "o-1"}') },
  {
    name: 'seed: refund as a form body',
    request: refund('amount=100&order=o-1', { 'content-type': 'application/x-www-form-urlencoded' }),
  },
  {
    name: 'seed: refund in raw_body (pack_as_bytes)',
    request: refund(
      '',
      { 'content-type': 'application/json' },
      { rawBody: Buffer.from('{"amount": 80}').toString('base64') },
    ),
  },
  {
    name: 'seed: refund body shorter than content-length',
    request: refund('{"amount": 1', { 'content-type': 'application/json', 'content-length': '4000' }),
  },
  {
    name: 'seed: refund marked partial by Envoy',
    request: refund('{"amount": 1', { 'content-type': 'application/json', 'x-envoy-auth-partial-body': 'true' }),
  },
  { name: 'seed: refund with invalid JSON body', request: refund('{amount: 1}') },
  {
    name: 'seed: refund with an invalid content-length',
    request: refund('{"amount": 1}', { 'content-type': 'application/json', 'content-length': '1e3' }),
  },
  {
    name: 'seed: refund path spelled with an encoding',
    request: http(
      'POST',
      'payments.internal',
      '/v1/%72efunds',
      { 'content-type': 'application/json' },
      { body: '{"amount": 900}' },
    ),
  },
  {
    name: 'seed: refund path with doubled slashes and case',
    request: http(
      'POST',
      'payments.internal',
      '/V1//refunds/',
      { 'content-type': 'application/json' },
      { body: '{"amount": 900}' },
    ),
  },
  {
    name: 'seed: lowercase method',
    request: http(
      'post',
      'payments.internal',
      '/v1/refunds',
      { 'content-type': 'application/json' },
      { body: '{"amount": 900}' },
    ),
  },
  { name: 'seed: HR data is out of reach for support', request: http('GET', 'hr.internal', '/v1/employees') },
  { name: 'seed: unknown destination', request: http('GET', 'evil.example', '/') },
  { name: 'seed: host with port and trailing dot', request: http('GET', 'CRM.internal.:8080', '/v1/customers') },
  { name: 'seed: IPv6 literal host', request: http('GET', '[::1]:8080', '/') },
  { name: 'seed: invalid percent-encoding in the path', request: http('GET', 'crm.internal', '/v1/%zz') },
  { name: 'seed: semicolon in the query', request: http('GET', 'crm.internal', '/v1/customers?a=1;b=2') },
  { name: 'seed: encoded non-UTF-8 byte in the path', request: http('GET', 'crm.internal', '/v1/%ff/x') },
  { name: 'seed: an empty CheckRequest', request: {} },
  {
    name: 'seed: attributes without a request',
    request: { attributes: { source: { principal: 'spiffe://cluster.local/ns/a/sa/b' } } },
  },
  {
    name: 'seed: an http request with no headers',
    request: { attributes: { request: { http: { method: 'GET', host: 'crm.internal', path: '/' } } } },
  },
  { name: 'seed: non-UTF-8 bytes in the body string', request: nonUtf8Body() },
  {
    // Deliberate difference: Go's json.Unmarshal writes U+FFFD, Python rejects the bytes;
    // the tool behind Envoy may read another body than the policy, so Tollgate refuses.
    name: 'seed: non-UTF-8 bytes in raw_body',
    differs: 'invalid UTF-8 in a JSON body is refused',
    refused: true,
    request: refund(
      '',
      { 'content-type': 'application/json' },
      {
        rawBody: Buffer.concat([
          Buffer.from('{"amount": 70, "note": "'),
          Buffer.from([0xff, 0xfe]),
          Buffer.from('"}'),
        ]).toString('base64'),
      },
    ),
  },
  { name: 'seed: a 1 MiB JSON body', request: refund(JSON.stringify({ amount: 20, pad: 'x'.repeat(1 << 20) })) },
  {
    name: 'seed: a 10 MiB body (over the 4 MiB gRPC limit)',
    request: refund(JSON.stringify({ amount: 20, pad: 'x'.repeat(10 << 20) })),
  },
  {
    name: 'seed: the debug header is removed on allow',
    request: http('GET', 'crm.internal', '/v1/customers', { 'x-tollgate-debug': '1' }),
  },
  {
    name: 'seed: MCP tools/call of a tool support may not use',
    request: http('POST', 'mcp.internal', '/mcp', { 'content-type': 'application/json' }, { body: MCP_CALL }),
    differs: 'input.mcp',
  },
  // Fixture policy: every field of the result object, every part of the input.
  { name: 'fixture: boolean allow', request: fx('bool-allow') },
  { name: 'fixture: boolean deny', request: fx('bool-deny') },
  {
    name: 'fixture: allow with every mutation',
    request: fx(
      'allow-mutate',
      {},
      { 'x-remove-me': '1', authorization: 'Bearer x' },
      'GET',
      '/fixture/allow-mutate?secret=s&keep=1',
    ),
  },
  { name: 'fixture: deny with status, body, headers, metadata', request: fx('deny-status', {}, {}, 'DELETE') },
  { name: 'fixture: deny with defaults', request: fx('deny-plain') },
  { name: 'fixture: echo a plain GET', request: fx('echo') },
  {
    name: 'fixture: echo repeated and encoded query values',
    request: fx('echo', {}, {}, 'GET', '/fixture/echo?x=1&x=2&y=a+b&z=%C3%A9&empty=&flag'),
  },
  {
    name: 'fixture: echo encoded path segments',
    request: fx('echo', {}, {}, 'GET', '/fixture/echo/a%2Fb/caf%C3%A9/sp%20ace/plus+sign'),
  },
  {
    name: 'fixture: echo a form body',
    request: fx(
      'echo',
      { body: 'a=1&a=2&b=x+y&c=%26' },
      { 'content-type': 'application/x-www-form-urlencoded' },
      'POST',
    ),
  },
  {
    name: 'fixture: echo a JSON body with nesting and unicode',
    request: fx(
      'echo',
      { body: '{"a": [1, 2.5, -3e2, null, true], "b": {"c": "é😀"}, "d": ""}' },
      { 'content-type': 'application/json; charset=utf-8' },
      'PUT',
    ),
  },
  {
    name: 'fixture: echo a JSON raw_body',
    request: fx(
      'echo',
      { rawBody: Buffer.from('{"k": "v"}').toString('base64') },
      { 'content-type': 'application/json' },
      'POST',
    ),
  },
  {
    name: 'fixture: echo raw_body and body both set',
    request: fx(
      'echo',
      { body: '{"from": "body"}', rawBody: Buffer.from('{"from": "raw"}').toString('base64') },
      { 'content-type': 'application/json' },
      'POST',
    ),
  },
  {
    name: 'fixture: echo a text/plain body (not parsed)',
    request: fx('echo', { body: 'hello' }, { 'content-type': 'text/plain' }, 'POST'),
  },
  {
    name: 'fixture: echo a gRPC body (not parsed without descriptors)',
    request: fx(
      'echo',
      { rawBody: Buffer.from([0, 0, 0, 0, 2, 8, 1]).toString('base64') },
      { 'content-type': 'application/grpc' },
      'POST',
      '/pkg.Svc/Method',
    ),
  },
  {
    // Deliberate difference: parsed_body is null in opa-envoy-plugin, while the tool behind
    // Envoy (Go handlers, Starlette, FastAPI) reads the JSON: Tollgate refuses.
    name: 'fixture: echo a JSON body without content-type',
    differs: 'JSON without a JSON content-type is refused',
    refused: true,
    request: fx('echo', { body: '{"a": 1}' }, {}, 'POST'),
  },
  {
    name: 'fixture: echo a JSON body whose content-length is larger',
    request: fx('echo', { body: '{"a": 1}' }, { 'content-type': 'application/json', 'content-length': '99' }, 'POST'),
  },
  {
    name: 'fixture: echo a JSON body whose content-length is -1',
    request: fx('echo', { body: '{"a": 1}' }, { 'content-type': 'application/json', 'content-length': '-1' }, 'POST'),
  },
  {
    name: 'fixture: echo size, principal, context extensions, metadata, TLS',
    request: {
      attributes: {
        source: {
          address: { socketAddress: { address: '10.1.1.1', portValue: 5000 } },
          principal: 'spiffe://cluster.local/ns/agents/sa/support',
          service: 'agents',
          labels: { app: 'bot', empty: '' },
        },
        destination: {
          address: { socketAddress: { address: '10.1.1.2', portValue: 8443 } },
          principal: 'spiffe://cluster.local/ns/crm/sa/api',
        },
        request: {
          time: { seconds: 1_764_000_001 },
          http: {
            method: 'GET',
            host: 'fixture.internal',
            path: '/fixture/echo',
            size: 1234,
            headers: { 'x-policy': 'fixture', 'x-empty': '' },
            fragment: 'frag',
            query: 'q',
          },
        },
        contextExtensions: { route: 'r1', virtual_host: 'vh' },
        metadataContext: {
          filterMetadata: {
            'envoy.filters.http.jwt_authn': {
              fields: {
                sub: { stringValue: 'alice' },
                n: { numberValue: 2 },
                ok: { boolValue: true },
                nil: { nullValue: 0 },
                list: { listValue: { values: [{ stringValue: 'a' }, { numberValue: 1.5 }] } },
                obj: { structValue: { fields: { x: { stringValue: 'y' } } } },
              },
            },
          },
        },
        tlsSession: { sni: 'crm.internal' },
      },
    },
  },
  {
    name: 'fixture: echo header_map with raw values',
    request: fx('echo', { headerMap: { headers: [{ key: 'x-raw', rawValue: Buffer.from('v1').toString('base64') }] } }),
  },
  {
    name: 'fixture: echo a request with no path',
    request: { attributes: { request: { http: { method: 'GET', headers: { 'x-policy': 'fixture' } } } } },
  },
  {
    name: 'fixture: amount within the limit',
    request: fx('amount', { body: '{"amount": 499.99}' }, { 'content-type': 'application/json' }, 'POST'),
  },
  {
    name: 'fixture: amount over the limit',
    request: fx('amount', { body: '{"amount": 500.5}' }, { 'content-type': 'application/json' }, 'POST'),
  },
  { name: 'fixture: allowed is not a boolean', request: fx('bad-allowed') },
  { name: 'fixture: http_status 418 (not an Envoy StatusCode)', request: fx('teapot') },
  { name: 'fixture: http_status 999', request: fx('bad-status') },
  { name: 'fixture: a header value that is a number', request: fx('bad-header') },
  { name: 'fixture: no allowed key', request: fx('no-allowed') },
  { name: 'fixture: a result that is a number', request: fx('not-object') },
  { name: 'fixture: undefined decision', request: fx('undefined') },
  { name: 'fixture: multipart form body with repeated, JSON, file and unnamed parts', request: multipart(MULTIPART) },
  {
    name: 'fixture: multipart with a quoted boundary and LF line endings',
    request: multipart(
      '--a b\nContent-Disposition: form-data; name=x\n\n1\n--a b--\n',
      'multipart/form-data; boundary="a b"',
    ),
  },
  {
    name: 'fixture: multipart without a boundary parameter',
    request: multipart('--XyZ\r\n\r\n', 'multipart/form-data'),
  },
  {
    name: 'fixture: multipart with a malformed media parameter',
    request: multipart('--XyZ\r\n\r\n', 'multipart/form-data; boundary'),
  },
  {
    name: 'fixture: multipart without its closing boundary',
    request: multipart('--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n'),
  },
  {
    name: 'fixture: multipart with a JSON part that is not JSON',
    request: multipart(
      '--XyZ\r\nContent-Disposition: form-data; name="a"\r\nContent-Type: application/json\r\n\r\n{nope\r\n--XyZ--\r\n',
    ),
  },
  {
    name: 'fixture: multipart in raw_body',
    request: fx(
      'echo',
      { rawBody: Buffer.from(MULTIPART).toString('base64') },
      { 'content-type': 'multipart/form-data; boundary=XyZ' },
      'POST',
    ),
  },
];

/** JSON text with object keys sorted: OPA's Go json.marshal sorts keys, its WASM build keeps insertion order. */
function canonicalJson(text: string): string {
  const sortKeys = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(sortKeys)
      : typeof v === 'object' && v !== null
        ? Object.fromEntries(
            Object.entries(v)
              .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
              .map(([k, x]) => [k, sortKeys(x)]),
          )
        : v;
  try {
    return JSON.stringify(sortKeys(JSON.parse(text)));
  } catch {
    return text;
  }
}

function sortOptions(list: unknown): unknown {
  if (!Array.isArray(list)) return list;
  for (const option of list as Array<{ header?: { value?: string } }>) {
    if (typeof option.header?.value === 'string' && /^[[{]/.test(option.header.value))
      option.header.value = canonicalJson(option.header.value);
  }
  return [...list].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
}

/** Normalises what is legitimately non-deterministic; asserts decision_id is a UUID when present. */
function normalise(outcome: CheckOutcome): unknown {
  if ('error' in outcome) return { grpcError: grpc.status[outcome.error.code] };
  const r = structuredClone(outcome.response);
  const md = r.dynamicMetadata as { fields?: Record<string, { stringValue?: string }> } | undefined;
  if (md?.fields?.decision_id !== undefined) {
    if (!UUID.test(md.fields.decision_id.stringValue ?? ''))
      throw new Error(`decision_id is not a UUID: ${JSON.stringify(md.fields.decision_id)}`);
    md.fields.decision_id = { stringValue: '<uuid>' };
  }
  const status = r.status as { message?: string } | undefined;
  if (status?.message?.startsWith('request_parse_error: ')) status.message = 'request_parse_error: <message>';
  const denied = r.deniedResponse as { body?: string; headers?: unknown } | undefined;
  if (denied?.body?.startsWith('request_parse_error: ')) denied.body = 'request_parse_error: <message>';
  if (denied) denied.headers = sortOptions(denied.headers);
  const ok = r.okResponse as Record<string, unknown> | undefined;
  if (ok)
    for (const key of ['headers', 'responseHeadersToAdd', 'queryParametersToSet'])
      if (key in ok) ok[key] = sortOptions(ok[key]);
  return r;
}

t.test('Tollgate answers every CheckRequest of the corpus as opa-envoy-plugin does', async (t) => {
  t.ok(CASES.length >= 40, `corpus has ${CASES.length} requests`);
  const [opa, bundle] = await Promise.all([
    startOpaEnvoy(t, { path: ENTRY, paths: PATHS }),
    buildWasmBundle(ENTRY, PATHS),
  ]);
  const { extAuthzPort } = await startTollgateExtAuthz(t, {
    agent: { id: 'support-bot', role: 'support', labels: { team: 'care' } },
    pdp: { type: 'wasm', bundle, decisionPath: ENTRY },
  });
  const toOpa = checkClient(opa.grpcPort);
  const toTollgate = checkClient(extAuthzPort);
  t.teardown(() => {
    toOpa.close();
    toTollgate.close();
  });

  const outcomes = { allowed: 0, denied: 0, errors: 0 };
  for (const c of CASES) {
    const [fromOpa, fromTollgate] = await Promise.all([toOpa.check(c.request), toTollgate.check(c.request)]);
    const expected = normalise(fromOpa);
    const actual = normalise(fromTollgate);
    if (c.differs === undefined) {
      t.same(actual, expected, c.name);
      t.strictSame(actual, expected, `${c.name} (strict)`);
    } else {
      t.notSame(actual, expected, `${c.name}: differs as documented (${c.differs})`);
      if (c.refused)
        t.match(
          actual,
          { status: { code: 7 }, deniedResponse: { status: { code: 400 }, body: 'request_parse_error: <message>' } },
          `${c.name}: Tollgate answers request_parse_error 400`,
        );
    }
    if ('error' in fromOpa) outcomes.errors++;
    else if (((fromOpa.response.status as Message | undefined)?.code ?? 0) === 0) outcomes.allowed++;
    else outcomes.denied++;
  }
  // The corpus must exercise all three outcomes, or it proves little.
  t.ok(outcomes.allowed >= 10 && outcomes.denied >= 10 && outcomes.errors >= 5, `outcomes ${JSON.stringify(outcomes)}`);
});

t.test('dry-run answers OK as opa-envoy-plugin dry-run does, keeping the policy metadata', async (t) => {
  const [opa, bundle] = await Promise.all([
    startOpaEnvoy(t, { path: ENTRY, paths: PATHS, dryRun: true }),
    buildWasmBundle(ENTRY, PATHS),
  ]);
  const { extAuthzPort } = await startTollgateExtAuthz(t, {
    pdp: { type: 'wasm', bundle, decisionPath: ENTRY },
    extAuthz: { dryRun: true },
  });
  const toOpa = checkClient(opa.grpcPort);
  const toTollgate = checkClient(extAuthzPort);
  t.teardown(() => {
    toOpa.close();
    toTollgate.close();
  });
  for (const request of [fx('deny-status'), fx('bool-deny'), fx('allow-mutate'), http('GET', 'hr.internal', '/')]) {
    const [a, b] = await Promise.all([toOpa.check(request), toTollgate.check(request)]);
    t.strictSame(normalise(b), normalise(a));
    t.notOk('error' in b);
    if (!('error' in b)) t.equal((b.response.status as Message).code ?? 0, 0, 'dry-run allows');
  }
});
