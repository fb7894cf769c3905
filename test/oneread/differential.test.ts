// Differential property-based suite: generated and mutated requests go through a real
// sidecar (explicit proxy, and plain HTTP inside CONNECT tunnels) to tool servers built
// on the MCP TypeScript and Go SDKs, Go encoding/json and Starlette/the MCP Python SDK.
// For every forwarded request the policy's reading (decision log) must equal the tool's
// reading (its echo) and nothing a rule denies may run; every refused request gets a
// 4xx with a TG_ERR_* code and moves no tool counter. Seeded: ONEREAD_SEED=<n> replays.
import t from 'tap';
import fc from 'fast-check';
import { DENIED_IP, judge, ROUTED_TOOLS, startGate, startToolServers, TOOL_HOSTS, type Verdict } from './harness.ts';

t.setTimeout(300_000);

const SEED = Number(process.env.ONEREAD_SEED ?? Date.now() % 2 ** 31);
/** Runs per property and tool family: bounded so the file stays around a minute on 2 cores. */
const RUNS = Number(process.env.ONEREAD_RUNS ?? 40);

type Routed = (typeof ROUTED_TOOLS)[number];

/** How a request enters the sidecar: explicit proxy (absolute-form) or plain HTTP inside a CONNECT tunnel. */
type Door = 'proxy' | 'tunnel';

/** The value type an arbitrary generates. */
type Generated<A> = A extends fc.Arbitrary<infer R> ? R : never;

/** A verdict's failure, or undefined when it keeps the one-reading rule. */
function violation(v: Verdict): string | undefined {
  if (v.kind === 'bypass') return v.problems.join('; ');
  if (v.kind === 'refused') {
    const refusedWithCode = v.reply.statuses.some((s) => s >= 400 && s < 500) && v.reply.errorCodes.length > 0;
    const closedWithoutAnswer = v.reply.closed && v.reply.statuses.every((s) => s === 200);
    if (!refusedWithCode && !closedWithoutAnswer)
      return `refused without a 4xx TG_ERR_* answer (statuses ${v.reply.statuses.join(',') || 'none'})`;
  }
  return undefined;
}

function headerLines(headers: Array<[string, string]>): string {
  return headers.map(([k, v]) => `${k}: ${v}\r\n`).join('');
}

/** Raw request bytes (latin1 text) for a method/target/headers/body through the explicit proxy, or inside a tunnel. */
function request(
  door: 'proxy' | 'tunnel',
  host: string,
  method: string,
  path: string,
  headers: Array<[string, string]>,
  body?: Buffer,
): { bytes: string; tunnel?: string } {
  const target = door === 'proxy' ? `http://${host}${path}` : path;
  const framing: Array<[string, string]> = body === undefined ? [] : [['Content-Length', String(body.length)]];
  const text = `${method} ${target} HTTP/1.1\r\nHost: ${host}\r\n${headerLines([...headers, ...framing])}\r\n${body?.toString('latin1') ?? ''}`;
  return door === 'proxy'
    ? { bytes: text }
    : { bytes: `CONNECT ${host}:80 HTTP/1.1\r\nHost: ${host}:80\r\n\r\n`, tunnel: text };
}

// ── generated JSON-RPC calls and their mutations ────────────────────────────────────
const toolName = fc.constantFrom('lookup_order', 'delete_customer', 'refund');
const args = fc.dictionary(
  fc.constantFrom('id', 'amount', 'note', 'items', 'Amount', 'ID'),
  fc.jsonValue({ maxDepth: 2 }),
  { maxKeys: 4 },
);
const contentType = fc.constantFrom<string | null>(
  'application/json',
  'application/json',
  null,
  'Application/JSON',
  'text/plain',
  'application/json; charset=utf-8',
  'application/json; charset=utf-16',
  'application/vnd.example+json',
);
const keyMutation = fc.constantFrom(
  'none',
  'none',
  'dup-name-before',
  'dup-name-after',
  'case-Name',
  'long-s-params',
  'dup-amount',
);
const numberMutation = fc.constantFrom('none', 'none', 'big-int', 'past-precision', 'exponent', 'huge');
const byteMutation = fc.constantFrom(
  'none',
  'none',
  'none',
  'bom',
  'lone-surrogate',
  'invalid-utf8',
  'overlong',
  'utf16le',
  'pad',
);
const batchShape = fc.constantFrom('single', 'single', 'batch-with-lookup', 'batch-with-malformed');

