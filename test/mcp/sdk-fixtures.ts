/**
 * A real MCP tool server (official TypeScript SDK McpServer, Streamable HTTP, stateless)
 * on 127.0.0.1:0, and a real SDK client that reaches it through Tollgate as an explicit
 * proxy (undici ProxyAgent). /mcp answers application/json (enableJsonResponse), /mcp-sse
 * answers text/event-stream. Tool descriptions can be changed between two tools/list
 * calls (a rug pull).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ProxyAgent, fetch as undiciFetch } from 'undici';
import { z } from 'zod';
import type { TestLike } from '../helpers/processes.ts';

/** The tool server's mutable state. */
export interface ToolServer {
  readonly port: number;
  /** Descriptions by tool name; change one to rug-pull. */
  readonly descriptions: Record<string, string>;
  /** Tool calls that reached the server. */
  readonly calls: string[];
  /** Content-Type of each answer the server sent (application/json or text/event-stream). */
  readonly answered: string[];
}

/** What lookup_customer answers: an API key and a card number among plain text. */
export const LOOKUP_TEXT = 'customer c-1: Ada; api key sk_live_0123456789abcdefXYZ; card 4111 1111 1111 1111';

/** Starts the tool server. */
export async function startToolServer(t: TestLike, bigBytes = 8192): Promise<ToolServer> {
  const descriptions: Record<string, string> = {
    lookup_customer: 'Looks up a customer by id',
    delete_customer: 'Deletes a customer',
    read_key: 'Reads the signing key',
    big_report: 'Returns a long report',
  };
  const calls: string[] = [];
  const answered: string[] = [];
  const newServer = (): McpServer => {
    const server = new McpServer({ name: 'tollgate-test-tools', version: '1.0.0' });
    const text = (s: string) => ({ content: [{ type: 'text' as const, text: s }] });
    const input = { id: z.string().optional() };
    server.registerTool('lookup_customer', { description: descriptions.lookup_customer!, inputSchema: input }, () => {
      calls.push('lookup_customer');
      return text(LOOKUP_TEXT);
    });
    server.registerTool('delete_customer', { description: descriptions.delete_customer!, inputSchema: input }, () => {
      calls.push('delete_customer');
      return text('deleted');
    });
    server.registerTool('read_key', { description: descriptions.read_key!, inputSchema: input }, () => {
      calls.push('read_key');
      return text('-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----');
    });
    server.registerTool('big_report', { description: descriptions.big_report!, inputSchema: input }, () => {
      calls.push('big_report');
      return text('x'.repeat(bigBytes));
    });
    return server;
  };
  const http: Server = createServer((req, res) => {
    const json = (req.url ?? '').split('?')[0] === '/mcp';
    void (async () => {
      const server = newServer();
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: json });
      // The SDK passes its headers to writeHead: read them there.
      const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => typeof res;
      res.writeHead = ((...args: unknown[]) => {
        const headers = args.find((a) => typeof a === 'object' && a !== null) as Record<string, unknown> | undefined;
        const type = Object.entries(headers ?? {}).find(([k]) => k.toLowerCase() === 'content-type')?.[1];
        answered.push(String(type ?? res.getHeader('content-type') ?? ''));
        return writeHead(...args);
      }) as typeof res.writeHead;
      res.on('close', () => {
        void transport.close();
        void server.close();
      });
      await server.connect(transport);
      await transport.handleRequest(req, res);
    })().catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(err));
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        http.closeAllConnections();
        http.close(() => resolve());
      }),
  );
  return { port: (http.address() as AddressInfo).port, descriptions, calls, answered };
}

/** Connects an SDK client to `url` through the proxy on `proxyPort`. */
export async function connectClient(t: TestLike, proxyPort: number, url: string): Promise<Client> {
  const agent = new ProxyAgent(`http://127.0.0.1:${proxyPort}`);
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    fetch: (input, init) => undiciFetch(input as string, { ...(init as object), dispatcher: agent }) as never,
  });
  const client = new Client({ name: 'tollgate-test-agent', version: '1.0.0' });
  await client.connect(transport);
  t.teardown(async () => {
    await client.close();
    await agent.close();
  });
  return client;
}

/** The text of a tool result's first content item. */
export function firstText(result: unknown): string {
  const content = (result as { content?: Array<{ text?: string }> }).content ?? [];
  return content[0]?.text ?? '';
}
