/**
 * The one-reading harness: real tool servers (MCP TypeScript SDK, MCP Go SDK, Go
 * encoding/json, Starlette + MCP Python SDK) behind a real Tollgate sidecar whose
 * decision log says what the policy saw. A request is sent as raw bytes; the verdict
 * compares what the policy read (the decision-log input) with what each tool read (its
 * echo, fetched directly from the tool), and whether a tool executed anything a rule
 * denies. Nothing here trusts Tollgate's own parsers: the tools are the judges.
 */
import { spawn, execFile } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildBundle, ROOT, startTollgate, tempDir, type TestLike, type Tollgate } from '../helpers/processes.ts';
import { setTimeout as delay } from 'node:timers/promises';

const run = promisify(execFile);

/** The test policy: allow everything except four rules, each named in the reasons. */
export const ONEREAD_POLICY = `package tollgate.authz

import rego.v1

default decision := {"allowed": true, "reasons": []}

decision := {"allowed": false, "http_status": 403, "reasons": sort(deny)} if count(deny) > 0

tool_calls contains input.mcp.tool if input.mcp.tool

tool_calls contains m.tool if {
	some m in input.mcp.batch
	m.tool
}

# Go's encoding/json fills a struct field from a member whose name matches it
# case-insensitively ("AMOUNT" fills Amount), so a rule guarding Go tools matches names
# that way; the gate refuses two names that fold together, so there is one such member.
amounts contains v if {
	is_object(input.parsed_body)
	some k, v in input.parsed_body
	lower(k) == "amount"
}

amounts contains v if {
	some c in tool_calls
	is_object(c.arguments)
	some k, v in c.arguments
	lower(k) == "amount"
}

deny contains "rule:tool delete_customer" if {
	some c in tool_calls
	c.name == "delete_customer"
}

deny contains "rule:amount over 500" if {
	some a in amounts
	is_number(a)
	a > 500
}

deny contains "rule:path /admin" if startswith(concat("/", array.concat([""], input.parsed_path)), "/admin")

host_only(h) := substring(h, 0, indexof(h, "]") + 1) if startswith(h, "[")

host_only(h) := split(h, ":")[0] if not startswith(h, "[")

hostname := lower(trim_suffix(host_only(input.attributes.request.http.host), "."))

deny contains "rule:host blocked.test" if hostname == "blocked.test"

deny contains "rule:host 127.0.0.9" if hostname == "127.0.0.9"

deny contains "rule:host 127.0.0.9" if object.get(object.get(input, "connect", {}), "host", "") == "127.0.0.9"

deny contains "rule:truncated body" if input.truncated_body

deny contains "rule:host blocked.test" if lower(object.get(object.get(input, "connect", {}), "host", "")) == "blocked.test"
`;

/**
 * A tool server family (routable), the copy of go-json on 127.0.0.9 (a destination the
 * policy denies), or go-decoder (go-json run with -decoder): a Go handler reading with
 * json.NewDecoder, reached only by the cases that name it (godec.test).
 */
export type ToolName = 'ts-mcp' | 'go-mcp' | 'go-json' | 'py' | 'ip-denied' | 'go-decoder';

/** The routable families, in the order suites iterate them. */
export const ROUTED_TOOLS: ReadonlyArray<Exclude<ToolName, 'ip-denied' | 'go-decoder'>> = [
  'ts-mcp',
  'go-mcp',
  'go-json',
  'py',
];

/** Every tool server whose counter a verdict watches. */
export const TOOL_NAMES: readonly ToolName[] = [...ROUTED_TOOLS, 'go-decoder', 'ip-denied'];

/** The host name go-decoder is reached by through the proxy. */
export const DECODER_HOST = 'godec.test';

/** The loopback address of the denied-destination tool (policy rule "host 127.0.0.9"). */
export const DENIED_IP = '127.0.0.9';

