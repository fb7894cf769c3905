// The official MCP TypeScript SDK client drives whole sessions through Tollgate to servers
// built with the official TypeScript and Go SDKs, over Streamable HTTP (sessions, SSE
// responses), through the explicit proxy and inside CONNECT with TLS interception. The seed
// policy denies delete_customer for role support: the client sees a JSON-RPC error with the
// reason, the server never sees the call, and the session goes on.
import t from 'tap';
import { McpError, LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import type { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { connectTsClient, DENIED_REASON, proxiedFetch, ROUTES, startMcpWorld } from './harness.ts';

const text = (result: unknown): string =>
  ((result as { content: Array<{ text?: string }> }).content[0]?.text ?? '') as string;

/** Server-sent events of a response body: the JSON of each data line. */
function sseMessages(body: string): unknown[] {
  return body
    .split('\n')
    .filter((line) => line.startsWith('data:') && line.slice(5).trim() !== '')
    .map((line) => JSON.parse(line.slice(5)));
}

t.test('MCP TypeScript SDK client through Tollgate', async (t) => {
  const world = await startMcpWorld(t);

  for (const route of ROUTES) {
    t.test(`${route.server} SDK server, ${route.mode}: a whole session, a denied call in the middle`, async (t) => {
      const client = await connectTsClient(t, world, route.url);
      const transport = client.transport as StreamableHTTPClientTransport;
      t.equal(client.getServerVersion()?.name, `e2e-${route.server}`, 'initialize reached the server');
      t.ok(transport.sessionId, 'the server gave the session an Mcp-Session-Id');
      const serverCalls = async (): Promise<string[]> =>
        route.server === 'ts' ? [...world.ts.calls] : await world.go.calls();
      const deletesBefore = (await serverCalls()).filter((c) => c === 'delete_customer').length;

      const tools = await client.listTools();
      t.same(tools.tools.map((x) => x.name).sort(), ['count', 'delete_customer', 'lookup_order']);

      t.match(text(await client.callTool({ name: 'lookup_order', arguments: { id: 'o-1' } })), /^lookup_order done/);

      const denied = await client.callTool({ name: 'delete_customer', arguments: { id: 'c-1' } }).then(
        () => undefined,
        (err: unknown) => err,
      );
      t.type(denied, McpError, 'a denied call rejects with the SDK’s JSON-RPC error');
      t.equal((denied as McpError).code, -32001);
      t.match((denied as McpError).message, DENIED_REASON, 'the reason reaches the client');
      t.match((denied as McpError).data, { reasons: [DENIED_REASON] });
      t.equal(
        (await serverCalls()).filter((c) => c === 'delete_customer').length,
        deletesBefore,
        'the denied call never reached the server',
      );

      // The session goes on.
      t.match(text(await client.callTool({ name: 'lookup_order', arguments: { id: 'o-2' } })), /^lookup_order done/);
      const resources = await client.listResources();
      t.same(
        resources.resources.map((r) => r.uri),
        ['orders://o-1'],
      );
      const read = await client.readResource({ uri: 'orders://o-1' });
      t.equal((read.contents[0] as { text?: string }).text, '{"id":"o-1"}');
      const prompts = await client.listPrompts();
      t.same(
        prompts.prompts.map((p) => p.name),
        ['triage'],
      );
      const prompt = await client.getPrompt({ name: 'triage' });
      t.match(prompt.messages[0]?.content, { type: 'text', text: 'triage this' });

      // Notifications both ways, streamed in the tool call's SSE response.
      const logs: unknown[] = [];
      client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void logs.push(n.params.data));
      await client.setLoggingLevel('info');
      const progress: number[] = [];
      const counted = await client.callTool({ name: 'count', arguments: {} }, undefined, {
        onprogress: (p) => void progress.push(p.progress),
      });
      t.equal(text(counted), '3');
      t.same(progress, [1, 2, 3], 'progress notifications streamed before the result');
      t.same(logs, ['counted to 3'], 'the log notification arrived');

      const deny = await world.decision(
        (r) => r.input?.mcp?.tool?.name === 'delete_customer' && r.input?.mcp?.session_id === transport.sessionId,
      );
      t.ok(deny, 'the denial is in the decision log with the session id');
      t.equal(deny?.result?.allowed, false);
      t.equal(deny?.input?.mcp?.protocol_version, transport.protocolVersion, 'and the protocol version');
      if (route.mode === 'TLS interception') t.equal(deny?.input?.connect?.phase, 'request');
    });
  }

  t.test(
    'Mcp-Method / Mcp-Name that disagree with the body: HTTP 400, JSON-RPC error -32020 with the id',
    async (t) => {
      const post = proxiedFetch(t, world);
      const before = world.ts.headers.length;
      for (const url of ['http://mcp.internal/mcp', 'https://mcp.internal/mcp']) {
        const res = await post(url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
            'mcp-protocol-version': '2026-07-28',
            'mcp-method': 'tools/call',
            'mcp-name': 'lookup_order',
          },
          body: JSON.stringify({
            jsonrpc: '2.0',
            id: 'h-1',
            method: 'tools/call',
            params: { name: 'delete_customer', arguments: {} },
          }),
        });
        t.equal(res.status, 400, url);
        t.equal(res.headers.get('content-type'), 'application/json');
        const body = (await res.json()) as { jsonrpc: string; id: string; error: { code: number; message: string } };
        t.equal(body.jsonrpc, '2.0');
        t.equal(body.id, 'h-1', 'the error answers the request it refuses');
        t.equal(body.error.code, -32020);
        t.match(body.error.message, /Mcp-Name "lookup_order", body params.name "delete_customer"/);
      }
      t.equal(world.ts.headers.length, before, 'neither reached the server');
    },
  );

  t.test('batches (protocol revision 2025-03-26): a denied element denies the batch, one error per id', async (t) => {
    const client = await connectTsClient(t, world, 'http://mcp.internal/mcp');
    const sessionId = (client.transport as StreamableHTTPClientTransport).sessionId!;
    const post = proxiedFetch(t, world);
    const send = (batch: unknown[]) =>
      post('http://mcp.internal/mcp', {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-session-id': sessionId,
          'mcp-protocol-version': '2025-03-26',
        },
        body: JSON.stringify(batch),
      });
    const call = (id: number, name: string) => ({
      jsonrpc: '2.0',
      id,
      method: 'tools/call',
      params: { name, arguments: {} },
    });
    const before = world.ts.calls.length;
    const denied = await send([call(101, 'lookup_order'), call(102, 'delete_customer')]);
    t.equal(denied.status, 200);
    const errors = (await denied.json()) as Array<{ id: number; error: { code: number; message: string } }>;
    t.same(
      errors.map((e) => [e.id, e.error.code]),
      [
        [101, -32001],
        [102, -32001],
      ],
    );
    t.match(errors[1]!.error.message, /delete_customer in batch\[1\] is denied/);
    t.equal(world.ts.calls.length, before, 'no element of a denied batch ran');

    const allowed = await send([call(103, 'lookup_order'), { jsonrpc: '2.0', id: 104, method: 'tools/list' }]);
    t.equal(allowed.status, 200);
    const type = allowed.headers.get('content-type') ?? '';
    const body = await allowed.text();
    const answers = (type.startsWith('text/event-stream') ? sseMessages(body) : [JSON.parse(body)].flat()) as Array<{
      id: number;
      result?: unknown;
    }>;
    t.same(answers.map((a) => a.id).sort(), [103, 104], 'both answers stream back');
    t.equal(world.ts.calls.at(-1), 'lookup_order');
  });
});
