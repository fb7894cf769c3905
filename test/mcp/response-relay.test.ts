// The response relay on the wire: a raw upstream sends crafted JSON and SSE answers
// (events split across chunks, CRLF line ends, comments, server notifications, priming
// events, compressed or oversized bodies) and the test reads the exact bytes and
// framing headers Tollgate relays. The sidecar runs in-process with the seed bundle.
import t from 'tap';
import { request as httpRequest, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import { setImmediate as tick } from 'node:timers/promises';
import pino from 'pino';
import { parseConfig } from '../../src/config/load.ts';
import { startSidecar } from '../../src/sidecar.ts';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startUpstream, tempDir, type TestLike } from '../helpers/processes.ts';
import { pollPause } from '../helpers/poll.ts';

const CALL = (id: number, name: string) =>
  JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: {} } });
const LIST = (id: number) => JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/list' });
const RESULT = (id: number, text: string) => ({ jsonrpc: '2.0', id, result: { content: [{ type: 'text', text }] } });
const KEY = 'sk_live_0123456789abcdefXYZ';

type Script = (res: ServerResponse) => Promise<void> | void;

async function setup(t: TestLike, mcp: Record<string, unknown> = {}) {
  let script: Script = (res) => void res.end();
  const log = join(await tempDir(), 'decisions.jsonl');
  /** The response-decision record following the request decision `id` (polled for). */
  const responseRecord = async (id: unknown): Promise<unknown> => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const text = await readFile(log, 'utf8').catch(() => '');
      const found = text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { path: string; input?: { response?: { request_decision_id?: string } } })
        .find((r) => r.path === 'tollgate/authz/response' && r.input?.response?.request_decision_id === id);
      if (found !== undefined || Date.now() > deadline) return found;
      await pollPause();
    }
  };
  const upstream = await startUpstream(t, (_req, res) => void script(res));
  const config = parseConfig({
    agent: { id: 'support-bot', role: 'support' },
    proxy: { listen: '127.0.0.1:0', resolve: { 'mcp.internal:80': `127.0.0.1:${upstream.port}` } },
    admin: { listen: '127.0.0.1:0' },
    decisionLog: { file: log },
    mcp: { response: { decisionPath: 'tollgate/authz/response', maxMessageBytes: 2048, ...mcp } },
  });
  const sidecar = await startSidecar(config, pino({ level: 'silent' }));
  t.teardown(() => sidecar.close());
  const send = (body: string): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> =>
    new Promise((resolve, reject) => {
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port: sidecar.addresses.proxy!.port,
          method: 'POST',
          path: 'http://mcp.internal/mcp',
          headers: {
            host: 'mcp.internal',
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
            'accept-encoding': 'gzip, br',
          },
          agent: false,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }),
          );
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  /** Sends a call and resolves with the first chunk of the answer's body, while the stream is still open. */
  const first = (body: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port: sidecar.addresses.proxy!.port,
          method: 'POST',
          path: 'http://mcp.internal/mcp',
          headers: { host: 'mcp.internal', 'content-type': 'application/json' },
          agent: false,
        },
        (res) => {
          res.once('data', (c: Buffer) => {
            resolve(c.toString());
            res.destroy();
          });
          res.on('error', () => undefined);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  return { send, first, upstream, responseRecord, use: (s: Script) => (script = s) };
}

/** Writes pieces with a turn of the event loop between them, so they leave as separate chunks. */
async function pieces(res: ServerResponse, parts: string[]): Promise<void> {
  for (const part of parts) {
    res.write(part);
    await tick();
  }
  res.end();
}