/** The host name each family is reached by through the proxy (proxy.resolve). */
export const TOOL_HOSTS: Readonly<Record<Exclude<ToolName, 'ip-denied' | 'go-decoder'>, string>> = {
  'ts-mcp': 'ts.test',
  'go-mcp': 'gomcp.test',
  'go-json': 'gojson.test',
  py: 'py.test',
};

/** One request as a tool read it. */
export interface ToolEcho {
  n: number;
  method: string;
  host: string | null;
  path: string | null;
  query: Record<string, string[]>;
  route: string;
  body?: unknown;
  bodyError?: string;
  typed?: Record<string, unknown>;
  calls: Array<{ name: string; arguments: unknown }>;
  status?: number;
}

/** A running tool server. */
export interface ToolServer {
  readonly name: ToolName;
  readonly port: number;
  /** Its request counter and the latest echoes, read directly (not through the proxy). */
  state(): Promise<{ count: number; echoes: ToolEcho[] }>;
}

let installed: Promise<void> | undefined;

/** Builds the Go tool servers and the Python venv once per process (idempotent script). */
export function ensureToolServers(): Promise<void> {
  installed ??= run('bash', [join(ROOT, 'scripts/install-tools.sh'), 'oneread', 'python'], {
    cwd: ROOT,
    maxBuffer: 1 << 24,
  }).then(
    () => undefined,
    (err: Error & { stderr?: string }) => {
      throw new Error(
        `could not install the one-reading tool servers (scripts/install-tools.sh oneread python): ${err.stderr ?? err.message}`,
      );
    },
  );
  return installed;
}

/**
 * JSON.parse keeping integers a double cannot hold exactly as {$int: "digits"}, so a
 * tool's exact reading of a big number is not rounded away on the test side.
 */
export function parseExact(text: string): unknown {
  return JSON.parse(text, function (this: unknown, _key: string, value: unknown, context?: { source?: string }) {
    if (
      typeof value === 'number' &&
      context?.source !== undefined &&
      /^-?\d+$/.test(context.source) &&
      !Number.isSafeInteger(value)
    ) {
      return { $int: context.source };
    }
    return value;
  } as (key: string, value: unknown) => unknown);
}

/** Starts one tool server process and waits for the port it prints. */
async function startTool(t: TestLike, name: ToolName): Promise<ToolServer> {
  const [cmd, args]: [string, string[]] =
    name === 'ts-mcp'
      ? [process.execPath, [join(ROOT, 'test/fixtures/oneread/ts-mcp-server.ts')]]
      : name === 'py'
        ? [join(ROOT, '.tools/venv/bin/python3'), [join(ROOT, 'test/fixtures/oneread/python/server.py')]]
        : name === 'ip-denied'
          ? [join(ROOT, '.tools/bin/oneread-go-json'), [`${DENIED_IP}:0`]]
          : name === 'go-decoder'
            ? [join(ROOT, '.tools/bin/oneread-go-json'), ['-decoder']]
            : [join(ROOT, `.tools/bin/oneread-${name}`), []];
  // stdin stays open as a lifeline: the servers exit when it closes, so a test killed at
  // its timeout leaves no tool server behind.
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (err = (err + c).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      out += c;
      const m = /^(\d+)\s/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    void exited.then(() => reject(new Error(`tool server ${name} exited before listening: ${err}`)));
  });
  t.teardown(async () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
  });
  return {
    name,
    port,
    async state() {
      let res: Response;
      try {
        res = await fetch(`http://${name === 'ip-denied' ? DENIED_IP : '127.0.0.1'}:${port}/__oneread`);
      } catch (cause) {
        throw new Error(`tool server ${name} does not answer (exit ${child.exitCode}): ${err}`, { cause });
      }
      // The Go MCP SDK hands its tools the arguments as raw JSON text: their integers are
      // exact. The Python server tags its exact integers itself; the TypeScript SDK and
      // Go's map[string]any hold doubles, which JSON.parse reproduces.
      const text = await res.text();
      return (name === 'go-mcp' ? parseExact(text) : JSON.parse(text)) as { count: number; echoes: ToolEcho[] };
    },
  };
}

