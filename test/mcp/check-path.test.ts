// `tollgate check --path`: a response input decided by the response entrypoint of the seed bundle.
import t from 'tap';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CLI, tempDir } from '../helpers/processes.ts';

const run = promisify(execFile);

t.test('check --path decides a response input with the response entrypoint', async (t) => {
  const dir = await tempDir();
  const file = join(dir, 'input.json');
  await writeFile(
    file,
    JSON.stringify({
      agent: { id: 'support-bot', role: 'support' },
      mcp: { id: 1, method: 'tools/call', tool: { name: 'read_key', arguments: {} } },
      response: {
        method: 'tools/call',
        request: { id: 1, method: 'tools/call', tool: { name: 'read_key', arguments: {} } },
        message: {
          jsonrpc: '2.0',
          id: 1,
          result: { content: [{ type: 'text', text: '-----BEGIN PRIVATE KEY-----' }] },
        },
      },
    }),
  );
  const err = await run(process.execPath, [CLI, 'check', '--input', file, '--path', 'tollgate/authz/response']).then(
    () => undefined,
    (e: { code: number; stdout: string }) => e,
  );
  t.equal(err?.code, 2, 'a blocked answer exits 2 like a deny');
  const out = JSON.parse(err!.stdout);
  t.equal(out.path, 'tollgate/authz/response');
  t.same(out.reasons, ['the result of tool read_key carries a private key']);
});
