// The copy-paste policy in README "Governing MCP" works as printed: built with the real opa
// CLI and run by Tollgate, it lets the MCP TypeScript SDK client call an allowed tool and
// read resources, denies a tool outside the role's list with the README's reason, and the
// session goes on.
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { buildBundle, ROOT } from '../../helpers/processes.ts';
import { connectTsClient, startMcpWorld } from './harness.ts';

/** The first ```rego block of the README's "Governing MCP" section. */
async function readmePolicy(): Promise<string> {
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Governing MCP'));
  const m = /```rego\n([\s\S]*?)```/.exec(section);
  if (m === null) throw new Error('no rego block in README "Governing MCP"');
  return m[1]!;
}

t.test('the README MCP policy allows listed tools and denies the rest with its reason', async (t) => {
  const bundle = await buildBundle({ 'mcp.rego': await readmePolicy() }, ['tollgate/authz/decision'], 'readme-mcp');
  const world = await startMcpWorld(t, { pdp: { bundle } });
  for (const url of ['http://mcp.internal/mcp', 'https://mcp.internal:8443/mcp']) {
    const client = await connectTsClient(t, world, url);
    t.ok((await client.listTools()).tools.length > 0, `${url}: tools/list is allowed`);
    const ok = await client.callTool({ name: 'lookup_order', arguments: { id: 'o-1' } });
    t.match(JSON.stringify(ok), /lookup_order done/);
    const denied = await client.callTool({ name: 'delete_customer', arguments: {} }).catch((err: unknown) => err);
    t.type(denied, McpError);
    t.match((denied as McpError).message, 'MCP tool delete_customer is not allowed for role support');
    t.equal((await client.readResource({ uri: 'orders://o-1' })).contents.length, 1, 'the session goes on');
  }
});