t.test('application/json', async (t) => {
  const { send, use, upstream, responseRecord } = await setup(t);

  // Tollgate reads the answer, so it asks the server for it uncompressed.
  t.test('the server is asked for an uncompressed answer', async (t) => {
    use((res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(RESULT(1, 'ok')));
    });
    await send(CALL(1, 'lookup_customer'));
    t.equal(upstream.received.at(-1)?.headers['accept-encoding'], 'identity');
  });

  t.test('an empty JSON answer passes as it is', async (t) => {
    use((res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '0' });
      res.end();
    });
    const r = await send(CALL(1, 'lookup_customer'));
    t.equal(r.status, 200);
    t.equal(r.body, '');
  });

  t.test('a redacted body gets the Content-Length of what is relayed', async (t) => {
    use((res) => {
      const body = JSON.stringify(RESULT(1, `key ${KEY}`));
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        'set-cookie': 'session=secret',
      });
      res.end(body);
    });
    const r = await send(CALL(1, 'lookup_customer'));
    t.equal(r.status, 200);
    t.same(JSON.parse(r.body), RESULT(1, 'key [REDACTED:api-key]'));
    t.equal(r.headers['content-length'], String(Buffer.byteLength(r.body)));
    t.equal(r.headers['transfer-encoding'], undefined);
    // The agent still gets the cookie; the policy input (and so the decision log) never holds it.
    t.same(r.headers['set-cookie'], ['session=secret']);
    const logged = (await responseRecord(r.headers['x-tollgate-decision-id'])) as {
      input: { response: { headers: Record<string, string> } };
    };
    t.equal(logged.input.response.headers['content-type'], 'application/json');
    t.notOk('set-cookie' in logged.input.response.headers);
  });

  t.test('a chunked body is relayed with a Content-Length', async (t) => {
    use((res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      void pieces(res, ['{"jsonrpc":"2.0","id":1,', `"result":{"content":[{"type":"text","text":"${KEY}"}]}}`]);
    });
    const r = await send(CALL(1, 'lookup_customer'));
    t.same(JSON.parse(r.body), RESULT(1, '[REDACTED:api-key]'));
    t.equal(r.headers['content-length'], String(Buffer.byteLength(r.body)));
  });

  t.test('a compressed answer cannot be inspected and is blocked', async (t) => {
    use((res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
      res.end(Buffer.from([0x1f, 0x8b, 0, 0]));
    });
    const r = await send(CALL(7, 'lookup_customer'));
    const body = JSON.parse(r.body);
    t.equal(body.id, 7);
    t.equal(body.error.code, -32001);
    t.match(body.error.message, /gzip-encoded, so its messages cannot be inspected/);
    t.equal(r.headers['content-encoding'], undefined);
  });

  t.test('a body that is not JSON is blocked', async (t) => {
    use((res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"jsonrpc": "2.0", ');
    });
    const r = await send(CALL(3, 'lookup_customer'));
    t.match(JSON.parse(r.body).error.message, /not valid UTF-8 JSON/);
  });

  t.test('a batch answer is decided message by message', async (t) => {
    use((res) => {
      const body = JSON.stringify([RESULT(1, KEY), RESULT(2, '-----BEGIN EC PRIVATE KEY-----')]);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(body);
    });
    const r = await send(`[${CALL(1, 'lookup_customer')},${CALL(2, 'lookup_customer')}]`);
    const [first, second] = JSON.parse(r.body);
    t.same(first, RESULT(1, '[REDACTED:api-key]'));
    t.equal(second.id, 2);
    t.match(second.error.message, /carries a private key/);
  });

  t.test('a 202 without a body passes untouched', async (t) => {
    use((res) => {
      res.writeHead(202);
      res.end();
    });
    const r = await send(CALL(1, 'lookup_customer'));
    t.equal(r.status, 202);
    t.equal(r.body, '');
  });
});

