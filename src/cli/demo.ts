/**
 * `tollgate run --demo`: the sidecar on its embedded defaults, plus a local demo
 * tool server standing in for the demo destinations of the default policy data,
 * and a few agent calls sent through the proxy so a first-time user sees it decide.
 * With the embedded bundle, response decisions are on: the demo MCP server's tools/list
 * is filtered and a tool result carrying an API key and a card number arrives redacted.
 */
import { randomBytes } from 'node:crypto';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Config } from '../config/schema.ts';
import { signAgentToken } from '../identity/hs256.ts';

/** The hybrid example's local layer (policies/hybrid/local), built next to its sources. */
const HYBRID_LOCAL_BUNDLE = fileURLToPath(new URL('../../policies/hybrid/local.tar.gz', import.meta.url));

/** Destinations of the default policy data that the demo tool server stands in for. */
const DEMO_HOSTS = ['payments.internal', 'hr.internal', 'orders.internal', 'loans.internal', 'mcp.internal'];

interface Sample {
  readonly what: string;
  readonly method: string;
  readonly url: string;
  readonly body?: unknown;
  /** Extra request headers (the billing agent's token). */
  readonly headers?: Record<string, string>;
}

const SAMPLES: Sample[] = [
  { what: 'support-bot reads a refund', method: 'GET', url: 'http://payments.internal/v1/refunds/r-1001' },
  {
    what: 'support-bot issues a $120 refund',
    method: 'POST',
    url: 'http://payments.internal/v1/refunds',
    body: { order: 'o-77', amount: 120 },
  },
  {
    what: 'support-bot issues a $300 refund (EU)',
    method: 'POST',
    url: 'http://payments.internal/v1/refunds',
    body: { order: 'o-79', amount: 300 },
  },
  {
    what: 'support-bot issues a $900 refund',
    method: 'POST',
    url: 'http://payments.internal/v1/refunds',
    body: { order: 'o-78', amount: 900 },
  },
  { what: 'support-bot reads HR records', method: 'GET', url: 'http://hr.internal/v1/employees' },
  {
    what: 'support-bot lists MCP tools',
    method: 'POST',
    url: 'http://mcp.internal/mcp',
    body: { jsonrpc: '2.0', id: 5, method: 'tools/list' },
  },
  {
    what: 'support-bot calls MCP tool lookup_customer',
    method: 'POST',
    url: 'http://mcp.internal/mcp',
    body: {
      jsonrpc: '2.0',
      id: 6,
      method: 'tools/call',
      params: { name: 'lookup_customer', arguments: { id: 'c-1' } },
    },
  },
  {
    what: 'support-bot calls MCP tool delete_customer',
    method: 'POST',
    url: 'http://mcp.internal/mcp',
    body: {
      jsonrpc: '2.0',
      id: 7,
      method: 'tools/call',
      params: { name: 'delete_customer', arguments: { id: 'c-1' } },
    },
  },
];

function call(proxy: AddressInfo, sample: Sample): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const payload = sample.body === undefined ? undefined : JSON.stringify(sample.body);
    const req = httpRequest(
      {
        host: proxy.address,
        port: proxy.port,
        method: sample.method,
        path: sample.url,
        headers: {
          host: new URL(sample.url).host,
          ...sample.headers,
          ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
        },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** The demo MCP server's tools (the seed policy hides the ones support may not call). */
const DEMO_TOOLS = ['lookup_customer', 'issue_refund', 'delete_customer', 'export_all_customers'];

/** A minimal MCP (JSON-RPC over Streamable HTTP, JSON answers) tool server for the demo. */
function mcpAnswer(body: string): unknown {
  let request: { id?: unknown; method?: unknown; params?: { name?: unknown } };
  try {
    request = JSON.parse(body) as typeof request;
  } catch {
    return { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'parse error' } };
  }
  if (request.method === 'tools/list') {
    const tools = DEMO_TOOLS.map((name) => ({ name, description: `demo ${name}`, inputSchema: { type: 'object' } }));
    return { jsonrpc: '2.0', id: request.id, result: { tools } };
  }
  const text =
    request.params?.name === 'lookup_customer'
      ? 'customer c-1: Ada Lovelace, api key sk_live_4eC39HqLyjWDarjtT1zdp7dc, card 4242 4242 4242 4242'
      : 'done';
  return { jsonrpc: '2.0', id: request.id, result: { content: [{ type: 'text', text }] } };
}

function summary(status: number, body: string): string {
  try {
    const doc = JSON.parse(body) as {
      reasons?: string[];
      error?: { message?: string };
      result?: { tools?: Array<{ name: string }>; content?: Array<{ text?: string }> };
    };
    if (doc.reasons) return `deny: ${doc.reasons.join('; ')}`;
    const mcpError = (doc as { error?: { data?: { reasons?: string[] } } }).error?.data?.reasons;
    if (mcpError) return `deny: ${mcpError.join('; ')}`;
    if (doc.error?.message) return `deny: ${doc.error.message}`;
    if (doc.result?.tools) {
      const shown = doc.result.tools.map((x) => x.name);
      const hidden = DEMO_TOOLS.filter((name) => !shown.includes(name));
      return `allow: tools shown ${shown.join(', ')}${hidden.length > 0 ? ` (hidden: ${hidden.join(', ')})` : ''}`;
    }
    if (doc.result?.content) return `allow: tool answered "${doc.result.content[0]?.text ?? ''}"`;
  } catch {
    // not JSON: fall through
  }
  return status < 400 ? `allow: tool answered ${body.slice(0, 60)}` : `HTTP ${status}`;
}

const refund = (amount: number, headers: Record<string, string>): Sample => ({
  what: `billing-bot issues a $${amount} refund`,
  method: 'POST',
  url: 'http://payments.internal/v1/refunds',
  body: { order: `o-${amount}`, amount },
  headers,
});

/** Budgets and approvals: a refund waits for a human, then the daily budget runs out. */
async function governance(
  show: (sample: Sample) => Promise<{ status: number; body: string }>,
  admin: AddressInfo,
  billing: Record<string, string>,
  token: string,
  print: (line: string) => void,
): Promise<void> {
  print('demo: billing-bot may refund $2,000 per rolling 24 h; refunds above $500 need finance-lead or cfo');
  const asked = await show(refund(900, billing));
  const id = (JSON.parse(asked.body) as { approval?: { id?: string } }).approval?.id;
  if (id !== undefined) {
    const res = await fetch(`http://${admin.address}:${admin.port}/v1/approvals/${id}/approve`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ approver: 'finance-lead', comment: 'demo: goodwill refund' }),
    });
    print(
      `  ${res.status}  ${`finance-lead approves ${id.slice(0, 8)}…`.padEnd(44)} ${res.ok ? 'approved (tollgate approvals approve ID --as NAME does the same)' : await res.text()}`,
    );
    await show({ ...refund(900, billing), what: 'billing-bot retries the $900 refund' });
  }
  for (const amount of [400, 400, 400, 99, 99, 99, 99]) await show(refund(amount, billing));
}

