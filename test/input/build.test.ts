import t from 'tap';
import { buildInput } from '../../src/input/build.ts';
import { normalizeRequest } from '../../src/http/normalize.ts';
import { parseBody, parsePath, parseQuery } from '../../src/input/parse.ts';
import { extractMcp, mcpRequestIds } from '../../src/input/mcp.ts';
import { TollgateError } from '../../src/errors.ts';

const agent = { id: 'support-bot', role: 'support', labels: { team: 'care' } };

function request(target: string, headers: string[], method = 'POST') {
  return normalizeRequest({
    id: 'req-1',
    method,
    target,
    rawHeaders: headers,
    httpVersion: '1.1',
    scheme: 'http',
    source: { address: '127.0.0.1', port: 40000 },
    destination: { address: '127.0.0.1', port: 15001 },
  });
}

// The document opa-envoy-plugin builds (envoyauth/request.go + protomap.go) for the
// CheckRequest Envoy would send for this HTTP request: protobuf JSON field names,
// populated fields only, int64 as numbers, Timestamp as {seconds, nanos}.
t.test('builds exactly the opa-envoy-plugin input document for an HTTP request', async (t) => {
  const body = '{"amount": 120, "order": "o-1"}';
  const req = request('http://payments.internal/v1/refunds/../refunds?x=1&x=2&y=a+b', [
    'Host',
    'payments.internal',
    'Content-Type',
    'application/json',
    'Content-Length',
    String(body.length),
    'X-Trace',
    't',
  ]);
  const input = buildInput(req, { bytes: Buffer.from(body), truncated: false }, agent, 1_700_000_000_250);
  t.same(input, {
    attributes: {
      source: { address: { socketAddress: { address: '127.0.0.1', portValue: 40000 } } },
      destination: { address: { socketAddress: { address: '127.0.0.1', portValue: 15001 } } },
      request: {
        time: { seconds: 1_700_000_000, nanos: 250_000_000 },
        http: {
          id: 'req-1',
          method: 'POST',
          headers: {
            ':authority': 'payments.internal',
            ':method': 'POST',
            ':path': '/v1/refunds?x=1&x=2&y=a+b',
            ':scheme': 'http',
            'content-type': 'application/json',
            'content-length': String(body.length),
            'x-trace': 't',
          },
          path: '/v1/refunds?x=1&x=2&y=a+b',
          host: 'payments.internal',
          scheme: 'http',
          protocol: 'HTTP/1.1',
          body,
        },
      },
    },
    parsed_path: ['v1', 'refunds'],
    parsed_query: { x: ['1', '2'], y: ['a b'] },
    parsed_body: { amount: 120, order: 'o-1' },
    truncated_body: false,
    version: { ext_authz: 'v3', encoding: 'protojson' },
    agent,
  });
  // Field types as opa-envoy-plugin produces them.
  t.type(input.attributes.source.address.socketAddress.portValue, 'number');
  t.type(input.attributes.request.time.seconds, 'number');
  t.notOk('host' in input.attributes.request.http.headers, 'Host travels as :authority, as Envoy sends it');
});

t.test('copies every header as an own property, a header named __proto__ too', async (t) => {
  const req = request('/x', ['Host', 'a.internal', 'Accept', '*/*'], 'GET');
  Object.defineProperty(req.headers, '__proto__', { value: 'v', enumerable: true, writable: true, configurable: true });
  const input = buildInput(req, { bytes: Buffer.alloc(0), truncated: false }, agent, 1_700_000_000_000);
  const headers = input.attributes.request.http.headers;
  t.equal(Object.getPrototypeOf(headers), Object.prototype, 'the prototype is not replaced');
  t.same(JSON.parse(JSON.stringify(headers)), {
    ':authority': 'a.internal',
    ':method': 'GET',
    ':path': '/x',
    ':scheme': 'http',
    accept: '*/*',
    ['__proto__']: 'v',
  });
  t.ok(Object.hasOwn(headers, '__proto__'));
});

t.test('omits body and nanos when they are empty, as protobuf reflection does', async (t) => {
  const input = buildInput(
    request('/', ['Host', 'a.test'], 'GET'),
    { bytes: Buffer.alloc(0), truncated: false },
    agent,
    1_700_000_000_000,
  );
  t.notOk('body' in input.attributes.request.http);
  t.same(input.attributes.request.time, { seconds: 1_700_000_000 });
  t.same(input.parsed_path, ['']);
  t.same(input.parsed_query, {});
  t.equal(input.parsed_body, null);
  t.notOk('mcp' in input);
});

// The envoy reading; the strict reading refuses a truncated JSON object (test/input/body-reading.test.ts).
t.test('marks a body past the buffer limit truncated and leaves parsed_body null', async (t) => {
  const input = buildInput(
    request('/', ['Host', 'a.test', 'Content-Type', 'application/json']),
    { bytes: Buffer.from('{"amount": 1'), truncated: true },
    agent,
    Date.now(),
    { reading: 'envoy' },
  );
  t.equal(input.truncated_body, true);
  t.equal(input.parsed_body, null);
  t.equal(input.attributes.request.http.body, '{"amount": 1');
  const text = buildInput(
    request('/', ['Host', 'a.test', 'Content-Type', 'text/csv']),
    { bytes: Buffer.from('a,b\n1,2'), truncated: true },
    agent,
  );
  t.equal(text.truncated_body, true);
  t.equal(text.parsed_body, null);
});