t.test('text/event-stream', async (t) => {
  const { send, first, use } = await setup(t);

  // Only one event is held: the first is relayed while the server has not finished the stream.
  t.test('each event is relayed as soon as it is decided, before the stream ends', async (t) => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    use(async (res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`event: message\ndata: ${JSON.stringify(RESULT(5, `first ${KEY}`))}\n\n`);
      await held;
      res.end();
    });
    const chunk = await first(CALL(5, 'lookup_customer'));
    release();
    t.match(chunk, /first \[REDACTED:api-key\]/);
  });

  t.test('events split across chunks, with CRLF line ends, are decided one by one', async (t) => {
    const notification = JSON.stringify({ jsonrpc: '2.0', method: 'notifications/progress', params: { progress: 1 } });
    const answer = JSON.stringify(RESULT(1, `key ${KEY}`));
    use((res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      void pieces(res, [
        'id: prime\r\ndata: \r\n\r\n',
        `: a comment\r\nevent: message\r\ndata: ${notification}\r\n\r`,
        '\n',
        `event: message\r\nid: 42\r\ndata: ${answer.slice(0, 30)}`,
        `${answer.slice(30)}\r\n\r\n`,
      ]);
    });
    const r = await send(CALL(1, 'lookup_customer'));
    t.equal(r.headers['content-length'], undefined);
    t.equal(r.headers['transfer-encoding'], 'chunked');
    // The priming event and the notification are relayed byte for byte; the answer is redacted.
    t.equal(
      r.body,
      `id: prime\r\ndata: \r\n\r\n: a comment\r\nevent: message\r\ndata: ${notification}\r\n\r\n` +
        `event: message\nid: 42\ndata: ${JSON.stringify(RESULT(1, 'key [REDACTED:api-key]'))}\n\n`,
    );
  });

  t.test('an oversized event ends the stream with a JSON-RPC error for the unanswered id', async (t) => {
    use((res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      void pieces(res, [`data: ${JSON.stringify(RESULT(9, 'y'.repeat(4000)))}`, '\n\n']);
    });
    const r = await send(CALL(9, 'lookup_customer'));
    const events = r.body.split('\n\n').filter(Boolean);
    t.equal(events.length, 1);
    const message = JSON.parse(events[0]!.replace(/^event: message\ndata: /, ''));
    t.equal(message.id, 9);
    t.match(message.error.message, /larger than mcp\.response\.maxMessageBytes \(2048 bytes\)/);
  });

  t.test('a tools/list event is filtered by the request rules', async (t) => {
    const tools = ['lookup_customer', 'delete_customer'].map((name) => ({ name, inputSchema: { type: 'object' } }));
    use((res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(`event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: 4, result: { tools } })}\n\n`);
    });
    const r = await send(LIST(4));
    const message = JSON.parse(r.body.replace(/^event: message\ndata: /, ''));
    t.same(
      message.result.tools.map((x: { name: string }) => x.name),
      ['lookup_customer'],
    );
  });
});

t.test('an SSE event whose data is not JSON ends the stream with a JSON-RPC error', async (t) => {
  const { send, use } = await setup(t);
  use((res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.end('event: message\ndata: not json at all\n\n');
  });
  const r = await send(CALL(11, 'lookup_customer'));
  const message = JSON.parse(r.body.replace(/^event: message\ndata: /, ''));
  t.equal(message.id, 11);
  t.match(message.error.message, /blocked by tollgate: an event carries data that is not JSON/);
});

t.test('onUninspectable "pass" relays the rest of an SSE stream untouched once an event is too large', async (t) => {
  const { send, use } = await setup(t, { onUninspectable: 'pass' });
  const big = `event: message\ndata: ${JSON.stringify(RESULT(1, `${KEY} ${'w'.repeat(4000)}`))}\n\n`;
  const after = `event: message\ndata: ${JSON.stringify(RESULT(2, KEY))}\n\n`;
  use((res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    void pieces(res, [big, after]);
  });
  const r = await send(`[${CALL(1, 'lookup_customer')},${CALL(2, 'lookup_customer')}]`);
  t.equal(r.body, big + after);
});

t.test('onUninspectable "pass" relays what cannot be inspected untouched', async (t) => {
  const { send, use } = await setup(t, { onUninspectable: 'pass' });
  const big = JSON.stringify(RESULT(1, `${KEY} ${'z'.repeat(4000)}`));
  use((res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(big) });
    res.end(big);
  });
  const r = await send(CALL(1, 'lookup_customer'));
  t.equal(r.body, big);
  t.equal(r.headers['content-length'], String(Buffer.byteLength(big)));
});
