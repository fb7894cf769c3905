// MCP's JSON-RPC over WebSocket through Tollgate (the `ws` client and server, and undici's
// WebSocket through CONNECT with TLS interception): after an allowed upgrade every message
// the agent sends is decided like an HTTP request. A denied tools/call gets a JSON-RPC error
// frame and never reaches the server; the connection goes on. Fragmented messages are
// decided whole, control frames pass, binary and non-JSON-RPC text are decided by the
// policy, and frames no endpoint may send close the connection with RFC 6455's code.
import t from 'tap';
import { connect, type AddressInfo } from 'node:net';
import { createServer as createHttpServer } from 'node:http';
import { WebSocket as WsClient, WebSocketServer, type RawData } from 'ws';
import { ProxyAgent, WebSocket as UndiciWebSocket } from 'undici';
import { startTollgate, tempDir, type TestLike } from '../../helpers/processes.ts';
import { tollgateCa } from '../../tls/fixtures.ts';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startTlsFront, DENIED_REASON } from './harness.ts';
import { until } from '../../helpers/jaeger.ts';

interface WsMcpServer {
  readonly port: number;
  /** Every message the server received: text as a string, binary as `binary:<length>`. */
  readonly received: string[];
  /** Sends the second fragment of the message begun on "fragmented please" (undefined until it is begun). */
  finishFragment(): (() => void) | undefined;
}

let finishFragment: (() => void) | undefined;