const NUMBER_LITERALS: Record<string, string> = {
  'big-int': '12345678901234567890',
  'past-precision': '500.0000000000000001',
  exponent: '9e2',
  huge: '1e400',
};

/** One generated tools/call as JSON text with textual mutations (duplicates and case need text, not objects). */
function rpcText(name: string, a: Record<string, unknown>, keys: string, numbers: string, id: number): string {
  let text = JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: a } });
  const other = name === 'delete_customer' ? 'lookup_order' : 'delete_customer';
  if (numbers !== 'none')
    text = text.replace('"arguments":{', `"arguments":{"amount":${NUMBER_LITERALS[numbers]},`).replace(',}', '}');
  if (keys === 'dup-name-before') text = text.replace('"params":{', `"params":{"name":"${other}",`);
  if (keys === 'dup-name-after') text = text.replace(/}}$/, `,"name":"${other}"}}`);
  if (keys === 'case-Name') text = text.replace('"params":{', `"params":{"Name":"${other}",`);
  if (keys === 'long-s-params') text = text.replace(/}$/, `,"para\u017fms":{"name":"${other}","arguments":{}}}`);
  if (keys === 'dup-amount')
    text = text
      .replace('"arguments":{', '"arguments":{"amount":900,')
      .replace(/}}}$/, ',"amount":1}}}')
      .replace('{,', '{');
  return text;
}

/** The UTF-8 text with an extra string member holding raw (invalid) bytes. */
function withRawBytes(text: string, bytes: Buffer): Buffer {
  const [head, tail] = text.split('"tools/call"') as [string, string];
  return Buffer.concat([Buffer.from(`${head}"tools/call","x":"`, 'utf8'), bytes, Buffer.from(`"${tail}`, 'utf8')]);
}

function encode(text: string, mutation: string): Buffer {
  switch (mutation) {
    case 'bom':
      return Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text, 'utf8')]);
    case 'lone-surrogate':
      return Buffer.from(text.replace('"tools/call"', '"tools/call","x":"\\ud800"'), 'utf8');
    case 'invalid-utf8':
      return withRawBytes(text, Buffer.from([0xff]));
    case 'overlong':
      return withRawBytes(text, Buffer.from([0xc0, 0xae]));
    case 'utf16le':
      return Buffer.from(text, 'utf16le');
    case 'pad':
      return Buffer.from(`\r\n \t${text}\n `, 'utf8');
    default:
      return Buffer.from(text, 'utf8');
  }
}

const mcpCase = fc.record({
  tool: fc.constantFrom<Routed>(...ROUTED_TOOLS),
  name: toolName,
  args,
  contentType,
  keys: keyMutation,
  numbers: numberMutation,
  bytes: byteMutation,
  batch: batchShape,
});

function mcpRequest(c: Generated<typeof mcpCase>, door: Door): { bytes: string; tunnel?: string } {
  let text = rpcText(c.name, c.args as Record<string, unknown>, c.keys, c.numbers, 1);
  if (c.batch === 'batch-with-lookup')
    text = `[${JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'lookup_order', arguments: {} } })},${text}]`;
  if (c.batch === 'batch-with-malformed')
    text = `[${text.replace('"jsonrpc":"2.0",', '')},${JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/list' })}]`;
  const headers: Array<[string, string]> = [['Accept', 'application/json, text/event-stream']];
  if (c.contentType !== null) headers.push(['Content-Type', c.contentType]);
  return request(door, TOOL_HOSTS[c.tool], 'POST', '/mcp', headers, encode(text, c.bytes));
}