/** Starts every tool server family. */
export async function startToolServers(t: TestLike): Promise<Record<ToolName, ToolServer>> {
  await ensureToolServers();
  const started = await Promise.all(TOOL_NAMES.map((n) => startTool(t, n)));
  return Object.fromEntries(started.map((s) => [s.name, s])) as Record<ToolName, ToolServer>;
}

/** A decision-log record, as far as the judge reads it. */
export interface DecisionRecord {
  decision_id: string;
  input: Record<string, any>;
  result: { allowed?: boolean; reasons?: string[] } & Record<string, unknown>;
}

/** The sidecar under test and its decision log. */
export interface Gate {
  readonly tollgate: Tollgate;
  readonly port: number;
  /** The decision record with this id, polled from the log until it appears (or undefined at the deadline). */
  decision(id: string, deadlineMs?: number): Promise<DecisionRecord | undefined>;
}

/** Starts Tollgate with the test policy, a decision log, and every test host resolved to its tool. */
export async function startGate(
  t: TestLike,
  tools: Record<ToolName, ToolServer>,
  extraConfig: Record<string, unknown> = {},
): Promise<Gate> {
  const bundle = await buildBundle({ 'oneread.rego': ONEREAD_POLICY }, ['tollgate/authz/decision'], 'oneread-1');
  const dir = await tempDir('tollgate-oneread-');
  const logFile = join(dir, 'decisions.jsonl');
  const resolve: Record<string, string> = {};
  for (const name of ROUTED_TOOLS) {
    for (const port of [80, 443, 8080]) resolve[`${TOOL_HOSTS[name]}:${port}`] = `127.0.0.1:${tools[name].port}`;
  }
  if (tools['go-decoder'] !== undefined) resolve[`${DECODER_HOST}:80`] = `127.0.0.1:${tools['go-decoder'].port}`;
  for (const port of [80, 443]) resolve[`blocked.test:${port}`] = `127.0.0.1:${tools['go-json'].port}`;
  const extraProxy = (extraConfig.proxy ?? {}) as Record<string, unknown>;
  const tollgate = await startTollgate(t, {
    ...extraConfig,
    agent: { id: 'oneread-agent', role: 'support' },
    pdp: { bundle },
    decisionLog: { file: logFile },
    proxy: { ...extraProxy, resolve: { ...resolve, ...((extraProxy.resolve as object) ?? {}) } },
  });
  const seen = new Map<string, DecisionRecord>();
  let offset = 0;
  const refresh = async (): Promise<void> => {
    let text: string;
    try {
      text = await readFile(logFile, 'utf8');
    } catch {
      return;
    }
    const end = text.lastIndexOf('\n') + 1;
    for (const line of text.slice(offset, end).split('\n')) {
      if (!line.includes('"decision_id"')) continue;
      const rec = JSON.parse(line) as DecisionRecord;
      seen.set(rec.decision_id, rec);
    }
    offset = end;
  };
  return {
    tollgate,
    port: tollgate.proxyPort,
    async decision(id, deadlineMs = 5000) {
      const deadline = Date.now() + deadlineMs;
      for (;;) {
        const hit = seen.get(id);
        if (hit) return hit;
        await refresh();
        if (seen.has(id)) return seen.get(id);
        if (Date.now() > deadline) return undefined;
        await delay(SETTLE_MS);
      }
    },
  };
}

/** What came back on the client's connection. */
export interface RawReply {
  /** Every byte received, latin1. */
  readonly text: string;
  /** Status codes of the responses seen, in order (a CONNECT's own reply included). */
  readonly statuses: number[];
  /** Every x-tollgate-decision-id header seen. */
  readonly decisionIds: string[];
  /** Every TG_ERR_* code seen. */
  readonly errorCodes: string[];
  /** True when the connection was closed by the proxy (not by our deadline). */
  readonly closed: boolean;
  /** True when the client gave up at its deadline without the responses it waited for. */
  readonly timedOut: boolean;
}

