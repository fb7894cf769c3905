// Request mixes for the soak and gate-cost benchmarks, written in two forms from one
// list so the load generators send the same requests: vegeta JSON targets (one per
// line; vegeta cycles through them in order) and a Lua table for wrk. Every request is
// absolute-form, as an agent with HTTP_PROXY sends it, to the hosts the default policy
// knows (payments.internal, mcp.internal, hr.internal) plus the generated ones below.
//
// Usage: node targets.mjs <mix> <out dir>
//   soak  allowed / denied / hostile, with many distinct destinations (see KINDS)
//   gate  the realistic allowed mix of the strict-gate cost scenario: GET with a query,
//         POST JSON of 1 KB, MCP tools/call of 2 KB
// Env:  SOAK_POOL_HOSTS   distinct allowed origins (svc<N>.pool.soak), default 200
//       SOAK_DENY_HOSTS   distinct unknown destinations (h<N>.deny.soak), default 2000
// Writes <out>/<mix>.targets.jsonl, <out>/<mix>.requests.lua, <out>/<mix>.kinds.tsv
// (kind and the statuses expected of it) and, for soak, <out>/soak.data.json: the policy
// data that registers the pool hosts for the support role.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [mix, out] = process.argv.slice(2);
if (!mix || !out) throw new Error('usage: node targets.mjs <soak|gate> <out dir>');
const POOL_HOSTS = Number(process.env.SOAK_POOL_HOSTS ?? 200);
const DENY_HOSTS = Number(process.env.SOAK_DENY_HOSTS ?? 2000);

const json = { 'content-type': 'application/json' };
const mcpHeaders = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
const toolCall = (name, args, id = 1) =>
  JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });
/** A JSON object padded with a filler field to about `bytes` bytes. */
const padded = (object, bytes) => {
  const base = JSON.stringify({ ...object, note: '' });
  return JSON.stringify({ ...object, note: 'x'.repeat(Math.max(0, bytes - base.length)) });
};

// kind: what the request is; class: allowed | denied | hostile; expect: statuses that are
// a correct answer (anything else, 5xx and connection errors above all, is unexpected).
const KINDS = {
  'get-refund': {
    class: 'allowed',
    expect: '200',
    make: () => ({
      method: 'GET',
      url: 'http://payments.internal/v1/refunds/r-1?expand=customer&fields=amount,status',
    }),
  },
  'post-refund': {
    class: 'allowed',
    expect: '200',
    make: () => ({
      method: 'POST',
      url: 'http://payments.internal/v1/refunds',
      header: json,
      body: padded({ amount: 10, currency: 'EUR', ticket: 'T-1' }, 1024),
    }),
  },
  'mcp-call': {
    class: 'allowed',
    expect: '200',
    make: (i) => ({
      method: 'POST',
      url: 'http://mcp.internal/mcp',
      header: mcpHeaders,
      body: toolCall('get_ticket', { ticket: `T-${i}`, context: 'y'.repeat(1900) }, i),
    }),
  },
  // Ten calls in a row to one origin, then the next: each pool is busy briefly, then idle
  // until the list comes round again, so idle eviction and the pool cap both work.
  'pool-host': {
    class: 'allowed',
    expect: '200',
    make: (i) => ({ method: 'GET', url: `http://svc${Math.floor(i / 10) % POOL_HOSTS}.pool.soak/v1/status` }),
  },
  'deny-refund': {
    class: 'denied',
    expect: '403',
    make: () => ({
      method: 'POST',
      url: 'http://payments.internal/v1/refunds',
      header: json,
      body: JSON.stringify({ amount: 900 }),
    }),
  },
  'deny-host': {
    class: 'denied',
    expect: '403',
    make: () => ({ method: 'GET', url: 'http://hr.internal/v1/employees' }),
  },
  // A denied tools/call is answered as a JSON-RPC error in a 200 (or a 403).
  'deny-tool': {
    class: 'denied',
    expect: '200 403',
    make: (i) => ({
      method: 'POST',
      url: 'http://mcp.internal/mcp',
      header: mcpHeaders,
      body: toolCall('delete_customer', { id: `c-${i}` }, i),
    }),
  },
  'many-destinations': {
    class: 'denied',
    expect: '403',
    make: (i) => ({ method: 'GET', url: `http://h${i % DENY_HOSTS}.deny.soak:${8000 + (i % 50)}/x` }),
  },
  // Tools the policy does not deny, each name distinct: forwarded, and past the tool label's cap.
  'many-tools': {
    class: 'allowed',
    expect: '200',
    make: (i) => ({
      method: 'POST',
      url: 'http://mcp.internal/mcp',
      header: mcpHeaders,
      body: toolCall(`lookup_${i % DENY_HOSTS}`, { id: i }, i),
    }),
  },
  'dot-segment': {
    class: 'hostile',
    expect: '400 403',
    make: () => ({ method: 'GET', url: 'http://payments.internal/v1/refunds/..%2F..%2Fadmin' }),
  },
  'encoded-slash': {
    class: 'hostile',
    expect: '400 403',
    make: () => ({ method: 'GET', url: 'http://payments.internal/v1%2frefunds%2fr-1' }),
  },
  'bad-json': {
    class: 'hostile',
    expect: '400 403',
    make: () => ({ method: 'POST', url: 'http://payments.internal/v1/refunds', header: json, body: '{"amount": 10,' }),
  },
  'duplicate-key': {
    class: 'hostile',
    expect: '400 403',
    make: () => ({
      method: 'POST',
      url: 'http://payments.internal/v1/refunds',
      header: json,
      body: '{"amount": 10, "amount": 900}',
    }),
  },
  'unknown-tool-host': {
    class: 'hostile',
    expect: '200 400 403',
    make: (i) => ({
      method: 'POST',
      url: `http://t${i % DENY_HOSTS}.tools.soak/mcp`,
      header: mcpHeaders,
      body: toolCall(`tool_${i % DENY_HOSTS}`, {}, i),
    }),
  },
};

