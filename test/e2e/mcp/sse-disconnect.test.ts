/**
 * An agent that goes away in the middle of a streamed answer (an MCP client closing its
 * GET SSE stream) must not leave Tollgate's upstream call open: through the explicit proxy,
 * and inside a CONNECT tunnel with TLS interception over HTTP/2, where the agent's session
 * ending must close its streams. The upstream server's own view (its request closing) is
 * the assertion; an open one would also hang Tollgate's graceful shutdown.
 */
import t from 'tap';
import { once } from 'node:events';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import { fetch as undiciFetch, ProxyAgent } from 'undici';
import { startTollgate } from '../../helpers/processes.ts';
import { tollgateCa } from '../../tls/fixtures.ts';
import { startTlsFront } from './harness.ts';

t.test('a streamed answer the agent abandons closes the upstream request', async (t) => {
  const opened: IncomingMessage[] = [];
  const sse = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.flushHeaders();
    opened.push(req);
    sse.emit('streaming', req);
  });
  await new Promise<void>((resolve) => sse.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    sse.closeAllConnections();
    sse.close();
  });
  const port = (sse.address() as AddressInfo).port;
  const front = await startTlsFront(t, port);
  const ca = await tollgateCa();
  const tollgate = await startTollgate(t, {
    logLevel: 'warn',
    agent: { id: 'support-bot', role: 'support' },
    tls: { caCertFile: ca.certFile, caKeyFile: ca.keyFile, upstreamCaFiles: [front.caFile] },
    proxy: { resolve: { 'mcp.internal:443': `127.0.0.1:${front.port}`, 'mcp.internal:80': `127.0.0.1:${port}` } },
  });
  const caPem = await readFile(ca.certFile, 'utf8');

  for (const url of ['http://mcp.internal/sse', 'https://mcp.internal/sse']) {
    await t.test(url, { timeout: 30_000 }, async (t) => {
      const agent = new ProxyAgent({ uri: `http://127.0.0.1:${tollgate.proxyPort}`, requestTls: { ca: caPem } });
      const streaming = once(sse, 'streaming') as Promise<[IncomingMessage]>;
      const res = await undiciFetch(url, { dispatcher: agent });
      t.equal(res.status, 200, 'the stream was allowed and opened');
      const [upstreamRequest] = await streaming;
      // Tollgate aborting its call is an 'aborted' error on the server's request, then 'close'.
      upstreamRequest.on('error', () => {});
      const closed = new Promise((resolve) => upstreamRequest.once('close', resolve));
      await agent.destroy();
      await closed;
      t.ok(upstreamRequest.destroyed, 'the upstream request closed after the agent left');
    });
  }
  t.equal(opened.length, 2);
});
