/**
 * The MCP end-to-end harness: real MCP servers (official TypeScript and Go SDKs) behind
 * a real Tollgate sidecar (the seed policy, agent support-bot), reached by real MCP
 * clients through the explicit proxy (plain http://) or through CONNECT with TLS
 * interception (https://, Tollgate's CA trusted by the client). Host names:
 * mcp.internal:80 / :443 is the TypeScript server, mcp.internal:8080 / :8443 the Go one.
 */
import { spawn, execFile } from 'node:child_process';
import { connect, type AddressInfo } from 'node:net';
import { createServer as createTlsServer, createSecureContext } from 'node:tls';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fetch as undiciFetch, ProxyAgent } from 'undici';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { until } from '../../helpers/jaeger.ts';
import { ROOT, startTollgate, tempDir, type TestLike, type Tollgate } from '../../helpers/processes.ts';
import { generateCa, generateLeafKey, issueLeaf, loadCa } from '../../../src/tls/ca.ts';
import { tollgateCa } from '../../tls/fixtures.ts';
import { startTsMcpServer, type TsMcpServer } from '../../fixtures/mcp/ts-server.ts';

const run = promisify(execFile);

/** The reason the seed policy gives for delete_customer (agent role support). */
export const DENIED_REASON = 'MCP tool delete_customer is denied for role support';

/** A running Go SDK server. */
export interface GoMcpServer {
  readonly port: number;
  /** The tools it executed, read directly from it. */
  calls(): Promise<string[]>;
}

let built: Promise<void> | undefined;

/** Builds the Go MCP server once per process (scripts/install-tools.sh mcp, idempotent). */
function ensureGoServer(): Promise<void> {
  built ??= run('bash', [join(ROOT, 'scripts/install-tools.sh'), 'mcp'], { cwd: ROOT, maxBuffer: 1 << 24 }).then(
    () => undefined,
  );
  return built;
}