function summarise(text: string, closed: boolean, timedOut: boolean): RawReply {
  const statuses = [...text.matchAll(/HTTP\/1\.[01] (\d{3})/g)].map((m) => Number(m[1]));
  const decisionIds = [...text.matchAll(/x-tollgate-decision-id: ([0-9a-f-]{36})/gi)].map((m) => m[1]!);
  const errorCodes = [...new Set([...text.matchAll(/TG_ERR_[A-Z_]+/g)].map((m) => m[0]))];
  return { text, statuses, decisionIds, errorCodes, closed, timedOut };
}

/** True when `data` holds `expected` complete HTTP responses (by Content-Length or chunked end). */
function completeResponses(data: string, expected: number): boolean {
  let rest = data;
  for (let i = 0; i < expected; i++) {
    const head = rest.indexOf('\r\n\r\n');
    if (head === -1) return false;
    const headers = rest.slice(0, head);
    const bodyStart = head + 4;
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(headers)?.[1] ?? 0);
    if (status === 100) {
      rest = rest.slice(bodyStart);
      i--;
      continue;
    }
    const cl = /\r\ncontent-length: *(\d+)/i.exec(headers);
    if (cl) {
      const end = bodyStart + Number(cl[1]);
      if (rest.length < end) return false;
      rest = rest.slice(end);
    } else if (/\r\ntransfer-encoding: *chunked/i.test(headers)) {
      const end = rest.indexOf('\r\n0\r\n\r\n', bodyStart - 2);
      if (end === -1) return false;
      rest = rest.slice(end + 7);
    } else if (status === 204 || status === 304) {
      rest = rest.slice(bodyStart);
    } else {
      return false; // read until close
    }
  }
  return true;
}

/** Options of one raw exchange. */
export interface SendOptions {
  /** Bytes to send after a CONNECT tunnel was answered 200 (the request goes first otherwise). */
  readonly tunnel?: string;
  /** Responses to wait for before hanging up (default 1). */
  readonly responses?: number;
  /** Hang up after this long without a complete answer (default 2000 ms). */
  readonly timeoutMs?: number;
  /** Wait this long after the CONNECT is answered before writing `tunnel` (a silent start). */
  readonly tunnelDelayMs?: number;
}

/**
 * Sends raw bytes to the proxy over one connection and collects the answer: until the
 * proxy closes, `responses` complete responses arrived, or the deadline passes.
 * With `tunnel`, the bytes are a CONNECT request and `tunnel` is written once it is
 * answered 200.
 */
export function sendRaw(port: number, bytes: Buffer | string, options: SendOptions = {}): Promise<RawReply> {
  const timeoutMs = options.timeoutMs ?? 2000;
  const expected = options.responses ?? 1;
  return new Promise((resolve) => {
    const socket: Socket = connect(port, '127.0.0.1');
    let data = '';
    let tunnelled = options.tunnel === undefined;
    let offsetAfterConnect = 0;
    let done = false;
    const finish = (closed: boolean, timedOut = false): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(summarise(data, closed, timedOut));
    };
    const timer = setTimeout(() => finish(false, true), timeoutMs);
    socket.setNoDelay(true);
    socket.on('data', (c: Buffer) => {
      data += c.toString('latin1');
      if (!tunnelled) {
        const head = data.indexOf('\r\n\r\n');
        if (head === -1) return;
        if (!/^HTTP\/1\.[01] 2\d\d/.test(data)) return finish(false);
        tunnelled = true;
        offsetAfterConnect = head + 4;
        const write = (): void => {
          if (!done) socket.write(Buffer.from(options.tunnel!, 'latin1'));
        };
        if (options.tunnelDelayMs === undefined) write();
        else setTimeout(write, options.tunnelDelayMs);
        if (data.length === offsetAfterConnect) return;
      }
      if (completeResponses(data.slice(offsetAfterConnect), expected)) finish(false);
    });
    socket.on('close', () => finish(true));
    socket.on('error', () => finish(true));
    socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  });
}