/** A JSON-RPC responder on `ws`: answers each request with its method and tool name. */
async function startWsServer(t: TestLike): Promise<WsMcpServer> {
  const received: string[] = [];
  const http = createHttpServer();
  const wss = new WebSocketServer({ server: http });
  wss.on('connection', (socket) => {
    socket.on('message', (data: RawData, isBinary: boolean) => {
      if (isBinary) {
        received.push(`binary:${(data as Buffer).length}`);
        return;
      }
      const text = data.toString();
      received.push(text);
      if (text === 'fragmented please') {
        // A message in two fragments; the test sends the second when it chooses. Tollgate must
        // not write its own frames inside it.
        socket.send('first half, ', { fin: false }, () => {
          finishFragment = () => socket.send('second half', { fin: true });
        });
        return;
      }
      let message: unknown;
      try {
        message = JSON.parse(text);
      } catch {
        socket.send(`echo:${text}`);
        return;
      }
      const answer = (m: { id?: unknown; method?: string; params?: { name?: string } }) =>
        m.id === undefined
          ? undefined
          : { jsonrpc: '2.0', id: m.id, result: { method: m.method, tool: m.params?.name } };
      const out = Array.isArray(message) ? message.map(answer).filter(Boolean) : answer(message as never);
      if (out !== undefined) socket.send(JSON.stringify(out));
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  t.teardown(async () => {
    for (const c of wss.clients) c.terminate();
    await new Promise((r) => wss.close(r));
    http.closeAllConnections();
    await new Promise((r) => http.close(r));
  });
  return { port: (http.address() as AddressInfo).port, received, finishFragment: () => finishFragment };
}

const call = (id: number, name: string) =>
  JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: {} } });

/** A `ws` client through the proxy (Host-routed ws://, as the existing upgrade door serves it). */
async function open(t: TestLike, proxyPort: number): Promise<WsClient> {
  const ws = new WsClient('ws://mcp.internal/ws', {
    createConnection: () => connect(proxyPort, '127.0.0.1'),
    perMessageDeflate: true,
  });
  t.teardown(() => ws.terminate());
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return ws;
}

/** The next message the client receives, parsed. */
function next(ws: WsClient): Promise<any> {
  return new Promise((resolve, reject) => {
    ws.once('message', (data) => resolve(JSON.parse(data.toString())));
    ws.once('close', (code) => reject(new Error(`closed ${code}`)));
  });
}

/** The close code and reason the client gets. */
function closed(ws: WsClient): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

t.test('MCP over WebSocket through Tollgate', async (t) => {
  const server = await startWsServer(t);
  const front = await startTlsFront(t, server.port);
  const ca = await tollgateCa();
  const dir = await tempDir('tollgate-mcp-ws-');
  const logFile = join(dir, 'decisions.jsonl');
  const tg = await startTollgate(t, {
    agent: { id: 'support-bot', role: 'support' },
    decisionLog: { file: logFile },
    tls: { caCertFile: ca.certFile, caKeyFile: ca.keyFile, upstreamCaFiles: [front.caFile] },
    proxy: {
      maxRequestBytes: 4096,
      resolve: { 'mcp.internal:80': `127.0.0.1:${server.port}`, 'mcp.internal:443': `127.0.0.1:${front.port}` },
    },
  });

  // Records reach the file shortly after the decision (decisionLog.fileFlushMs): wait for the one wanted.
  const logged = (match: (record: any) => boolean) =>
    until('the decision-log record', async () =>
      (await readFile(logFile, 'utf8'))
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l))
        .find(match),
    );

  t.test('a denied tools/call is answered with a JSON-RPC error frame; the connection goes on', async (t) => {
    const ws = await open(t, tg.proxyPort);
    ws.send(call(1, 'lookup_order'));
    t.same(await next(ws), { jsonrpc: '2.0', id: 1, result: { method: 'tools/call', tool: 'lookup_order' } });
    const before = server.received.length;
    ws.send(call(2, 'delete_customer'));
    const denied = await next(ws);
    t.equal(denied.id, 2);
    t.equal(denied.error.code, -32001);
    t.match(denied.error.message, DENIED_REASON);
    t.match(denied.error.data, { reasons: [DENIED_REASON] });
    ws.send(call(3, 'lookup_order'));
    t.equal((await next(ws)).id, 3, 'a later allowed call works');
    t.equal(server.received.length, before + 1, 'only the allowed call reached the server');
    t.notOk(
      server.received.some((m) => m.includes('delete_customer')),
      'the denied call never did',
    );
    const record = await logged((r) => r.input?.mcp?.tool?.name === 'delete_customer');
    t.match(record?.input?.websocket, { opcode: 'text', message_index: 1 }, 'the decision log names the message');
    t.equal(record?.result?.allowed, false);
  });

  t.test('a batch with a denied element is answered with one error per id', async (t) => {
    const ws = await open(t, tg.proxyPort);
    ws.send(`[${call(10, 'lookup_order')},${call(11, 'delete_customer')}]`);
    const errors = await next(ws);
    t.same(
      errors.map((e: { id: number; error: { code: number } }) => [e.id, e.error.code]),
      [
        [10, -32001],
        [11, -32001],
      ],
    );
  });

  t.test('a fragmented message is decided whole, with a ping between its fragments', async (t) => {
    const ws = await open(t, tg.proxyPort);
    const text = call(20, 'delete_customer');
    const pong = new Promise((resolve) => ws.once('pong', resolve));
    ws.send(text.slice(0, 30), { fin: false });
    ws.ping('between');
    ws.send(text.slice(30), { fin: true });
    t.equal((await next(ws)).error.code, -32001, 'the split call is still denied');
    await pong;
    const allowed = call(21, 'lookup_order');
    ws.send(allowed.slice(0, 10), { fin: false });
    ws.send(allowed.slice(10, 40), { fin: false });
    ws.send(allowed.slice(40), { fin: true });
    t.equal((await next(ws)).id, 21);
    t.equal(server.received.at(-1), allowed, 'forwarded as the agent sent it');
  });

  t.test('a denial answered while the server is mid-way through a fragmented message waits for its end', async (t) => {
    const ws = await open(t, tg.proxyPort);
    const got: string[] = [];
    const both = new Promise<void>((resolve, reject) => {
      ws.on('message', (d) => {
        got.push(d.toString());
        if (got.length === 2) resolve();
      });
      ws.once('error', reject);
    });
    ws.send('fragmented please');
    const finish = await until('the first fragment is sent', async () => server.finishFragment());
    ws.send(call(40, 'delete_customer'));
    await until('the denial is decided', async () =>
      (await readFile(logFile, 'utf8')).includes('"id":40') ? true : undefined,
    );
    finish();
    await both;
    t.equal(got[0], 'first half, second half', 'the server message arrives whole');
    t.match(JSON.parse(got[1]!), { id: 40, error: { code: -32001 } }, 'then the JSON-RPC error');
  });

  t.test('binary and non-JSON-RPC text messages are decided and, when allowed, forwarded', async (t) => {
    const ws = await open(t, tg.proxyPort);
    ws.send(Buffer.alloc(300, 7));
    ws.send('hello');
    t.equal(await new Promise((resolve) => ws.once('message', (d) => resolve(d.toString()))), 'echo:hello');
    t.ok(server.received.includes('binary:300'), 'the binary message reached the server');
  });

  t.test('a JSON-RPC message read two ways is refused: the connection closes 1008 naming why', async (t) => {
    const ws = await open(t, tg.proxyPort);
    const gone = closed(ws);
    ws.send('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"lookup_order","name":"delete_customer"}}');
    const { code, reason } = await gone;
    t.equal(code, 1008);
    t.match(reason, /TG_ERR_AMBIGUOUS_BODY/);
    t.notOk(server.received.some((m) => m.includes('"name":"delete_customer"')));
  });

  t.test('a JSON-RPC message past proxy.maxRequestBytes is refused (1008, TG_ERR_BODY_TOO_LARGE)', async (t) => {
    const ws = await open(t, tg.proxyPort);
    const gone = closed(ws);
    ws.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { pad: 'x'.repeat(5000) } }));
    const { code, reason } = await gone;
    t.equal(code, 1008);
    t.match(reason, /TG_ERR_BODY_TOO_LARGE/);
  });

  t.test('frames no client may send close the connection with the RFC 6455 code', async (t) => {
    // An unmasked client frame (RFC 6455 §5.1): 1002.
    const a = await open(t, tg.proxyPort);
    const aGone = closed(a);
    (a as unknown as { _socket: import('node:net').Socket })._socket.write(Buffer.from([0x81, 0x02, 0x68, 0x69]));
    t.equal((await aGone).code, 1002);
    // A frame announcing 17 MiB: 1009 before any of it is buffered.
    const b = await open(t, tg.proxyPort);
    const bGone = closed(b);
    const header = Buffer.alloc(14);
    header[0] = 0x81;
    header[1] = 0x80 | 127;
    header.writeBigUInt64BE(17n * 1024n * 1024n, 2);
    (b as unknown as { _socket: import('node:net').Socket })._socket.write(header);
    t.equal((await bGone).code, 1009);
  });

  t.test('permessage-deflate is not negotiated: messages stay readable', async (t) => {
    const ws = await open(t, tg.proxyPort);
    t.equal(ws.extensions, '', 'the offered extension was not forwarded, so none was agreed');
  });

  t.test('wss:// inside CONNECT with TLS interception is decided message by message too', async (t) => {
    const dispatcher = new ProxyAgent({
      uri: `http://127.0.0.1:${tg.proxyPort}`,
      requestTls: { ca: await readFile(ca.certFile, 'utf8') },
    });
    t.teardown(() => dispatcher.destroy());
    const ws = new UndiciWebSocket('wss://mcp.internal/ws', { dispatcher });
    t.teardown(() => ws.close());
    const messages: any[] = [];
    const waiter: Array<() => void> = [];
    ws.addEventListener('message', (e) => {
      messages.push(JSON.parse(String(e.data)));
      waiter.shift()?.();
    });
    await new Promise((resolve, reject) => {
      ws.addEventListener('open', resolve);
      ws.addEventListener('error', reject);
    });
    const answer = () => new Promise<any>((resolve) => waiter.push(() => resolve(messages.at(-1))));
    ws.send(call(30, 'delete_customer'));
    const denied = await answer();
    t.equal(denied.error.code, -32001);
    t.match(denied.error.message, DENIED_REASON);
    ws.send(call(31, 'lookup_order'));
    t.same(await answer(), { jsonrpc: '2.0', id: 31, result: { method: 'tools/call', tool: 'lookup_order' } });
    const record = await logged((r) => r.input?.mcp?.id === 30);
    t.equal(record?.input?.connect?.phase, 'request', 'decided inside the intercepted tunnel');
    t.equal(record?.input?.websocket?.opcode, 'text');
  });
});
