// The official MCP Python SDK client (httpx) runs whole sessions through Tollgate, as an
// HTTP proxy for http:// and through CONNECT with TLS interception for https://, to the
// TypeScript and Go SDK servers. A denied call raises the SDK's McpError with the reason,
// never reaches the server, and the session goes on.
import t from 'tap';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from '../../helpers/processes.ts';
import { DENIED_REASON, ROUTES, startMcpWorld } from './harness.ts';

const run = promisify(execFile);
const PYTHON = join(ROOT, '.tools/venv/bin/python3');
const CLIENT = join(ROOT, 'test/fixtures/mcp/py-client.py');

t.test('MCP Python SDK client through Tollgate', async (t) => {
  const world = await startMcpWorld(t);
  for (const route of ROUTES) {
    t.test(`${route.server} SDK server, ${route.mode}: a whole session, a denied call in the middle`, async (t) => {
      const deletes = async (): Promise<number> =>
        (route.server === 'ts' ? world.ts.calls : await world.go.calls()).filter((c) => c === 'delete_customer').length;
      const before = await deletes();
      const { stdout } = await run(
        PYTHON,
        [CLIENT, route.url, `http://127.0.0.1:${world.tollgate.proxyPort}`, world.caFile],
        { timeout: 60_000 },
      );
      const seen = JSON.parse(stdout) as Record<string, any>;
      t.equal(seen.server, `e2e-${route.server}`);
      t.match(seen.protocol_version, /^\d{4}-\d{2}-\d{2}$/);
      t.ok(seen.session_id, 'a session id was issued');
      t.same(seen.tools, ['count', 'delete_customer', 'lookup_order']);
      t.match(seen.allowed, /^lookup_order done/);
      t.equal(seen.denied?.code, -32001, 'the denial is a JSON-RPC error the SDK raises');
      t.match(seen.denied?.message, DENIED_REASON);
      t.match(seen.denied?.data, { reasons: [DENIED_REASON] });
      t.equal(await deletes(), before, 'the denied call never reached the server');
      t.match(seen.after, /^lookup_order done/, 'the session goes on');
      t.same(seen.resources, ['orders://o-1']);
      t.equal(seen.resource, '{"id":"o-1"}');
      t.same(seen.prompts, ['triage']);
      t.equal(seen.prompt, 'triage this');
      t.equal(seen.count, '3');
      t.same(seen.progress, [1, 2, 3], 'progress notifications streamed before the result');
      t.same(seen.logs, ['counted to 3'], 'the log notification arrived');
      const deny = await world.decision(
        (r) => r.input?.mcp?.tool?.name === 'delete_customer' && r.input?.mcp?.session_id === seen.session_id,
      );
      t.equal(deny?.input?.mcp?.protocol_version, seen.protocol_version, 'the decision log has the revision spoken');
    });
  }
});
