// The strict body reading end to end: the sidecar as a real process with the committed
// default bundle, a counting upstream behind it. Nothing refused or denied reaches the tool.
import t from 'tap';
import { startTollgate, startUpstream, viaProxy } from '../helpers/processes.ts';

const SUPPORT = { id: 'support-bot', role: 'support' };
const call = (name: string) =>
  JSON.stringify({ jsonrpc: '2.0', id: 41, method: 'tools/call', params: { name, arguments: { id: 'c-1' } } });

t.test('strict body reading through the proxy', async (t) => {
  const upstream = await startUpstream(t);
  const resolve = {
    'mcp.internal:80': `127.0.0.1:${upstream.port}`,
    'payments.internal:80': `127.0.0.1:${upstream.port}`,
  };
  const tg = await startTollgate(t, { agent: SUPPORT, proxy: { resolve, maxRequestBytes: 4096 } });
  const post = (url: string, headers: Record<string, string>, body: string | Buffer) =>
    viaProxy(tg.proxyPort, { method: 'POST', url, headers, body });

  // The seed policy's MCP deny-list must see the call whatever the label says or omits.
  t.test('denies a tools/call the policy forbids without, or with any, content-type', async (t) => {
    for (const headers of [
      {},
      { 'content-type': 'Application/JSON' },
      { 'content-type': 'text/plain' },
      { 'content-type': 'application/json-rpc' },
    ] as Array<Record<string, string>>) {
      const before = upstream.received.length;
      const r = await post('http://mcp.internal/mcp', headers, call('delete_customer'));
      t.equal(r.status, 200, JSON.stringify(headers));
      t.equal(JSON.parse(r.body).error.code, -32001, JSON.stringify(headers));
      t.equal(upstream.received.length, before, JSON.stringify(headers));
    }
  });

  t.test('forwards an allowed tools/call without content-type unchanged', async (t) => {
    const before = upstream.received.length;
    const r = await post('http://mcp.internal/mcp', {}, call('lookup_customer'));
    t.equal(r.status, 200);
    t.equal(upstream.received.length, before + 1);
    t.equal(upstream.received.at(-1)!.body, call('lookup_customer'));
  });

  // A Go handler or Starlette's request.json() reads the amount whatever the label says.
  t.test('denies a refund above the limit sent without a JSON content-type', async (t) => {
    for (const headers of [{}, { 'content-type': 'text/plain' }] as Array<Record<string, string>>) {
      const before = upstream.received.length;
      const r = await post('http://payments.internal/v1/refunds', headers, '{"order": "o-1", "amount": 900}');
      t.equal(r.status, 403, JSON.stringify(headers));
      t.match(JSON.parse(r.body).reasons.join(' '), /900/);
      t.equal(upstream.received.length, before);
    }
  });

  t.test('refuses bodies with more than one reading before they reach the tool', async (t) => {
    const cases: Array<[string, Record<string, string>, string | Buffer, number, string]> = [
      [
        'http://payments.internal/v1/refunds',
        { 'content-type': 'application/json' },
        '{"order": "o-1", "amount": 1, "amount": 900}',
        400,
        'TG_ERR_AMBIGUOUS_BODY',
      ],
      [
        'http://payments.internal/v1/refunds',
        { 'content-type': 'application/json' },
        '{"order": "o-1", "amount": 1, "Amount": 900}',
        400,
        'TG_ERR_AMBIGUOUS_BODY',
      ],
      [
        'http://payments.internal/v1/refunds',
        { 'content-type': 'application/json' },
        '{"order": "o-1", "amount": 500.000000000000001}',
        400,
        'TG_ERR_AMBIGUOUS_BODY',
      ],
      [
        'http://payments.internal/v1/refunds',
        { 'content-type': 'application/json', 'content-encoding': 'gzip' },
        Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0]),
        415,
        'TG_ERR_UNSUPPORTED_MEDIA',
      ],
      [
        'http://payments.internal/v1/refunds',
        { 'content-type': 'application/json; charset=utf-16' },
        '{"amount": 1}',
        415,
        'TG_ERR_UNSUPPORTED_MEDIA',
      ],
      [
        'http://mcp.internal/mcp',
        { 'content-type': 'text/plain' },
        call('lookup_customer').replace('"c-1"', 'NaN'),
        400,
        'TG_ERR_AMBIGUOUS_BODY',
      ],
      ['http://mcp.internal/mcp', {}, `[${call('lookup_customer')}, 5]`, 400, 'TG_ERR_AMBIGUOUS_BODY'],
      // The tool name follows 8 KiB of arguments: past the 4 KiB buffer, the call is refused whole.
      [
        'http://mcp.internal/mcp',
        {},
        JSON.stringify({
          params: { arguments: { pad: 'x'.repeat(8192) }, name: 'delete_customer' },
          jsonrpc: '2.0',
          id: 1,
          method: 'tools/call',
        }),
        413,
        'TG_ERR_BODY_TOO_LARGE',
      ],
    ];
    for (const [url, headers, body, status, code] of cases) {
      const before = upstream.received.length;
      const r = await post(url, headers, body);
      const label = `${code} ${String(body).slice(0, 60)}`;
      t.equal(r.status, status, label);
      t.equal(JSON.parse(r.body).error.code, code, label);
      t.equal(upstream.received.length, before, label);
    }
  });
});
