import t from 'tap';
import { buildInput, inputFromCheckRequest, type PolicyInput } from '../../src/input/build.ts';
import { normalizeRequest } from '../../src/http/normalize.ts';
import { TollgateError } from '../../src/errors.ts';

const agent = { id: 'support-bot', role: 'support', labels: {} };

function request(headers: string[], method = 'POST') {
  return normalizeRequest({
    id: 'req-1',
    method,
    target: 'http://mcp.internal/mcp',
    rawHeaders: ['Host', 'mcp.internal', ...headers],
    httpVersion: '1.1',
    scheme: 'http',
    source: { address: '127.0.0.1', port: 40000 },
    destination: { address: '127.0.0.1', port: 15001 },
  });
}

/** The strict reading of the HTTP PEP (buildInput's default). */
function read(
  headers: string[],
  body: string | Buffer,
  options: { truncated?: boolean; limit?: number } = {},
): PolicyInput {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  return buildInput(
    request(headers),
    { bytes, truncated: options.truncated ?? false },
    agent,
    1_700_000_000_000,
    options.limit === undefined ? {} : { limit: options.limit },
  );
}

/** The code the strict reading refuses with, or undefined when it reads the body. */
function refusal(
  headers: string[],
  body: string | Buffer,
  options: { truncated?: boolean; limit?: number } = {},
): string | undefined {
  try {
    read(headers, body, options);
    return undefined;
  } catch (err) {
    if (!(err instanceof TollgateError)) throw err;
    return err.code;
  }
}

const CALL = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'tools/call',
  params: { name: 'delete_customer', arguments: { id: 'c-1' } },
});
const CALL_MCP = { id: 1, method: 'tools/call', tool: { name: 'delete_customer', arguments: { id: 'c-1' } } };

// The walk-around of the seed policy: MCP servers parse the body whatever the header says.
t.test('shows a tools/call to the policy whatever the content-type says or omits', async (t) => {
  for (const headers of [
    [],
    ['Content-Type', 'Application/JSON'],
    ['Content-Type', 'text/plain'],
    ['Content-Type', 'application/octet-stream'],
    ['Content-Type', 'text/plain; x="application/json"'],
    ['Content-Type', 'application/vnd.api+json'],
  ]) {
    const input = read(headers, CALL);
    t.same(input.mcp, CALL_MCP, JSON.stringify(headers));
    t.same(input.parsed_body, JSON.parse(CALL), JSON.stringify(headers));
  }
});

// Go handlers decode r.Body and Starlette's request.json() parses whatever the label says.
t.test('reads a body that opens like JSON as JSON under any non-form media type', async (t) => {
  for (const headers of [[], ['Content-Type', 'text/plain'], ['Content-Type', 'application/octet-stream']]) {
    t.same(read(headers, '{"amount": 900}').parsed_body, { amount: 900 }, JSON.stringify(headers));
    t.same(read(headers, ' [1, 2]').parsed_body, [1, 2], JSON.stringify(headers));
    t.notOk('mcp' in read(headers, '{"amount": 900}'));
    // Read differently or leniently by some tool: refused, as under application/json.
    for (const body of [
      '{"amount": 1, "amount": 900}',
      '{"Amount": 900, "amount": 1}',
      '{"amount": 900, "x": NaN}',
      '{"amount": 900}{"amount": 1}',
      '{"amount": 9007199254740993}',
      '\ufeff{"amount": 900}',
    ]) {
      t.equal(refusal(headers, body), 'TG_ERR_AMBIGUOUS_BODY', `${body} ${JSON.stringify(headers)}`);
    }
    t.equal(refusal(headers, Buffer.from([0x7b, 0x22, 0x61, 0xff, 0x22, 0x3a, 0x31, 0x7d])), 'TG_ERR_AMBIGUOUS_BODY');
  }
  t.same(read(['Content-Type', 'application/json; charset=UTF-8'], '{"amount": 120}').parsed_body, { amount: 120 });
});