// ── REST bodies for the decoders that ignore the media type ─────────────────────────
const amountLiteral = fc.oneof(
  fc.integer({ min: -1000, max: 2000 }).map(String),
  fc.double({ min: -1e6, max: 1e6, noNaN: true }).map((d) => JSON.stringify(d)),
  fc.constantFrom(
    '1e400',
    '-1e400',
    '1e-400',
    '12345678901234567890',
    '500.0000000000000001',
    '9e2',
    '-0',
    '900.0',
    '"900"',
    'NaN',
    'Infinity',
  ),
);
const restCase = fc.record({
  tool: fc.constantFrom<Routed>('go-json', 'py'),
  amountKey: fc.constantFrom('amount', 'amount', 'Amount', 'AMOUNT', 'amount'),
  amount: amountLiteral,
  shadow: fc.option(fc.tuple(fc.constantFrom('amount', 'Amount', 'aMOUNT'), amountLiteral), { nil: undefined }),
  kind: fc.constantFrom(
    '"kind":"refund"',
    '"kind":"refund","\u212Aind":"chargeback"',
    '"kind":"refund","kind":"chargeback"',
    '',
  ),
  contentType,
});

function restRequest(c: Generated<typeof restCase>, door: Door): { bytes: string; tunnel?: string } {
  const members = [
    `"${c.amountKey}":${c.amount}`,
    ...(c.shadow ? [`"${c.shadow[0]}":${c.shadow[1]}`] : []),
    ...(c.kind ? [c.kind] : []),
  ];
  const headers: Array<[string, string]> = c.contentType === null ? [] : [['Content-Type', c.contentType]];
  return request(door, TOOL_HOSTS[c.tool], 'POST', '/refund', headers, Buffer.from(`{${members.join(',')}}`, 'utf8'));
}

// ── paths and queries ──────────────────────────────────────────────────────────────
const segment = fc.constantFrom(
  'admin',
  'ADMIN',
  '%61dmin',
  '%2561dmin',
  '.',
  '..',
  '..;',
  ';x=1',
  'admin;x',
  '%2e',
  '%2e%2e',
  '%2E.',
  '%252e%252e',
  '%2f',
  '%2F..',
  '%c0%ae%c0%ae',
  '%c0%af',
  '%ef%bc%8e%ef%bc%8e',
  '%ef%bc%8f',
  '%5c',
  '..%5c',
  '%00',
  '%ff',
  'a',
  'b%20c',
  'ok',
  '',
);
const pathCase = fc.record({
  tool: fc.constantFrom<Routed>('ts-mcp', 'go-json', 'py'),
  segments: fc.array(segment, { minLength: 1, maxLength: 4 }),
  query: fc.option(
    fc.array(fc.tuple(fc.constantFrom('a', 'A', '%61', 'a;b'), fc.constantFrom('1', '%ff', 'x+y', '%2B', '')), {
      maxLength: 3,
    }),
    { nil: undefined },
  ),
});

function pathRequest(c: Generated<typeof pathCase>, door: Door): { bytes: string; tunnel?: string } {
  const q = c.query === undefined ? '' : `?${c.query.map(([k, v]) => `${k}=${v}`).join('&')}`;
  return request(door, TOOL_HOSTS[c.tool], 'GET', `/${c.segments.join('/')}${q}`, []);
}