t.test('parses form bodies into lists of values', async (t) => {
  t.same(parseBody({ 'content-type': 'application/x-www-form-urlencoded' }, 'a=1&a=2&b=x+y', false), {
    parsed: { a: ['1', '2'], b: ['x y'] },
    truncated: false,
  });
});

t.test('reports a body shorter than its content-length as truncated, as opa-envoy-plugin does', async (t) => {
  t.same(parseBody({ 'content-type': 'application/json', 'content-length': '100' }, '{}', false), {
    parsed: null,
    truncated: true,
  });
  t.same(parseBody({ 'content-type': 'application/json', 'x-envoy-auth-partial-body': 'true' }, '{}', false), {
    parsed: null,
    truncated: true,
  });
});

t.test('leaves unknown content types unparsed', async (t) => {
  t.same(parseBody({ 'content-type': 'text/plain' }, 'hello', false), { parsed: null, truncated: false });
  t.same(parseBody({}, '{ not json }', false), { parsed: null, truncated: false });
});

// Envoy forwards the body to a tool that reads JSON whatever the label, while
// opa-envoy-plugin's parsed_body is null for it: the policy would decide blind.
t.test('refuses in the envoy reading a JSON body that opa-envoy-plugin leaves unparsed', async (t) => {
  for (const headers of [{}, { 'content-type': 'text/plain' }, { 'content-type': 'application/vnd.api+json' }] as Array<
    Record<string, string>
  >) {
    t.throws(() => parseBody(headers, '{"amount": 900}', false), {
      code: 'TG_ERR_AMBIGUOUS_BODY',
      message: /parsed_body is null/,
    });
  }
  t.same(parseBody({ 'content-type': 'application/json' }, '{"amount": 900}', false), {
    parsed: { amount: 900 },
    truncated: false,
  });
  // Python reads UTF-16 JSON whatever the label; the raw_body bytes show it.
  const wide = Buffer.from('{"amount": 900}', 'utf16le');
  t.throws(() => parseBody({ 'content-type': 'text/plain' }, '', false, wide), { code: 'TG_ERR_UNSUPPORTED_MEDIA' });
  // Mcp-Method / Mcp-Name must agree with the body on this door too.
  const call = '{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "a"}}';
  t.throws(() => parseBody({ 'content-type': 'application/json', 'mcp-name': 'b' }, call, false), {
    code: 'TG_ERR_AMBIGUOUS_BODY',
    message: /Mcp-Name/,
  });
  t.throws(() => parseBody({ 'content-type': 'text/plain', 'mcp-method': 'tools/call' }, 'hello', false), {
    code: 'TG_ERR_AMBIGUOUS_BODY',
  });
  t.equal(parseBody({ 'content-type': 'application/json', 'mcp-name': 'a' }, call, false).mcp?.method, 'tools/call');
});

t.test('rejects a JSON content type whose body is not JSON', async (t) => {
  t.throws(() => parseBody({ 'content-type': 'application/json; charset=utf-8' }, '{nope', false), {
    code: 'TG_ERR_BAD_REQUEST',
  });
  t.throws(() => parseBody({ 'content-type': 'application/json', 'content-length': 'x' }, '{}', false), {
    code: 'TG_ERR_BAD_REQUEST',
  });
});

t.test('decodes parsed_path like Go url.PathUnescape and rejects what Go rejects in queries', async (t) => {
  t.same(parsePath('/a%20b/c+d/%C3%A9?q'), ['a b', 'c+d', 'é']);
  t.same(parsePath('//x'), ['x']);
  t.same(parseQuery('a=%41&b&=v&&c=1=2'), { a: ['A'], b: [''], '': ['v'], c: ['1=2'] });
  t.throws(() => parseQuery('a=1;b=2'), TollgateError);
  t.throws(() => parseQuery('a=%zz'), { code: 'TG_ERR_BAD_REQUEST' });
});

t.test('exposes an MCP tools/call as input.mcp with tool name and arguments', async (t) => {
  const body = JSON.stringify({
    jsonrpc: '2.0',
    id: 3,
    method: 'tools/call',
    params: { name: 'issue_refund', arguments: { amount: 20 } },
  });
  const input = buildInput(
    request('/mcp', ['Host', 'mcp.internal', 'Content-Type', 'application/json']),
    { bytes: Buffer.from(body), truncated: false },
    agent,
  );
  t.same(input.mcp, { id: 3, method: 'tools/call', tool: { name: 'issue_refund', arguments: { amount: 20 } } });
});

t.test('exposes every message of a JSON-RPC batch', async (t) => {
  const mcp = extractMcp([
    { jsonrpc: '2.0', id: 1, method: 'tools/list' },
    { jsonrpc: '2.0', id: 'b', method: 'tools/call', params: { name: 'delete_customer' } },
    { jsonrpc: '2.0', method: 'notifications/initialized' },
    { not: 'rpc' },
  ]);
  t.same(mcp, {
    method: 'batch',
    batch: [
      { id: 1, method: 'tools/list' },
      { id: 'b', method: 'tools/call', tool: { name: 'delete_customer', arguments: {} } },
      { method: 'notifications/initialized' },
    ],
  });
  t.same(mcpRequestIds(mcp!), [1, 'b']);
  t.equal(extractMcp({ jsonrpc: '1.0', method: 'x' }), undefined);
  t.equal(extractMcp([1, 2]), undefined);
  t.equal(extractMcp('text'), undefined);
});
