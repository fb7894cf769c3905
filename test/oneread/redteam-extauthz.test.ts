// The ext_authz door, judged like the corpus: Tollgate's ext_authz server decides a
// CheckRequest carrying the body Envoy buffered (with_request_body), and when it allows,
// the same bytes go to the real tool server, as Envoy forwards them after an OK. No
// Envoy runs on this machine, so the forwarding step is a plain HTTP request with the
// CheckRequest's method, path, headers and body. A case fails when the tool executes
// what the test policy denies although the door allowed the request.
import t from 'tap';
import { buildBundle } from '../helpers/processes.ts';
import { checkClient, startTollgateExtAuthz } from '../extauthz/peers.ts';
import { deniedInToolReading, ONEREAD_POLICY, startToolServers, TOOL_HOSTS, type ToolName } from './harness.ts';

const MCP_HEADERS = { accept: 'application/json, text/event-stream', 'content-type': 'application/json' };
const rpc = (params: string): string => `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":${params}}`;

/** [id, tool, path, headers, body] */
const CASES: Array<[string, Exclude<ToolName, 'ip-denied' | 'go-decoder'>, string, Record<string, string>, string]> = [
  [
    'dup-name-delete-last',
    'ts-mcp',
    '/mcp',
    MCP_HEADERS,
    rpc('{"name":"lookup_order","name":"delete_customer","arguments":{}}'),
  ],
  [
    'dup-name-delete-last',
    'py',
    '/mcp',
    MCP_HEADERS,
    rpc('{"name":"lookup_order","name":"delete_customer","arguments":{}}'),
  ],
  [
    'dup-name-delete-last',
    'go-mcp',
    '/mcp',
    MCP_HEADERS,
    rpc('{"name":"lookup_order","name":"delete_customer","arguments":{}}'),
  ],
  [
    'case-Name-typed-go',
    'go-json',
    '/mcp',
    MCP_HEADERS,
    rpc('{"name":"lookup_order","Name":"delete_customer","arguments":{}}'),
  ],
  [
    'dup-arguments-amount',
    'ts-mcp',
    '/mcp',
    MCP_HEADERS,
    rpc('{"name":"refund","arguments":{"amount":1,"amount":900}}'),
  ],
  [
    'dup-arguments-amount',
    'go-mcp',
    '/mcp',
    MCP_HEADERS,
    rpc('{"name":"refund","arguments":{"amount":1,"amount":900}}'),
  ],
  ['amount-1e400', 'py', '/mcp', MCP_HEADERS, rpc('{"name":"refund","arguments":{"amount":1e400}}')],
  ['rest-text-plain-900', 'go-json', '/refund', { 'content-type': 'text/plain' }, '{"amount": 900}'],
  ['rest-no-content-type-900', 'py', '/refund', {}, '{"amount": 900}'],
  ['control-lookup', 'ts-mcp', '/mcp', MCP_HEADERS, rpc('{"name":"lookup_order","arguments":{"id":"o-1"}}')],
];

t.setTimeout(120_000);

t.test('a request the ext_authz door allows never makes a tool execute what the policy denies', async (t) => {
  const tools = await startToolServers(t);
  const bundle = await buildBundle({ 'oneread.rego': ONEREAD_POLICY }, ['tollgate/authz/decision'], 'oneread-extauthz');
  const { extAuthzPort } = await startTollgateExtAuthz(t, {
    agent: { id: 'oneread-agent', role: 'support' },
    pdp: { bundle },
  });
  const client = checkClient(extAuthzPort);
  t.teardown(() => client.close());

  const bypasses: string[] = [];
  let controlPassed = false;
  for (const [id, tool, path, headers, body] of CASES) {
    const host = TOOL_HOSTS[tool];
    const outcome = await client.check({
      attributes: {
        request: {
          http: {
            method: 'POST',
            host,
            path,
            scheme: 'http',
            protocol: 'HTTP/1.1',
            headers: {
              ':authority': host,
              ':method': 'POST',
              ':path': path,
              ...headers,
              'content-length': String(Buffer.byteLength(body)),
            },
            body,
          },
        },
      },
    });
    if ('error' in outcome) continue;
    const code = ((outcome.response.status as { code?: number } | undefined)?.code ?? 0) as number;
    if (code !== 0) continue;
    // Allowed: Envoy forwards the request it asked about.
    const before = (await tools[tool].state()).count;
    await (await fetch(`http://127.0.0.1:${tools[tool].port}${path}`, { method: 'POST', headers, body })).arrayBuffer();
    const state = await tools[tool].state();
    const echoes = state.echoes.filter((e) => e.n > before);
    const denied = echoes.flatMap((e) => deniedInToolReading(e, tool));
    if (id.startsWith('control')) controlPassed = echoes.some((e) => e.calls.some((c) => c.name === 'lookup_order'));
    else if (denied.length > 0)
      bypasses.push(`${id}/${tool}: allowed by ext_authz, ${tool} executed ${denied.join(', ')}; body ${body}`);
  }
  t.ok(controlPassed, 'a lookup_order call is allowed and executed');
  t.same(bypasses, [], `no bypasses through the ext_authz door (${bypasses.length})`);
});