// Weights per 100 requests of each mix.
const MIXES = {
  soak: {
    'get-refund': 20,
    'post-refund': 12,
    'mcp-call': 12,
    'pool-host': 11,
    'deny-refund': 6,
    'deny-host': 5,
    'deny-tool': 5,
    'many-destinations': 9,
    'many-tools': 3,
    'dot-segment': 4,
    'encoded-slash': 3,
    'bad-json': 4,
    'duplicate-key': 3,
    'unknown-tool-host': 3,
  },
  gate: { 'get-refund': 1, 'post-refund': 1, 'mcp-call': 1 },
};
const weights = MIXES[mix];
if (!weights) throw new Error(`unknown mix ${mix} (soak, gate)`);

// Interleave the kinds (a weighted round-robin), for enough rounds that the distinct
// destinations and tools all occur: 2,000 distinct deny hosts at 9 per 100 need ~22,000 lines.
const rounds =
  mix === 'soak'
    ? Math.max(
        Math.ceil(DENY_HOSTS / weights['many-destinations']),
        Math.ceil((10 * POOL_HOSTS) / weights['pool-host']),
      )
    : 1;
const list = [];
const counters = Object.fromEntries(Object.keys(weights).map((k) => [k, 0]));
for (let r = 0; r < rounds; r++) {
  const pending = { ...weights };
  while (Object.values(pending).some((n) => n > 0)) {
    for (const kind of Object.keys(pending)) {
      if (pending[kind] === 0) continue;
      pending[kind] -= 1;
      list.push({ kind, ...KINDS[kind].make(counters[kind]++) });
    }
  }
}

const vegeta = list.map(({ method, url, header, body }) =>
  JSON.stringify({
    method,
    url,
    header: Object.fromEntries(Object.entries({ ...(header ?? {}) }).map(([k, v]) => [k, [v]])),
    ...(body === undefined ? {} : { body: Buffer.from(body).toString('base64') }),
  }),
);
writeFileSync(join(out, `${mix}.targets.jsonl`), `${vegeta.join('\n')}\n`);

// Lua: JSON string literals are valid Lua literals for printable ASCII (\" \\ only).
const lua = (s) => {
  if (!/^[\x20-\x7e]*$/.test(s)) throw new Error(`not printable ASCII: ${s.slice(0, 40)}`);
  return JSON.stringify(s);
};
const host = (url) => new URL(url).host;
const luaLines = list.map(({ method, url, header, body }) => {
  const headers = { Host: host(url), ...(header ?? {}) };
  const h = Object.entries(headers)
    .map(([k, v]) => `[${lua(k)}] = ${lua(v)}`)
    .join(', ');
  return `  {${lua(method)}, ${lua(url)}, {${h}}, ${body === undefined ? 'nil' : lua(body)}},`;
});
writeFileSync(join(out, `${mix}.requests.lua`), `return {\n${luaLines.join('\n')}\n}\n`);
writeFileSync(
  join(out, `${mix}.kinds.tsv`),
  `${Object.entries(weights)
    .map(([k, w]) => `${k}\t${KINDS[k].class}\t${KINDS[k].expect}\t${w}`)
    .join('\n')}\n`,
);

if (mix === 'soak') {
  const pool = Array.from({ length: POOL_HOSTS }, (_, i) => `svc${i}.pool.soak`);
  writeFileSync(
    join(out, 'soak.data.json'),
    JSON.stringify({
      tollgate: {
        destinations: Object.fromEntries(pool.map((h) => [h, { description: 'soak origin' }])),
        role_destinations: { support: ['crm.internal', 'mcp.internal', 'payments.internal', ...pool] },
      },
    }),
  );
}
process.stdout.write(`${list.length} requests, ${Object.keys(weights).length} kinds\n`);