t.test('leaves a body that no JSON parser reads opaque under a non-JSON media type', async (t) => {
  for (const body of [
    '{not json',
    '{ a text that opens like JSON }',
    '[1 2]',
    "{'a': 1}",
    '{"a": 1,}',
    '{"a" 1}',
    'hello jsonrpc',
    'plain text',
    '',
  ]) {
    const input = read(['Content-Type', 'text/plain'], body);
    t.equal(input.parsed_body, null, body);
    t.notOk('mcp' in input, body);
  }
});

t.test('skips every body rule for a bodyless request', async (t) => {
  const input = buildInput(
    request(['Content-Type', 'not a media type', 'Content-Encoding', 'gzip'], 'GET'),
    { bytes: Buffer.alloc(0), truncated: false },
    agent,
  );
  t.equal(input.parsed_body, null);
  t.equal(input.truncated_body, false);
});

t.test('refuses a malformed content-type on a body with 415', async (t) => {
  t.equal(refusal(['Content-Type', 'application/json garbage'], '{}'), 'TG_ERR_UNSUPPORTED_MEDIA');
  t.equal(
    refusal(['Content-Type', 'application/json; charset=utf-8; charset=latin1'], '{}'),
    'TG_ERR_UNSUPPORTED_MEDIA',
  );
});

// RFC 8259 §8.1: JSON exchanged between systems is UTF-8; a charset label would be read by some servers only.
t.test('refuses charsets other than UTF-8 with 415, and us-ascii only over non-ASCII bytes', async (t) => {
  t.equal(refusal(['Content-Type', 'application/json; charset=iso-8859-1'], '{"a": 1}'), 'TG_ERR_UNSUPPORTED_MEDIA');
  t.equal(refusal(['Content-Type', 'application/json; charset=utf-16'], '{"a": 1}'), 'TG_ERR_UNSUPPORTED_MEDIA');
  t.equal(refusal(['Content-Type', 'text/plain; charset=windows-1252'], CALL), 'TG_ERR_UNSUPPORTED_MEDIA');
  t.equal(
    refusal(['Content-Type', 'application/x-www-form-urlencoded; charset=latin1'], 'a=1'),
    'TG_ERR_UNSUPPORTED_MEDIA',
  );
  t.equal(refusal(['Content-Type', 'application/json; charset=US-ASCII'], '{"a": "é"}'), 'TG_ERR_UNSUPPORTED_MEDIA');
  t.equal(refusal(['Content-Type', 'application/json; charset=us-ascii'], '{"a": "e"}'), undefined);
  t.equal(refusal(['Content-Type', 'application/json; charset="UTF-8"'], '{"a": "é"}'), undefined);
  // A text body that is not JSON-RPC is not read, so its charset does not matter.
  t.equal(refusal(['Content-Type', 'text/plain; charset=latin1'], 'caf\xe9'), undefined);
});

t.test('refuses content codings other than identity with 415', async (t) => {
  for (const coding of ['gzip', 'br', 'deflate', 'zstd', 'gzip, gzip', 'identity, gzip', 'x-unknown']) {
    t.equal(
      refusal(['Content-Type', 'application/json', 'Content-Encoding', coding], '{"a": 1}'),
      'TG_ERR_UNSUPPORTED_MEDIA',
      coding,
    );
  }
  t.equal(
    refusal(['Content-Type', 'application/octet-stream', 'Content-Encoding', 'gzip'], Buffer.from([0x1f, 0x8b, 8, 0])),
    'TG_ERR_UNSUPPORTED_MEDIA',
  );
  t.equal(refusal(['Content-Type', 'application/json', 'Content-Encoding', 'Identity'], '{"a": 1}'), undefined);
});