// ── hosts: spellings of the denied 127.0.0.9 ───────────────────────────────────────
const ipSpelling = fc.constantFrom(
  (n: number[]) => n.join('.'),
  (n: number[]) => String(((n[0]! << 24) >>> 0) + (n[1]! << 16) + (n[2]! << 8) + n[3]!),
  (n: number[]) => `0x${(((n[0]! << 24) >>> 0) + (n[1]! << 16) + (n[2]! << 8) + n[3]!).toString(16)}`,
  (n: number[]) => n.map((x) => `0${x.toString(8)}`).join('.'),
  (n: number[]) => n.map((x) => `0x${x.toString(16)}`).join('.'),
  (n: number[]) => `${n[0]}.${(n[1]! << 16) + (n[2]! << 8) + n[3]!}`,
  (n: number[]) => `${n[0]}.${n[1]}.${(n[2]! << 8) + n[3]!}`,
  (n: number[]) => `[::ffff:${n.join('.')}]`,
  (n: number[]) => `[::ffff:${((n[0]! << 8) + n[1]!).toString(16)}:${((n[2]! << 8) + n[3]!).toString(16)}]`,
  (n: number[]) => `[0:0:0:0:0:ffff:${n.join('.')}]`,
  (n: number[]) => `[::FFFF:${n.join('.')}]`,
  (n: number[]) => n.map((x) => String(x).padStart(3, '0')).join('.'),
);
const hostCase = fc.record({ spell: ipSpelling });

t.test('generated requests keep one reading between the policy and real tool servers', async (t) => {
  t.comment(`seed ${SEED} (replay with ONEREAD_SEED=${SEED}); ${RUNS} runs per property`);
  const tools = await startToolServers(t);
  const gate = await startGate(t, tools);
  const params = {
    seed: SEED,
    numRuns: RUNS,
    interruptAfterTimeLimit: 50_000,
    markInterruptAsFailure: false,
    endOnFailure: false,
  };

  const check = async <T>(
    name: string,
    arb: fc.Arbitrary<T>,
    build: (c: T, door: Door) => { bytes: string; tunnel?: string },
    runs: number,
  ): Promise<void> => {
    // One property per door, so a broken door does not hide what the other one does.
    for (const [door, n] of [
      ['proxy', runs],
      ['tunnel', Math.max(10, runs >> 2)],
    ] as Array<[Door, number]>) {
      const result = await fc.check(
        fc.asyncProperty(arb, async (c) => {
          const { bytes, tunnel } = build(c, door);
          const v = await judge(gate, tools, bytes, { tunnel, timeoutMs: 1500 });
          const why = violation(v);
          if (why !== undefined)
            throw new Error(
              `${why}\n  request: ${JSON.stringify(bytes.slice(0, 400))}${tunnel === undefined ? '' : `\n  in tunnel: ${JSON.stringify(tunnel.slice(0, 400))}`}`,
            );
        }),
        { ...params, numRuns: n },
      );
      const label = `${name} (${door === 'proxy' ? 'explicit proxy' : 'inside a CONNECT tunnel'})`;
      if (result.failed)
        t.fail(
          `${label}: a generated request breaks the one-reading rule\n${fc.defaultReportMessage(result)}\n${String(result.errorInstance)}`,
        );
      else t.pass(`${label}: ${result.numRuns} runs keep one reading`);
    }
  };

  await check('MCP tools/call with mutated media types, keys, numbers and bytes', mcpCase, mcpRequest, RUNS * 4);
  await check('REST JSON bodies read by Go encoding/json and Starlette', restCase, restRequest, RUNS * 2);
  await check('paths and queries read by Node, Go net/http and uvicorn', pathCase, pathRequest, RUNS * 3);
  await check(
    `spellings of the denied address ${DENIED_IP}`,
    hostCase,
    (c, door) => {
      const host = `${c.spell([127, 0, 0, 9])}:${tools['ip-denied'].port}`;
      return door === 'proxy'
        ? { bytes: `GET http://${host}/ HTTP/1.1\r\nHost: ${host}\r\n\r\n` }
        : {
            bytes: `CONNECT ${host} HTTP/1.1\r\nHost: ${host}\r\n\r\n`,
            tunnel: `GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`,
          };
    },
    RUNS,
  );
});
