// MCP calls through Tollgate, as an SRE finds them in a real Jaeger: the MCP TypeScript SDK
// client carries W3C trace context in params._meta (the OTel MCP convention; no traceparent
// header), and each call is a span in that trace named `{mcp.method.name} {target}` with the
// MCP semantic-convention attributes beside Tollgate's decision attributes.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import type { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { getTrace, startJaeger, tag } from '../../helpers/jaeger.ts';
import { connectTsClient, DENIED_REASON, startMcpWorld } from './harness.ts';

const context = () => {
  const traceId = randomBytes(16).toString('hex');
  const parentId = randomBytes(8).toString('hex');
  return { traceId, parentId, traceparent: `00-${traceId}-${parentId}-01` };
};

t.test('MCP spans in Jaeger follow the OTel MCP conventions, parented by params._meta', async (t) => {
  const jaeger = await startJaeger(t);
  const service = 'tollgate-mcp-e2e';
  const world = await startMcpWorld(t, {
    tracing: { enabled: true, endpoint: `http://127.0.0.1:${jaeger.grpc}`, serviceName: service },
  });
  for (const url of ['http://mcp.internal:8080/mcp', 'https://mcp.internal/mcp']) {
    t.test(url, async (t) => {
      const client = await connectTsClient(t, world, url);
      const transport = client.transport as StreamableHTTPClientTransport;
      const allowed = context();
      const denied = context();
      await client.callTool({
        name: 'lookup_order',
        arguments: { id: 'o-1' },
        _meta: { traceparent: allowed.traceparent },
      });
      await t.rejects(
        client.callTool({ name: 'delete_customer', arguments: {}, _meta: { traceparent: denied.traceparent } }),
      );

      const ok = (await getTrace(jaeger.query, allowed.traceId, 1)).spans.find(
        (s) => s.operationName === 'tools/call lookup_order',
      );
      t.ok(ok, 'the call is a span named "tools/call lookup_order" in the trace _meta named');
      t.match(ok?.references, [{ refType: 'CHILD_OF', traceID: allowed.traceId, spanID: allowed.parentId }]);
      const tags = ok?.tags ?? [];
      t.equal(tag(tags, 'span.kind'), 'client');
      t.equal(tag(tags, 'mcp.method.name'), 'tools/call');
      t.equal(tag(tags, 'gen_ai.tool.name'), 'lookup_order');
      t.equal(tag(tags, 'gen_ai.operation.name'), 'execute_tool');
      t.match(String(tag(tags, 'jsonrpc.request.id')), /^\d+$/);
      t.equal(tag(tags, 'mcp.session.id'), transport.sessionId);
      t.equal(tag(tags, 'mcp.protocol.version'), transport.protocolVersion);
      t.equal(tag(tags, 'tollgate.decision.outcome'), 'allow');
      t.equal(tag(tags, 'http.request.method'), 'POST');

      const no = (await getTrace(jaeger.query, denied.traceId, 1)).spans.find(
        (s) => s.operationName === 'tools/call delete_customer',
      );
      t.ok(no, 'the denied call is in its own trace too');
      t.equal(tag(no?.tags ?? [], 'error'), true);
      t.equal(tag(no?.tags ?? [], 'tollgate.decision.outcome'), 'deny');
      t.equal(tag(no?.tags ?? [], 'otel.status_description'), DENIED_REASON);
      t.equal(tag(no?.tags ?? [], 'gen_ai.tool.name'), 'delete_customer');
    });
  }
});