/** A policy's view of one request, comparable with a tool's echo. */
export interface PolicyView {
  method: string;
  host: string;
  path: string;
  query: Record<string, string[]>;
  body: unknown;
  calls: Array<{ name: string; arguments: unknown }>;
  allowed: boolean;
}

/** Reads the policy's view out of a decision record. */
export function policyView(rec: DecisionRecord): PolicyView {
  const input = rec.input;
  const http = input.attributes?.request?.http ?? {};
  const mcp = input.mcp as
    | { tool?: { name: string; arguments: unknown }; batch?: Array<{ tool?: { name: string; arguments: unknown } }> }
    | undefined;
  const calls =
    mcp === undefined
      ? []
      : mcp.batch
        ? mcp.batch.filter((m) => m.tool).map((m) => m.tool!)
        : mcp.tool
          ? [mcp.tool]
          : [];
  const parsedPath = (input.parsed_path ?? []) as string[];
  return {
    method: http.method ?? '',
    host: http.host ?? '',
    path: `/${parsedPath.join('/')}`,
    query: (input.parsed_query ?? {}) as Record<string, string[]>,
    body: input.parsed_body ?? null,
    calls,
    allowed: rec.result?.allowed === true,
  };
}

/** Host comparison ignores case, a trailing dot and the default port. */
export function normHost(host: string | null | undefined): string {
  return (host ?? '').toLowerCase().replace(/:80$/, '').replace(/\.$/, '');
}

/** Deep equality where a tool's {$int: digits} equals the policy's number only when exactly that integer. */
export function sameReading(policy: unknown, tool: unknown): boolean {
  if (tool !== null && typeof tool === 'object' && !Array.isArray(tool)) {
    const t = tool as Record<string, unknown>;
    const keys = Object.keys(t);
    if (keys.length === 1 && keys[0] === '$int') {
      return typeof policy === 'number' && Number.isInteger(policy) && BigInt(policy) === BigInt(t.$int as string);
    }
    if (keys.length === 1 && (keys[0] === '$float' || keys[0] === '$repr')) return false;
    if (policy === null || typeof policy !== 'object' || Array.isArray(policy)) return false;
    const p = policy as Record<string, unknown>;
    const pk = Object.keys(p);
    if (pk.length !== keys.length) return false;
    return keys.every((k) => Object.hasOwn(p, k) && sameReading(p[k], t[k]));
  }
  if (Array.isArray(tool))
    return Array.isArray(policy) && policy.length === tool.length && tool.every((v, i) => sameReading(policy[i], v));
  return Object.is(policy, tool) || (typeof policy === 'number' && policy === tool);
}

/** The rules the test policy denies, applied to a tool's reading: what it must never execute. */
export function deniedInToolReading(echo: ToolEcho, tool?: ToolName): string[] {
  const out: string[] = [];
  if (tool === 'ip-denied') out.push(`destination ${DENIED_IP}`);
  const amountOver = (v: unknown): boolean =>
    (typeof v === 'number' && v > 500) ||
    (v !== null && typeof v === 'object' && '$int' in (v as object) && BigInt((v as { $int: string }).$int) > 500n) ||
    (v !== null && typeof v === 'object' && (v as { $float?: string }).$float === 'inf');
  for (const c of echo.calls) {
    if (c.name === 'delete_customer') out.push('tool delete_customer');
    if (
      c.arguments !== null &&
      typeof c.arguments === 'object' &&
      amountOver((c.arguments as Record<string, unknown>).amount)
    )
      out.push('amount over 500 (tool arguments)');
  }
  const body = echo.body as Record<string, unknown> | undefined;
  if (body !== null && typeof body === 'object' && !Array.isArray(body) && amountOver(body.amount))
    out.push('amount over 500 (body)');
  if (echo.typed && amountOver(echo.typed.amount)) out.push('amount over 500 (typed struct)');
  if (echo.route === 'admin') out.push('path /admin');
  if (normHost(echo.host).replace(/:\d+$/, '') === 'blocked.test') out.push('host blocked.test');
  return out;
}