/** The demo: prepare() before the sidecar starts, run() once it listens. */
export const runDemo = {
  async prepare(config: Config, reparse: (doc: unknown) => Config) {
    const server: Server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const mcp = req.headers.host === 'mcp.internal' && req.url === '/mcp';
        const body = JSON.stringify(
          mcp
            ? mcpAnswer(Buffer.concat(chunks).toString('utf8'))
            : { tool: req.headers.host, method: req.method, path: req.url, ok: true },
        );
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const doc = structuredClone(config) as Record<string, any>;
    if (doc.agent.id === '')
      doc.agent = { ...doc.agent, id: 'support-bot', role: 'support', labels: { region: 'eu', ...doc.agent.labels } };
    // The governance part speaks as billing-bot (daily refund budget, approvals above $500):
    // a signed agent token per call, and an approvals token for the demo's approver.
    const tokenSecret = randomBytes(16).toString('hex');
    doc.agent.token ??= { header: 'x-tollgate-agent-token', secret: tokenSecret };
    const approvalsToken =
      doc.state.approvals.token === '' ? randomBytes(16).toString('hex') : doc.state.approvals.token;
    doc.state.approvals.token = approvalsToken;
    const billing = {
      [doc.agent.token.header]: signAgentToken({ sub: 'billing-bot', role: 'billing' }, doc.agent.token.secret),
    };
    // The hybrid example on the embedded policy: core rules central, the EU adaptation local.
    const hybrid = doc.pdp.type === 'wasm' && doc.pdp.bundle === '';
    if (hybrid) {
      doc.pdp = {
        type: 'chain',
        combine: 'deny-overrides',
        stages: [
          { name: 'central', type: 'wasm', bundle: '', timeoutMs: doc.pdp.timeoutMs },
          {
            name: 'local',
            type: 'wasm',
            bundle: HYBRID_LOCAL_BUNDLE,
            decisionPath: 'tollgate/local/decision',
            timeoutMs: doc.pdp.timeoutMs,
          },
        ],
      };
    }
    for (const host of DEMO_HOSTS) doc.proxy.resolve[`${host}:80`] ??= `127.0.0.1:${port}`;
    // The embedded bundle (the chain's central stage) has the response entrypoint: show
    // tools/list filtering and redaction.
    if (hybrid && doc.mcp.response.decisionPath === '') doc.mcp.response.decisionPath = 'tollgate/authz/response';
    return {
      config: reparse(doc),
      async run(proxy: AddressInfo, print: (line: string) => void, admin?: AddressInfo) {
        print(`demo: tool server on 127.0.0.1:${port} stands in for ${DEMO_HOSTS.join(', ')}; agent ${doc.agent.id}`);
        if (hybrid)
          print(
            'demo: layered policies: central core rules (policies/) + local EU adaptation (policies/hybrid/local), deny-overrides',
          );
        const show = async (sample: Sample): Promise<{ status: number; body: string }> => {
          const reply = await call(proxy, sample);
          print(`  ${reply.status}  ${sample.what.padEnd(44)} ${summary(reply.status, reply.body)}`);
          return reply;
        };
        for (const sample of SAMPLES) await show(sample);
        if (admin !== undefined) await governance(show, admin, billing, approvalsToken, print);
        print(
          `try: curl -x http://${proxy.address}:${proxy.port} -H 'content-type: application/json' -d '{"amount": 501}' http://payments.internal/v1/refunds`,
        );
        print('stop with Ctrl-C');
      },
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
  },
};