/** Starts the Go SDK server and waits for the port it prints. */
export async function startGoMcpServer(t: TestLike): Promise<GoMcpServer> {
  await ensureGoServer();
  // stdin stays open as a lifeline: the server exits when it closes.
  const child = spawn(join(ROOT, '.tools/bin/mcp-go-server'), [], { stdio: ['pipe', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (err = (err + c).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      out += c;
      const m = /^(\d+)\s/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    void exited.then(() => reject(new Error(`the Go MCP server exited before listening: ${err}`)));
  });
  t.teardown(async () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
  });
  return {
    port,
    async calls() {
      const res = await fetch(`http://127.0.0.1:${port}/__calls`);
      return ((await res.json()) as { calls: string[] }).calls;
    },
  };
}

/** A TLS front for a plain server (the upstream Tollgate talks to when it intercepts), with its own CA. */
export async function startTlsFront(t: TestLike, targetPort: number): Promise<{ port: number; caFile: string }> {
  const pair = generateCa({ commonName: 'mcp upstream CA' });
  const ca = loadCa(pair.certPem, pair.keyPem);
  const key = generateLeafKey();
  const dir = await tempDir('tollgate-mcp-upstream-');
  const caFile = join(dir, 'upstream-ca.crt');
  await writeFile(caFile, pair.certPem);
  const sockets = new Set<import('node:net').Socket>();
  const server = createTlsServer(
    {
      SNICallback: (name, cb) =>
        cb(null, createSecureContext({ cert: issueLeaf(ca, name, key.key).certPem, key: key.keyPem })),
    },
    (secure) => {
      const plain = connect(targetPort, '127.0.0.1');
      sockets.add(secure).add(plain);
      // A relay, not a half-close-aware proxy: when either side goes, both go.
      plain.on('close', () => {
        sockets.delete(plain);
        secure.destroy();
      });
      secure.on('close', () => {
        sockets.delete(secure);
        plain.destroy();
      });
      secure.on('error', () => plain.destroy());
      plain.on('error', () => secure.destroy());
      secure.pipe(plain).pipe(secure);
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(async () => {
    const closed = new Promise((resolve) => server.close(resolve));
    for (const socket of sockets) socket.destroy();
    await closed;
  });
  return { port: (server.address() as AddressInfo).port, caFile };
}

/** Everything an MCP test talks to. */
export interface McpWorld {
  readonly tollgate: Tollgate;
  readonly ts: TsMcpServer;
  readonly go: GoMcpServer;
  /** Tollgate's interception CA (PEM), which clients trust for https:// URLs. */
  readonly caPem: string;
  readonly caFile: string;
  readonly logFile: string;
  /** The first decision-log record matching, once it is in the file (records are written in batches). */
  decision(match: (record: Record<string, any>) => boolean): Promise<Record<string, any>>;
}

/** Starts both servers, their TLS fronts and Tollgate (seed policy, decision log, interception). */
export async function startMcpWorld(t: TestLike, extraConfig: Record<string, unknown> = {}): Promise<McpWorld> {
  const [ts, go, ca] = await Promise.all([startTsMcpServer(t), startGoMcpServer(t), tollgateCa()]);
  const [tsTls, goTls] = await Promise.all([startTlsFront(t, ts.port), startTlsFront(t, go.port)]);
  const dir = await tempDir('tollgate-mcp-');
  const logFile = join(dir, 'decisions.jsonl');
  const tollgate = await startTollgate(t, {
    agent: { id: 'support-bot', role: 'support' },
    decisionLog: { file: logFile },
    tls: { caCertFile: ca.certFile, caKeyFile: ca.keyFile, upstreamCaFiles: [tsTls.caFile, goTls.caFile] },
    ...extraConfig,
    proxy: {
      resolve: {
        'mcp.internal:80': `127.0.0.1:${ts.port}`,
        'mcp.internal:443': `127.0.0.1:${tsTls.port}`,
        'mcp.internal:8080': `127.0.0.1:${go.port}`,
        'mcp.internal:8443': `127.0.0.1:${goTls.port}`,
      },
      ...((extraConfig.proxy as object | undefined) ?? {}),
    },
  });
  return {
    tollgate,
    ts,
    go,
    caPem: await readFile(ca.certFile, 'utf8'),
    caFile: ca.certFile,
    logFile,
    decision(match) {
      return until('the decision-log record', async () =>
        (await readFile(logFile, 'utf8').catch(() => ''))
          .split('\n')
          .filter((l) => l.includes('"decision_id"'))
          .map((l) => JSON.parse(l) as Record<string, any>)
          .find(match),
      );
    },
  };
}

/** The four ways a test reaches a server: SDK × (explicit proxy | TLS interception). */
export const ROUTES = [
  { server: 'ts', mode: 'explicit proxy', url: 'http://mcp.internal/mcp' },
  { server: 'ts', mode: 'TLS interception', url: 'https://mcp.internal/mcp' },
  { server: 'go', mode: 'explicit proxy', url: 'http://mcp.internal:8080/mcp' },
  { server: 'go', mode: 'TLS interception', url: 'https://mcp.internal:8443/mcp' },
] as const;

/** A fetch that goes through Tollgate (undici ProxyAgent: absolute-form for http://, CONNECT for https://). */
export function proxiedFetch(t: TestLike, world: McpWorld): typeof fetch {
  const dispatcher = new ProxyAgent({
    uri: `http://127.0.0.1:${world.tollgate.proxyPort}`,
    requestTls: { ca: world.caPem },
  });
  t.teardown(() => dispatcher.destroy());
  return ((url: string | URL, init?: RequestInit) =>
    undiciFetch(url, { ...(init as object), dispatcher } as Parameters<typeof undiciFetch>[1])) as typeof fetch;
}

/** An MCP TypeScript SDK client connected through Tollgate. */
export async function connectTsClient(t: TestLike, world: McpWorld, url: string): Promise<Client> {
  const client = new Client({ name: 'e2e-agent', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(url), { fetch: proxiedFetch(t, world) });
  await client.connect(transport);
  // End the session as the SDK documents (DELETE): the server closes its GET stream. A
  // client that just vanishes inside an intercepted tunnel leaves that stream open
  // upstream until the server ends it (Tollgate writes nothing to notice the agent left).
  t.teardown(async () => {
    await transport.terminateSession().catch(() => undefined);
    await client.close();
  });
  return client;
}