/** A member name as Go's encoding/json compares it with a field name (simple case folding, incl. K and ſ). */
function goFold(name: string): string {
  return name
    .replace(/\u212A/g, 'k')
    .replace(/\u017F/g, 's')
    .toLowerCase();
}

/** Differences between the policy's reading and one tool echo (empty: one reading). */
export function readingDifferences(view: PolicyView, echo: ToolEcho): string[] {
  const diffs: string[] = [];
  if (view.method !== echo.method) diffs.push(`method: policy ${view.method} tool ${echo.method}`);
  if (normHost(view.host) !== normHost(echo.host))
    diffs.push(`host: policy ${JSON.stringify(view.host)} tool ${JSON.stringify(echo.host)}`);
  if (echo.route !== 'mcp' || echo.path !== '/mcp') {
    if (view.path !== echo.path)
      diffs.push(`path: policy ${JSON.stringify(view.path)} tool ${JSON.stringify(echo.path)}`);
  } else if (view.path !== '/mcp') diffs.push(`path: policy ${JSON.stringify(view.path)} tool routed /mcp`);
  if (!sameReading(view.query, echo.query))
    diffs.push(`query: policy ${JSON.stringify(view.query)} tool ${JSON.stringify(echo.query)}`);
  if (
    echo.body !== undefined &&
    echo.bodyError === undefined &&
    !(Array.isArray(echo.body) && echo.body.length === 0 && echo.route === 'mcp')
  ) {
    if (!sameReading(view.body, echo.body))
      diffs.push(`body: policy ${JSON.stringify(view.body)} tool ${JSON.stringify(echo.body)}`);
  }
  if (echo.typed) {
    // The struct reading takes the one member whose name folds to the field's (Go's
    // case-insensitive match); the policy saw that member under the name the agent spelled.
    const pb = (view.body ?? {}) as Record<string, unknown>;
    const folded = new Map(Object.entries(pb).map(([k, v]) => [goFold(k), v] as const));
    for (const [k, v] of Object.entries(echo.typed)) {
      const seen = folded.get(goFold(k));
      if (!sameReading(seen, v))
        diffs.push(`typed ${k}: policy ${JSON.stringify(seen)} tool struct ${JSON.stringify(v)}`);
    }
  }
  for (const call of echo.calls) {
    const match = view.calls.some((c) => c.name === call.name && sameReading(c.arguments ?? {}, call.arguments ?? {}));
    if (!match) diffs.push(`tool call: policy ${JSON.stringify(view.calls)} tool executed ${JSON.stringify(call)}`);
  }
  return diffs;
}

/** The verdict on one request. */
export interface Verdict {
  /**
   * refused: nothing reached a tool and no policy decision allowed it; denied: the policy
   * denied and nothing reached a tool; decided: every tool read what the policy read and
   * nothing denied ran; bypass: anything else.
   */
  kind: 'refused' | 'denied' | 'decided' | 'bypass';
  /** Why it is a bypass (empty otherwise). */
  problems: string[];
  reply: RawReply;
  /** Echoes of every tool request this exchange caused. */
  echoes: Array<{ tool: ToolName; echo: ToolEcho }>;
  /** Policy views, by decision id. */
  views: PolicyView[];
}

/** Interval between two reads of the tool counters while they settle (a polled condition, not a sleep). */
const SETTLE_MS = 20;

