// Bodies judged by real tools (MCP TypeScript and Go SDKs, Go encoding/json, Starlette and
// the MCP Python SDK) behind a real sidecar: every body is refused, denied, or read by each
// tool exactly as the policy read it. Never a bypass.
import t from 'tap';
import { judge, startGate, startToolServers, TOOL_HOSTS } from '../oneread/harness.ts';

const call = (name: string, args: Record<string, unknown> = { id: 'c-1' }) =>
  JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name, arguments: args } });

/** A raw HTTP/1.1 POST through the proxy to a tool. */
function post(tool: keyof typeof TOOL_HOSTS, path: string, headers: string[], body: string | Buffer): Buffer {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  const head = [
    `POST http://${TOOL_HOSTS[tool]}${path} HTTP/1.1`,
    `Host: ${TOOL_HOSTS[tool]}`,
    'Accept: application/json, text/event-stream',
    ...headers,
    `Content-Length: ${bytes.length}`,
    'Connection: close',
    '',
    '',
  ].join('\r\n');
  return Buffer.concat([Buffer.from(head), bytes]);
}

const BODIES: Array<[label: string, headers: string[], body: string | Buffer]> = [
  ['denied tool, no content-type', [], call('delete_customer')],
  ['denied tool, Application/JSON', ['Content-Type: Application/JSON'], call('delete_customer')],
  ['denied tool, text/plain', ['Content-Type: text/plain'], call('delete_customer')],
  ['denied tool, parameter naming json', ['Content-Type: text/plain; x="application/json"'], call('delete_customer')],
  ['amount over 500, no content-type', [], '{"amount": 900}'],
  ['amount over 500, text/plain', ['Content-Type: text/plain'], '{"amount": 900}'],
  ['duplicate amount', ['Content-Type: application/json'], '{"amount": 1, "amount": 900}'],
  ['case-colliding amount', ['Content-Type: application/json'], '{"amount": 1, "Amount": 900}'],
  ['kelvin sign key', ['Content-Type: application/json'], '{"k": 1, "\u212a": 900}'],
  ['lossy decimal', ['Content-Type: application/json'], '{"amount": 500.000000000000001}'],
  ['big integer', ['Content-Type: application/json'], '{"amount": 9007199254740993}'],
  ['NaN beside an amount', ['Content-Type: application/json'], '{"amount": 900, "x": NaN}'],
  ['trailing second value', ['Content-Type: application/json'], '{"amount": 1}{"amount": 900}'],
  ['byte order mark', [], '\ufeff{"amount": 900}'],
  ['lone surrogate', ['Content-Type: application/json'], '{"note": "\\ud800", "amount": 900}'],
  [
    'invalid UTF-8',
    ['Content-Type: application/json'],
    Buffer.concat([Buffer.from('{"amount": 900, "n": "'), Buffer.from([0xff]), Buffer.from('"}')]),
  ],
  [
    'gzip coding',
    ['Content-Type: application/json', 'Content-Encoding: gzip'],
    Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]),
  ],
  ['latin-1 charset', ['Content-Type: application/json; charset=iso-8859-1'], '{"amount": 900}'],
  ['denied tool in UTF-16', [], Buffer.from(call('delete_customer'), 'utf16le')],
  [
    'denied tool in a batch with a malformed element',
    ['Content-Type: application/json'],
    `[${call('lookup_customer')}, {"jsonrpc": "2.0", "method": 5}]`,
  ],
  [
    'denied tool spelled Name',
    ['Content-Type: application/json'],
    JSON.stringify({
      jsonrpc: '2.0',
      id: 7,
      method: 'tools/call',
      params: { Name: 'delete_customer', name: 'lookup_customer', arguments: {} },
    }),
  ],
  [
    'JSONRPC member in capitals',
    [],
    JSON.stringify({ JSONRPC: '2.0', id: 7, method: 'tools/call', params: { name: 'delete_customer', arguments: {} } }),
  ],
  [
    'escaped jsonrpc name',
    ['Content-Type: text/plain'],
    '{"\\u006asonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "delete_customer", "arguments": {}}}',
  ],
  ['allowed tool, no content-type', [], call('lookup_customer')],
  ['allowed amount, text/plain', ['Content-Type: text/plain'], '{"amount": 120}'],
  ['plain text', ['Content-Type: text/plain'], 'hello'],
  ['text opening like JSON', ['Content-Type: text/plain'], '{ not json }'],
];

t.test('bodies are refused, denied, or read by every tool as the policy read them', async (t) => {
  const tools = await startToolServers(t);
  const gate = await startGate(t, tools);
  const kinds = new Map<string, number>();
  for (const tool of ['go-json', 'py', 'ts-mcp', 'go-mcp'] as Array<keyof typeof TOOL_HOSTS>) {
    const path = tool === 'go-json' || tool === 'py' ? '/echo' : '/mcp';
    for (const [label, headers, body] of BODIES) {
      // The MCP servers only take JSON-RPC; plain bodies go to the echo tools.
      if (path === '/mcp' && !String(body).includes('jsonrpc') && !Buffer.isBuffer(body)) continue;
      const verdict = await judge(gate, tools, post(tool, path, headers, body));
      kinds.set(verdict.kind, (kinds.get(verdict.kind) ?? 0) + 1);
      t.not(verdict.kind, 'bypass', `${tool}: ${label}: ${verdict.problems.join('; ')}`);
    }
  }
  // Controls: allowed bodies reach the tools, so the suite can tell a refusal from a block.
  t.ok((kinds.get('decided') ?? 0) >= 8, `decided ${kinds.get('decided')}`);
  t.ok((kinds.get('refused') ?? 0) >= 20, `refused ${kinds.get('refused')}`);
  t.ok((kinds.get('denied') ?? 0) >= 8, `denied ${kinds.get('denied')}`);
});
