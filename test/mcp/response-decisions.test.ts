// Response decisions end to end: a real MCP SDK client talks through a real Tollgate
// process (seed policy, response entrypoint on) to a real SDK tool server, in JSON and
// SSE response modes; the test asserts what the client actually receives.
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { CLI, ROOT, startTollgate, tempDir } from '../helpers/processes.ts';
import { pollPause } from '../helpers/poll.ts';
import { connectClient, firstText, startToolServer } from './sdk-fixtures.ts';

const SUPPORT = { id: 'support-bot', role: 'support' };
const run = promisify(execFile);

async function rejection(promise: Promise<unknown>): Promise<McpError> {
  try {
    await promise;
  } catch (err) {
    return err as McpError;
  }
  throw new Error('expected the call to fail');
}

async function records(
  file: string,
  match: (r: Record<string, unknown>) => boolean,
): Promise<Record<string, unknown>[]> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const text = await readFile(file, 'utf8').catch(() => '');
    const found = text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter(match);
    if (found.length > 0 || Date.now() > deadline) return found;
    await pollPause();
  }
}

t.test('response decisions with the seed policy', async (t) => {
  const tools = await startToolServer(t);
  const dir = await tempDir();
  const log = join(dir, 'decisions.jsonl');
  const tg = await startTollgate(t, {
    agent: SUPPORT,
    proxy: { resolve: { 'mcp.internal:80': `127.0.0.1:${tools.port}` } },
    mcp: { response: { decisionPath: 'tollgate/authz/response', maxMessageBytes: 4096 } },
    decisionLog: { file: log },
  });

  for (const mode of ['json', 'sse'] as const) {
    t.test(`${mode} answers`, async (t) => {
      const client = await connectClient(t, tg.proxyPort, `http://mcp.internal/${mode === 'json' ? 'mcp' : 'mcp-sse'}`);

      t.test('tools/list shows only the tools the role may call', async (t) => {
        const listed = await client.listTools();
        const names = listed.tools.map((tool) => tool.name).sort();
        t.same(names, ['big_report', 'lookup_customer', 'read_key']);
      });

      t.test('a tool result carrying an API key and a card number arrives redacted', async (t) => {
        const result = await client.callTool({ name: 'lookup_customer', arguments: { id: 'c-1' } });
        t.equal(firstText(result), 'customer c-1: Ada; api key [REDACTED:api-key]; card [REDACTED:card-number]');
        // The server really answered in this mode.
        t.match(tools.answered.at(-1), mode === 'json' ? /^application\/json/ : /^text\/event-stream/);
      });

      t.test('a tool result carrying a private key arrives as a JSON-RPC error with the reason', async (t) => {
        const before = tools.calls.length;
        const err = await rejection(client.callTool({ name: 'read_key', arguments: {} }));
        t.ok(err instanceof McpError);
        t.equal(err.code, -32001);
        t.match(err.message, /blocked by policy: the result of tool read_key carries a private key/);
        t.match((err.data as { decision_id: string }).decision_id, /^[0-9a-f-]{36}$/);
        // The tool ran; what it answered never reached the agent.
        t.equal(tools.calls.length, before + 1);
      });

      t.test('an answer past the buffer limit is blocked, failing closed', async (t) => {
        const err = await rejection(client.callTool({ name: 'big_report', arguments: {} }));
        t.equal(err.code, -32001);
        t.match(err.message, /larger than mcp\.response\.maxMessageBytes \(4096 bytes\)/);
      });

      t.test('the session goes on after a blocked answer', async (t) => {
        const result = await client.callTool({ name: 'lookup_customer', arguments: { id: 'c-2' } });
        t.match(firstText(result), /\[REDACTED:api-key\]/);
      });
    });
  }

  t.test('each response decision is logged with its own id, linked to the request decision', async (t) => {
    const found = await records(
      log,
      (r) => r.path === 'tollgate/authz/response' && JSON.stringify(r.result ?? '').includes('private key'),
    );
    t.ok(found.length >= 1);
    const record = found[0]!;
    const input = record.input as { response: { request_decision_id: string; method: string } };
    t.equal(input.response.method, 'tools/call');
    t.not(record.decision_id, input.response.request_decision_id);
    const request = await records(log, (r) => r.decision_id === input.response.request_decision_id);
    t.equal(request.length, 1);
    t.equal(request[0]!.path, 'tollgate/authz/decision');
  });

  // Replay re-decides each record against its own entrypoint: response records do not flip.
  t.test('a decision log with response decisions replays without flips', async (t) => {
    const { stdout } = await run(process.execPath, [
      CLI,
      'replay',
      '--log',
      log,
      '--bundle',
      join(ROOT, 'policies/dist/bundle.tar.gz'),
    ]);
    t.match(stdout, /allow→deny 0\s+deny→allow 0\s+candidate errors 0/);
  });

  t.test('response outcomes are counted', async (t) => {
    const metrics = await (await fetch(`http://127.0.0.1:${tg.adminPort}/metrics`)).text();
    t.match(metrics, /tollgate_mcp_response_decisions_total\{outcome="redact"\} [1-9]/);
    t.match(metrics, /tollgate_mcp_response_decisions_total\{outcome="block"\} [1-9]/);
    t.match(metrics, /tollgate_mcp_response_decisions_total\{outcome="filter"\} [1-9]/);
    t.match(metrics, /tollgate_mcp_response_decisions_total\{outcome="uninspectable_blocked"\} [1-9]/);
  });
});

t.test('with response decisions off, answers are relayed untouched', async (t) => {
  const tools = await startToolServer(t);
  const tg = await startTollgate(t, {
    agent: SUPPORT,
    proxy: { resolve: { 'mcp.internal:80': `127.0.0.1:${tools.port}` } },
  });
  const client = await connectClient(t, tg.proxyPort, 'http://mcp.internal/mcp-sse');
  t.equal((await client.listTools()).tools.length, 4);
  t.match(firstText(await client.callTool({ name: 'lookup_customer', arguments: {} })), /sk_live_0123456789abcdefXYZ/);
});