/** Waits until no tool counter has moved for `quietMs` (or 5 s passed). */
export async function quiet(tools: Record<ToolName, ToolServer>, quietMs: number): Promise<void> {
  let last = await counts(tools);
  let since = Date.now();
  const giveUp = Date.now() + 5000;
  while (Date.now() - since < quietMs && Date.now() < giveUp) {
    await delay(SETTLE_MS);
    const again = await counts(tools);
    if (!TOOL_NAMES.every((n) => again[n] === last[n])) since = Date.now();
    last = again;
  }
}

/** Counters of every tool. */
export async function counts(tools: Record<ToolName, ToolServer>): Promise<Record<ToolName, number>> {
  const states = await Promise.all(TOOL_NAMES.map((n) => tools[n].state()));
  return Object.fromEntries(TOOL_NAMES.map((n, i) => [n, states[i]!.count])) as Record<ToolName, number>;
}

/**
 * Sends one raw exchange through the gate and judges it by what reached the tools:
 * every tool request must pair with a decision whose reading equals the tool's, and no
 * tool may have executed something the policy denies.
 */
export async function judge(
  gate: Gate,
  tools: Record<ToolName, ToolServer>,
  bytes: Buffer | string,
  options: SendOptions = {},
): Promise<Verdict> {
  const before = await counts(tools);
  const reply = await sendRaw(gate.port, bytes, options);
  // A forwarded (or smuggled) request may still be on its way to a tool when the answer
  // came: re-read the counters until they stay put for a while — longer when the client
  // gave up waiting, since the proxy may still forward what it was holding.
  let after = await counts(tools);
  const quietMs = reply.timedOut ? 400 : SETTLE_MS;
  let quietSince = Date.now();
  const giveUp = Date.now() + 5000;
  while (Date.now() - quietSince < quietMs && Date.now() < giveUp) {
    await delay(SETTLE_MS);
    const again = await counts(tools);
    if (!TOOL_NAMES.every((n) => again[n] === after[n])) quietSince = Date.now();
    after = again;
  }
  const echoes: Array<{ tool: ToolName; echo: ToolEcho }> = [];
  for (const n of TOOL_NAMES) {
    const moved = after[n] - before[n];
    if (moved <= 0) continue;
    const state = await tools[n].state();
    for (const echo of state.echoes.filter((e) => e.n > before[n])) echoes.push({ tool: n, echo });
  }
  const views: PolicyView[] = [];
  const problems: string[] = [];
  // Only a policy deny (403, or MCP's JSON-RPC error -32001) has a record worth waiting for.
  const maybeDenied = echoes.length > 0 || reply.statuses.includes(403) || reply.text.includes('-32001');
  for (const id of maybeDenied ? reply.decisionIds : []) {
    // A refusal before any decision carries an id too, but no record: only a request
    // that reached a tool must have one (and gets the long deadline).
    const rec = await gate.decision(id, echoes.length > 0 ? 5000 : 300);
    if (rec !== undefined) views.push(policyView(rec));
    else if (echoes.length > 0) problems.push(`decision ${id} is not in the decision log`);
  }
  if (echoes.length === 0)
    return { kind: views.some((v) => !v.allowed) ? 'denied' : 'refused', problems, reply, echoes, views };
  const allowedViews = views.filter((v) => v.allowed);
  if (echoes.length > allowedViews.length) {
    problems.push(
      `${echoes.length} request(s) reached a tool but the client got ${allowedViews.length} allowing decision(s) (${reply.decisionIds.length} decision ids, ${views.length} in the log): undecided request(s) executed`,
    );
  }
  echoes.forEach(({ tool, echo }, i) => {
    // A tool that refused the request itself (its framework rejected the target) executed nothing.
    if (echo.route === 'rejected') return;
    const denied = deniedInToolReading(echo, tool);
    if (denied.length > 0) problems.push(`${tool} executed what a rule denies: ${denied.join(', ')}`);
    const view = allowedViews[i];
    if (view) for (const d of readingDifferences(view, echo)) problems.push(`${tool} read differently: ${d}`);
  });
  return { kind: problems.length > 0 ? 'bypass' : 'decided', problems, reply, echoes, views };
}