t.test('refuses invalid UTF-8 and a byte order mark in JSON and JSON-RPC bodies', async (t) => {
  const invalid = Buffer.concat([Buffer.from('{"a": "'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
  t.equal(refusal(['Content-Type', 'application/json'], invalid), 'TG_ERR_AMBIGUOUS_BODY');
  const overlong = Buffer.concat([
    Buffer.from('{"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "a'),
    Buffer.from([0xc0, 0xaf]),
    Buffer.from('"}}'),
  ]);
  t.equal(refusal([], overlong), 'TG_ERR_AMBIGUOUS_BODY');
  t.equal(refusal(['Content-Type', 'application/json'], `\ufeff{"a": 1}`), 'TG_ERR_AMBIGUOUS_BODY');
  // Python's json.loads(bytes) reads through a BOM: a JSON-RPC call behind one is refused whatever the label.
  t.equal(refusal(['Content-Type', 'text/plain'], `\ufeff${CALL}`), 'TG_ERR_AMBIGUOUS_BODY');
  t.equal(refusal([], `\ufeff${CALL}`), 'TG_ERR_AMBIGUOUS_BODY');
});

t.test('refuses JSON bodies that parsers read differently with 400', async (t) => {
  for (const body of [
    '{"amount": 1, "amount": 900}',
    '{"Amount": 1, "amount": 900}',
    '{"amount": 500.000000000000001}',
    '{"amount": 9007199254740993}',
    '{"amount": 1e400}',
    '{"amount": NaN}',
    '{"a": "\\ud800"}',
    '{"a": 1} // c',
    '{"a": 1}x',
  ]) {
    t.equal(refusal(['Content-Type', 'application/json'], body), 'TG_ERR_AMBIGUOUS_BODY', body);
  }
});

// Lenient parsers (Python json's NaN, JSON5-style readers) may still execute these.
t.test('refuses a body naming jsonrpc that does not parse strictly, whatever the content-type', async (t) => {
  const lenient =
    '{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "delete_customer", "arguments": {"n": NaN}}}';
  for (const headers of [
    [],
    ['Content-Type', 'text/plain'],
    ['Content-Type', 'application/json'],
    ['Content-Type', 'application/octet-stream'],
  ]) {
    t.equal(refusal(headers, lenient), 'TG_ERR_AMBIGUOUS_BODY', JSON.stringify(headers));
  }
  t.equal(
    refusal(['Content-Type', 'text/plain'], `{"JSONRPC": "2.0", "method": "tools/call", "x": "\\ud800"}`),
    'TG_ERR_AMBIGUOUS_BODY',
  );
  t.equal(
    refusal(['Content-Type', 'text/plain'], `{"\\u006asonrpc": "2.0", "method": "tools/call", "n": Infinity}`),
    'TG_ERR_AMBIGUOUS_BODY',
  );
  t.equal(refusal(['Content-Type', 'text/plain'], `garbage then {"jsonrpc": "2.0"}`), 'TG_ERR_AMBIGUOUS_BODY');
});

// Go matches member names under Unicode simple folding: U+017F LONG S is s to it.
t.test('refuses a jsonrpc member spelled with a character that folds to an ASCII letter', async (t) => {
  t.equal(
    refusal(
      ['Content-Type', 'text/plain'],
      '{"jſonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "delete_customer"}}',
    ),
    'TG_ERR_AMBIGUOUS_BODY',
  );
  t.equal(
    refusal([], '{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"naḿe": "x", "name": "y"}}'),
    undefined,
  );
  t.equal(
    refusal([], '{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "y", "argumentſ": {}}}'),
    'TG_ERR_AMBIGUOUS_BODY',
  );
});

t.test('recognises a jsonrpc member spelled with escapes under any content-type', async (t) => {
  const escaped =
    '{"\\u006asonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"\\u006eame": "delete_customer"}}';
  t.same(read(['Content-Type', 'text/plain'], escaped).mcp, {
    id: 1,
    method: 'tools/call',
    tool: { name: 'delete_customer', arguments: {} },
  });
  const envoy = inputFromCheckRequest(
    {
      attributes: {
        request: { http: { method: 'POST', path: '/mcp', headers: { 'content-type': 'text/plain' }, body: escaped } },
      },
    },
    agent,
  );
  t.same(envoy.mcp, { id: 1, method: 'tools/call', tool: { name: 'delete_customer', arguments: {} } });
});

// Python's json.loads(bytes), under FastAPI or Starlette, decodes UTF-16 and UTF-32 it detects.
t.test('refuses a JSON-RPC message in UTF-16 or UTF-32 whatever the content-type', async (t) => {
  const utf16le = Buffer.from(CALL, 'utf16le');
  const utf16be = Buffer.from(utf16le).swap16();
  const utf32le = Buffer.alloc(CALL.length * 4);
  for (let k = 0; k < CALL.length; k++) utf32le.writeUInt32LE(CALL.charCodeAt(k), k * 4);
  for (const body of [
    utf16le,
    utf16be,
    Buffer.concat([Buffer.from([0xff, 0xfe]), utf16le]),
    Buffer.concat([Buffer.from([0xfe, 0xff]), utf16be]),
    utf32le,
  ]) {
    t.equal(refusal([], body), 'TG_ERR_AMBIGUOUS_BODY');
    t.equal(refusal(['Content-Type', 'application/octet-stream'], body), 'TG_ERR_AMBIGUOUS_BODY');
    t.equal(refusal(['Content-Type', 'application/json'], body), 'TG_ERR_AMBIGUOUS_BODY');
  }
  // Binary bodies with NUL bytes that name no jsonrpc stay opaque.
  t.equal(
    read(['Content-Type', 'application/octet-stream'], Buffer.from([0, 0, 0, 0x18, 0x66, 0x74, 0x79, 0x70, 0x7b]))
      .parsed_body,
    null,
  );
});

t.test('refuses a JSON-RPC message sent as a urlencoded form', async (t) => {
  t.equal(refusal(['Content-Type', 'application/x-www-form-urlencoded'], CALL), 'TG_ERR_AMBIGUOUS_BODY');
});

// Go handlers and Starlette's request.json() read it as JSON whatever the label says.
t.test('refuses any JSON sent as a urlencoded form', async (t) => {
  t.equal(refusal(['Content-Type', 'application/x-www-form-urlencoded'], '{"amount": 900}'), 'TG_ERR_AMBIGUOUS_BODY');
  t.equal(refusal(['Content-Type', 'application/x-www-form-urlencoded'], ' [1]'), 'TG_ERR_AMBIGUOUS_BODY');
});

t.test('refuses a batch nested in a batch', async (t) => {
  t.equal(refusal(['Content-Type', 'application/json'], `[[${CALL}]]`), 'TG_ERR_AMBIGUOUS_BODY');
  t.equal(refusal([], `[${CALL}, [${CALL}]]`), 'TG_ERR_AMBIGUOUS_BODY');
});

t.test('reads form bodies as before and refuses escapes that decode to invalid UTF-8', async (t) => {
  t.same(read(['Content-Type', 'application/x-www-form-urlencoded'], 'a=1&a=2&b=%C3%A9+x').parsed_body, {
    a: ['1', '2'],
    b: ['é x'],
  });
  t.equal(refusal(['Content-Type', 'application/x-www-form-urlencoded'], 'a=%FF'), 'TG_ERR_AMBIGUOUS_BODY');
  t.equal(refusal(['Content-Type', 'application/x-www-form-urlencoded'], 'a=%C0%AF'), 'TG_ERR_AMBIGUOUS_BODY');
  t.equal(refusal(['Content-Type', 'application/x-www-form-urlencoded'], 'a=1;b=2'), 'TG_ERR_BAD_REQUEST');
});

t.test('refuses JSON-RPC that is not well-formed 2.0, naming the batch element', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [[], /./],
    [[{ jsonrpc: '2.0', method: 'ping', id: 1 }, 5], /batch element 1.*not an object/],
    [
      [
        { jsonrpc: '2.0', method: 'ping', id: 1 },
        { jsonrpc: '1.0', method: 'tools/call', id: 2 },
      ],
      /batch element 1.*jsonrpc/,
    ],
    [{ jsonrpc: 2, method: 'ping' }, /message.*jsonrpc/],
    [{ jsonrpc: '2.0', method: 7 }, /method is not a string/],
    [{ jsonrpc: '2.0', method: 'ping', id: { a: 1 } }, /id is not/],
    [{ jsonrpc: '2.0', method: 'ping', id: true }, /id is not/],
    [{ jsonrpc: '2.0', method: 'ping', params: 'x' }, /params is not/],
    [{ jsonrpc: '2.0', method: 'tools/call', id: 1 }, /tools\/call params is not an object/],
    [{ jsonrpc: '2.0', method: 'tools/call', id: 1, params: [] }, /tools\/call params is not an object/],
    [{ jsonrpc: '2.0', method: 'tools/call', id: 1, params: { name: 7 } }, /params.name is not a string/],
    [
      { jsonrpc: '2.0', method: 'tools/call', id: 1, params: { name: 'x', arguments: [1] } },
      /arguments is not an object/,
    ],
    [
      { jsonrpc: '2.0', method: 'tools/call', id: 1, params: { name: 'x', arguments: null } },
      /arguments is not an object/,
    ],
    // Go's encoding/json fills the fields from these spellings; others ignore them.
    [{ JSONRPC: '2.0', method: 'tools/call', params: { name: 'x' } }, /"JSONRPC"/],
    [{ jsonrpc: '2.0', Method: 'tools/call', params: { name: 'x' } }, /"Method"/],
    [{ jsonrpc: '2.0', method: 'tools/call', id: 1, params: { Name: 'delete_customer' } }, /"Name"/],
    [{ jsonrpc: '2.0', method: 'tools/call', id: 1, params: { name: 'x', Arguments: {} } }, /"Arguments"/],
    [{ jsonrpc: '2.0', id: 1 }, /neither a request/],
    [{ jsonrpc: '2.0', id: 1, result: {}, error: {} }, /neither a request/],
    [{ jsonrpc: '2.0', id: 1, method: 'ping', result: {} }, /request with result/],
  ];
  for (const [message, why] of cases) {
    const body = JSON.stringify(message);
    if (Array.isArray(message) && message.length === 0) {
      // An empty array names no jsonrpc member: not JSON-RPC, and no server executes anything of it.
      t.equal(read(['Content-Type', 'application/json'], body).mcp, undefined);
      continue;
    }
    for (const headers of [['Content-Type', 'application/json'], []]) {
      t.throws(
        () => read(headers, body),
        { code: 'TG_ERR_AMBIGUOUS_BODY', message: why },
        `${body} ${JSON.stringify(headers)}`,
      );
    }
  }
});

t.test('reads JSON-RPC responses and batches that mix them with requests', async (t) => {
  const response = read([], JSON.stringify({ jsonrpc: '2.0', id: 'srv-1', result: { content: [] } }));
  t.notOk('mcp' in response);
  t.same(response.parsed_body, { jsonrpc: '2.0', id: 'srv-1', result: { content: [] } });
  const batch = read(
    ['Content-Type', 'application/json'],
    JSON.stringify([
      { jsonrpc: '2.0', id: 'srv-1', error: { code: 1, message: 'x' } },
      JSON.parse(CALL),
      { jsonrpc: '2.0', method: 'notifications/initialized' },
    ]),
  );
  t.same(batch.mcp, { method: 'batch', batch: [CALL_MCP, { method: 'notifications/initialized' }] });
});

t.test('refuses a JSON or JSON-RPC body past the buffer limit with 413 naming the limit', async (t) => {
  const prefix = '{"params": {"arguments": {"blob": "';
  for (const [headers, body] of [
    [['Content-Type', 'application/json'], prefix],
    [[], prefix],
    [[], ' [{"jsonrpc'],
    [['Content-Type', 'text/plain'], 'xx "jsonrpc": "2.0"'],
    // Its "jsonrpc" member may come after the limit; servers that ignore the label would execute it.
    [['Content-Type', 'text/plain'], '{"params": {"arguments": {"blob": "'],
    [[], Buffer.from('{"params": {"arguments": {"blob": "', 'utf16le').swap16().toString('latin1')],
  ] as Array<[string[], string]>) {
    t.throws(
      () => read(headers, body, { truncated: true, limit: 65536 }),
      { code: 'TG_ERR_BODY_TOO_LARGE', message: /65536-byte/ },
      body,
    );
  }
  // A declared length longer than the body is a partial body too.
  t.equal(refusal(['Content-Type', 'application/json', 'Content-Length', '999'], '{"a": 1}'), 'TG_ERR_BODY_TOO_LARGE');
});

t.test('keeps truncated_body for other bodies past the buffer limit', async (t) => {
  for (const [headers, body] of [
    [['Content-Type', 'text/csv'], 'a,b\n1,2'],
    [['Content-Type', 'application/x-www-form-urlencoded'], 'a=1&b='],
    [
      ['Content-Type', 'multipart/form-data; boundary=x'],
      '--x\r\nContent-Disposition: form-data; name="f"\r\n\r\n{"jsonrpc"',
    ],
  ] as Array<[string[], string]>) {
    const input = read(headers, body, { truncated: true });
    t.equal(input.truncated_body, true, body);
    t.equal(input.parsed_body, null, body);
  }
});

t.test(
  'keeps opa-envoy-plugin parsed_body in the envoy reading, shows JSON-RPC as input.mcp and refuses what the strict reading refuses',
  async (t) => {
    const check = (headers: Record<string, string>, body: string) =>
      inputFromCheckRequest(
        { attributes: { request: { http: { method: 'POST', path: '/mcp', headers, body } } } },
        agent,
      );
    const plain = check({ 'content-type': 'text/plain' }, CALL);
    t.equal(plain.parsed_body, null);
    t.same(plain.mcp, CALL_MCP);
    const none = check({}, CALL);
    t.equal(none.parsed_body, null);
    t.same(none.mcp, CALL_MCP);
    // The SDKs behind Envoy run the last duplicate name, a case-insensitive decoder either:
    // the ext_authz server refuses (request_parse_error, 400) as the HTTP proxy does.
    t.throws(
      () =>
        check(
          { 'content-type': 'application/json' },
          '{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "a", "name": "b"}}',
        ),
      { code: 'TG_ERR_AMBIGUOUS_BODY' },
    );
    t.throws(() => check({ 'content-type': 'application/json', 'content-encoding': 'gzip' }, CALL), {
      code: 'TG_ERR_UNSUPPORTED_MEDIA',
    });
    t.throws(() => check({ 'content-type': 'text/plain' }, CALL.replace('"params"', '"params": 1, "params"')), {
      code: 'TG_ERR_AMBIGUOUS_BODY',
    });
    t.same(check({ 'content-type': 'Application/JSON' }, CALL).mcp, CALL_MCP);
    // Bodies that do not look like JSON keep opa-envoy-plugin's reading.
    t.equal(check({ 'content-type': 'text/plain' }, 'hello').parsed_body, null);
  },
);

t.test('reads the JSON parts of a multipart form strictly', async (t) => {
  const form = (json: string) =>
    `--x\r\nContent-Disposition: form-data; name="meta"\r\nContent-Type: application/json\r\n\r\n${json}\r\n--x--\r\n`;
  t.same(read(['Content-Type', 'multipart/form-data; boundary=x'], form('{"a": 1}')).parsed_body, { meta: [{ a: 1 }] });
  t.equal(
    refusal(['Content-Type', 'multipart/form-data; boundary=x'], form('{"a": 1, "A": 2}')),
    'TG_ERR_AMBIGUOUS_BODY',
  );
  t.equal(refusal(['Content-Type', 'multipart/form-data; boundary=x'], form('{"a": 1')), 'TG_ERR_AMBIGUOUS_BODY');
});

// RFC 7578 §4.1: without a boundary no part can be read, while Go handlers and Starlette's
// request.json() read the body as JSON whatever the label.
t.test('refuses multipart/form-data without a boundary with 415', async (t) => {
  for (const type of ['multipart/form-data', 'Multipart/Form-Data; charset=utf-8', 'multipart/form-data; x=y']) {
    t.equal(refusal(['Content-Type', type], '{"amount": 900}'), 'TG_ERR_UNSUPPORTED_MEDIA', type);
    t.equal(refusal(['Content-Type', type], 'a note'), 'TG_ERR_UNSUPPORTED_MEDIA', type);
  }
  t.throws(() => read(['Content-Type', 'multipart/form-data'], CALL), { message: /without a boundary/ });
});

// Go's json.NewDecoder(r.Body) reads the first JSON value: the preamble form parsers skip.
t.test('refuses a multipart body whose preamble is JSON or names jsonrpc', async (t) => {
  const parts = '--b\r\nContent-Disposition: form-data; name="amount"\r\n\r\n1\r\n--b--\r\n';
  const type = ['Content-Type', 'multipart/form-data; boundary=b'];
  t.equal(refusal(type, `{"amount": 900}\r\n${parts}`), 'TG_ERR_AMBIGUOUS_BODY');
  t.equal(refusal(type, ` \r\n[1]\r\n${parts}`), 'TG_ERR_AMBIGUOUS_BODY');
  t.equal(refusal(type, `note "jsonrpc" here\r\n${parts}`), 'TG_ERR_AMBIGUOUS_BODY');
  t.same(read(type, `a plain preamble\r\n${parts}`).parsed_body, { amount: ['1'] });
  t.same(read(type, parts).parsed_body, { amount: ['1'] });
});

// Python's json.detect_encoding: BOMs, then NUL bytes in the first four bytes (RFC 4627 §3).
t.test('refuses JSON that Python reads in UTF-16 or UTF-32 under a non-JSON media type with 415', async (t) => {
  const text = '{"amount": 900}';
  const le16 = Buffer.from(text, 'utf16le');
  const be16 = Buffer.from(le16).swap16();
  const utf32 = (bigEndian: boolean) => {
    const out = Buffer.alloc(text.length * 4);
    for (let k = 0; k < text.length; k++)
      if (bigEndian) out.writeUInt32BE(text.charCodeAt(k), k * 4);
      else out.writeUInt32LE(text.charCodeAt(k), k * 4);
    return out;
  };
  const bodies = [
    le16,
    be16,
    Buffer.concat([Buffer.from([0xff, 0xfe]), le16]),
    Buffer.concat([Buffer.from([0xfe, 0xff]), be16]),
    utf32(false),
    utf32(true),
    Buffer.concat([Buffer.from([0xff, 0xfe, 0, 0]), utf32(false)]),
    Buffer.from('9\x000\x000\x00', 'latin1'),
  ];
  for (const body of bodies) {
    for (const headers of [
      [],
      ['Content-Type', 'text/plain'],
      ['Content-Type', 'application/octet-stream'],
      ['Content-Type', 'application/x-www-form-urlencoded'],
      ['Content-Type', 'multipart/form-data; boundary=b'],
    ]) {
      t.equal(refusal(headers, body), 'TG_ERR_UNSUPPORTED_MEDIA', `${headers[1] ?? 'none'} ${body.toString('hex')}`);
    }
  }
  t.throws(() => read(['Content-Type', 'text/plain'], be16), { message: /UTF-16-BE to Python's json\.loads/ });
  // Past the buffer limit a UTF-16 prefix that opens like JSON is refused too.
  t.equal(
    refusal(['Content-Type', 'application/x-www-form-urlencoded'], be16, { truncated: true }),
    'TG_ERR_BODY_TOO_LARGE',
  );
  // Binary bodies whose NUL bytes decode to no JSON stay opaque.
  t.equal(
    read(['Content-Type', 'application/octet-stream'], Buffer.from([0, 0, 0, 0x18, 0x66, 0x74, 0x79, 0x70]))
      .parsed_body,
    null,
  );
  t.equal(read(['Content-Type', 'application/octet-stream'], Buffer.from('hello', 'utf16le')).parsed_body, null);
  t.equal(
    read(['Content-Type', 'application/octet-stream'], Buffer.from([0, 0, 0, 0x18, 0x66, 0x74]), { truncated: true })
      .truncated_body,
    true,
  );
});

// Only Envoy sets x-envoy-auth-partial-body (on the ext_authz door); an agent sending it
// must not hide a whole body from the policy.
t.test('ignores x-envoy-auth-partial-body in the strict reading', async (t) => {
  const input = read(['Content-Type', 'application/json', 'x-envoy-auth-partial-body', 'true'], '{"amount": 900}');
  t.equal(input.truncated_body, false);
  t.same(input.parsed_body, { amount: 900 });
  t.equal(read(['Content-Type', 'text/csv', 'x-envoy-auth-partial-body', 'true'], 'a,b').truncated_body, false);
});

// MCP 2026-07-28 Streamable HTTP: Mcp-Method and Mcp-Name mirror the body; intermediaries
// reject a mismatch with 400 (HeaderMismatch -32020).
t.test('refuses Mcp-Method or Mcp-Name headers that disagree with the JSON-RPC body', async (t) => {
  const json = ['Content-Type', 'application/json'];
  const b64 = (s: string) => `=?base64?${Buffer.from(s, 'utf8').toString('base64')}?=`;
  for (const [headers, body] of [
    [['Mcp-Method', 'tools/call', 'Mcp-Name', 'lookup_order'], CALL],
    [['Mcp-Method', 'tools/list'], CALL],
    [['Mcp-Name', 'lookup_order'], CALL],
    [['Mcp-Method', 'tools/call', 'Mcp-Name', 'delete_customer', 'Mcp-Name', 'lookup_order'], CALL],
    [['Mcp-Name', b64('lookup_order')], CALL],
    [['Mcp-Name', '=?base64?!!?='], CALL],
    [['Mcp-Method', 'tools/list', 'Mcp-Name', 'x'], '{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}'],
    [['Mcp-Name', 'b'], '{"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": "a"}}'],
    [['Mcp-Method', 'tools/call'], `[${CALL}]`],
    [['Mcp-Method', 'tools/call'], '{"jsonrpc": "2.0", "id": 1, "result": {}}'],
    [['Mcp-Method', 'tools/call'], '{"amount": 900}'],
    [['Mcp-Method', 'tools/call'], 'amount=900'],
  ] as Array<[string[], string]>) {
    t.equal(refusal([...json, ...headers], body), 'TG_ERR_AMBIGUOUS_BODY', `${headers.join(' ')} ${body}`);
  }
  t.throws(() => read([...json, 'Mcp-Method', 'tools/list'], CALL), { message: /HeaderMismatch -32020/ });
  // Agreeing headers, and none at all (earlier revisions), are read.
  for (const headers of [
    [],
    ['Mcp-Method', 'tools/call'],
    ['Mcp-Method', 'tools/call', 'Mcp-Name', 'delete_customer'],
    ['Mcp-Method', 'tools/call', 'Mcp-Name', b64('delete_customer')],
  ]) {
    t.same(read([...json, ...headers], CALL).mcp, CALL_MCP, headers.join(' '));
  }
  t.equal(
    refusal(
      [...json, 'Mcp-Method', 'resources/read', 'Mcp-Name', b64('file:///é')],
      '{"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": "file:///é"}}',
    ),
    undefined,
  );
  t.equal(
    refusal(
      [...json, 'Mcp-Method', 'prompts/get', 'Mcp-Name', 'p'],
      '{"jsonrpc": "2.0", "id": 1, "method": "prompts/get", "params": {"name": "p"}}',
    ),
    undefined,
  );
});
