// Writes mix.json: the CheckRequest mix bench/extauthz.sh sends (ghz --data-file, an
// array of messages sent round-robin). Protobuf JSON names, as ghz parses them with
// protojson. Requests taken from the differential corpus (test/extauthz/differential.test.ts)
// with the headers Envoy adds (x-request-id, x-forwarded-proto, user-agent, ...).
// Regenerate: node bench/extauthz/gen-mix.mjs > bench/extauthz/mix.json
const envoyHeaders = (method, host, path, i) => ({
  ':authority': host,
  ':method': method,
  ':path': path,
  ':scheme': 'http',
  'user-agent': 'support-bot/1.4 (tollgate)',
  accept: 'application/json',
  'x-forwarded-proto': 'http',
  'x-request-id': `6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e${String(i).padStart(2, '0')}`,
  'x-envoy-expected-rq-timeout-ms': '15000',
});

let n = 0;
function http(method, host, path, headers = {}, extra = {}) {
  n++;
  return {
    attributes: {
      source: {
        address: { socketAddress: { address: '10.0.0.7', portValue: 43210 } },
        principal: 'spiffe://cluster.local/ns/agents/sa/support-bot',
      },
      destination: { address: { socketAddress: { address: '10.0.0.8', portValue: 80 } } },
      request: {
        time: '2025-11-24T16:00:00.123Z',
        http: {
          id: String(1000 + n),
          method,
          host,
          path,
          scheme: 'http',
          protocol: 'HTTP/1.1',
          headers: { ...envoyHeaders(method, host, path, n), ...headers },
          ...extra,
        },
      },
    },
  };
}
const jsonHeaders = (body) => ({
  'content-type': 'application/json',
  'content-length': String(Buffer.byteLength(body)),
});
const post = (host, path, body, headers = jsonHeaders(body), extra = {}) =>
  http('POST', host, path, headers, { body, size: String(Buffer.byteLength(body)), ...extra });
const mcp = (name, args) =>
  JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name, arguments: args } });
const rawRefund = '{"amount": 80, "order": "o-77"}';

const mix = [
  // allowed
  http('GET', 'crm.internal', '/v1/customers/42'),
  http('GET', 'crm.internal', '/v1/customers?email=a%40b.example&limit=20'),
  http('GET', 'payments.internal', '/v1/refunds/r-1'),
  post('payments.internal', '/v1/refunds', '{"amount": 120, "order": "o-1", "reason": "damaged"}'),
  post('payments.internal', '/v1/refunds', 'amount=100&order=o-1', {
    'content-type': 'application/x-www-form-urlencoded',
  }),
  http('POST', 'payments.internal', '/v1/refunds', jsonHeaders(rawRefund), {
    rawBody: Buffer.from(rawRefund).toString('base64'),
  }),
  post('mcp.internal', '/mcp', mcp('issue_refund', { order: 'o-9', amount: 50 }), {
    ...jsonHeaders(mcp('issue_refund', { order: 'o-9', amount: 50 })),
    'mcp-session-id': 's-1',
  }),
  // denied
  post('payments.internal', '/v1/refunds', '{"amount": 500.01, "order": "o-2"}'),
  post('payments.internal', '/v1/refunds', '{"amount": 900, "order": "o-3"}'),
  http('GET', 'hr.internal', '/v1/employees'),
  http('DELETE', 'evil.example', '/'),
  http('GET', 'crm.internal', '/v1/%zz'),
];
process.stdout.write(JSON.stringify(mix, null, 1) + '\n');
