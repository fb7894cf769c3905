/**
 * Cost of the strict body reading, per request, on the CPU clock of this thread:
 * JSON.parse alone, the strict JSON scan alone (what the strict gate adds to a JSON body,
 * besides sub-microsecond media-type and JSON-RPC checks), and buildInput (strict reading)
 * for a bodyless GET, a typical MCP tools/call (~1.1 KB) and a 64 KiB JSON-RPC body.
 * Rounds are interleaved and the minimum is kept, because the machine is shared.
 *
 *   node bench/body-reading.ts [--rounds 25]
 *
 * Prints a Markdown table.
 */
import { parseArgs } from 'node:util';
import { buildInput } from '../src/input/build.ts';
import { normalizeRequest } from '../src/http/normalize.ts';
import { validateStrictJson } from '../src/input/strict-json.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '25' } } });
const ROUNDS = Number(values.rounds);
const agent = { id: 'support-bot', role: 'support', labels: {} };

const call = {
  jsonrpc: '2.0',
  id: 42,
  method: 'tools/call',
  params: {
    name: 'create_refund',
    arguments: {
      customerId: 'c-12345',
      orderId: 'o-987654',
      amount: 120.5,
      currency: 'EUR',
      reason: 'Customer reported the parcel arrived damaged; photos attached in ticket T-5521.',
      items: Array.from({ length: 10 }, (_, i) => ({
        sku: `SKU-${1000 + i}`,
        qty: i + 1,
        price: 9.75 + i,
        note: 'ok',
        warehouse: `eu-west-${i % 3}`,
      })),
      meta: { agent: 'support-bot', trace: 'abcdef0123456789', tags: ['refund', 'damaged', 'priority'] },
    },
  },
};

function bigCall(): string {
  const rows: unknown[] = [];
  for (let i = 0; ; i++) {
    rows.push({ id: i, name: `row-${i} description`, value: i * 1.25, ok: i % 2 === 0 });
    const text = JSON.stringify({ ...call, params: { name: 'import_rows', arguments: { rows } } });
    if (text.length > 65_000) return text;
  }
}

function request(length: number) {
  const headers =
    length === 0
      ? ['Host', 'mcp.internal']
      : ['Host', 'mcp.internal', 'Content-Type', 'application/json', 'Content-Length', String(length)];
  return normalizeRequest({
    id: 'r',
    method: length === 0 ? 'GET' : 'POST',
    target: 'http://mcp.internal/mcp',
    rawHeaders: headers,
    httpVersion: '1.1',
    scheme: 'http',
    source: { address: '127.0.0.1', port: 40000 },
    destination: { address: '127.0.0.1', port: 15001 },
  });
}

function cpuNs(fn: () => void, iterations: number): number {
  const start = process.cpuUsage();
  for (let k = 0; k < iterations; k++) fn();
  const used = process.cpuUsage(start);
  return ((used.user + used.system) * 1000) / iterations;
}

console.log('| body | bytes | JSON.parse | strict scan | scan ÷ JSON.parse | buildInput (strict) |');
console.log('|---|---:|---:|---:|---:|---:|');
for (const [label, text, iterations] of [
  ['bodyless GET', '', 20_000],
  ['MCP tools/call', JSON.stringify(call), 10_000],
  ['64 KiB JSON-RPC', bigCall(), 200],
] as const) {
  const bytes = Buffer.from(text);
  const req = request(bytes.length);
  const best = { parse: Infinity, scan: Infinity, strict: Infinity };
  for (let round = 0; round < ROUNDS; round++) {
    if (text !== '') {
      best.parse = Math.min(
        best.parse,
        cpuNs(() => JSON.parse(text), iterations),
      );
      best.scan = Math.min(
        best.scan,
        cpuNs(() => validateStrictJson(text), iterations),
      );
    }
    best.strict = Math.min(
      best.strict,
      cpuNs(() => buildInput(req, { bytes, truncated: false }, agent, 0, { reading: 'strict' }), iterations),
    );
  }
  const us = (ns: number): string => (Number.isFinite(ns) ? `${(ns / 1000).toFixed(1)} µs` : '—');
  const ratio = Number.isFinite(best.parse) ? (best.scan / best.parse).toFixed(2) : '—';
  console.log(`| ${label} | ${bytes.length} | ${us(best.parse)} | ${us(best.scan)} | ${ratio} | ${us(best.strict)} |`);
}
