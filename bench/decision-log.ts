/**
 * What the decision log costs per decision, in one process and one run:
 *   1. Tollgate's writer (mask, hash chain, batched file writes), given the input's JSON text
 *      as the WASM PDP hands it over and given only the input object, against the floor of any
 *      JSON-lines decision log: the same OPA-shaped record JSON.stringify'd and written in
 *      64 KiB batches through the same file sink, with no mask and no chain;
 *   2. the seal alone (serialise, UTF-8 encode, SHA-256) in the scheme written now
 *      (`sha256-line`: JSON.stringify) and in the earlier one (`sha256-jcs`: RFC 8785
 *      canonical JSON), on the same record.
 * Inputs are built by Tollgate's own normaliser and input builder (./inputs.ts): a GET as
 * the footprint bench sends it, and an MCP tools/call POST with its JSON body. Events are
 * handed over 32 per turn of the event loop, as requests arrive, and CPU time (user +
 * system) is counted from the first write until everything is in the file. Rounds alternate the variants;
 * figures are medians over rounds.
 *
 *   node bench/decision-log.ts [--records 40000] [--rounds 5]
 *
 * Prints a Markdown section for bench/RESULTS.md.
 */
import { hash, randomUUID } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createDecisionLog, type DecisionEvent } from '../src/audit/log.ts';
import { sealRecordInto } from '../src/audit/chain.ts';
import { openFileSink } from '../src/audit/file-sink.ts';
import { canonicalJson } from '../src/json/canonical.ts';
import { benchInput as input } from './inputs.ts';

const { values } = parseArgs({
  options: { records: { type: 'string', default: '40000' }, rounds: { type: 'string', default: '5' } },
});
const RECORDS = Number(values.records);
const ROUNDS = Number(values.rounds);
const PER_TURN = 32;

const mcpBody = JSON.stringify({
  jsonrpc: '2.0',
  id: 17,
  method: 'tools/call',
  params: { name: 'refund', arguments: { order: 'o-5521', amount: 42.5, currency: 'EUR', reason: 'damaged' } },
});
const INPUTS: Record<string, unknown> = {
  'GET (footprint bench request)': input('GET', 'http://tool.internal:8080/v1/items?limit=10', [], ''),
  'MCP tools/call POST': input(
    'POST',
    'http://mcp.internal:8080/mcp',
    [
      'Content-Type',
      'application/json',
      'Content-Length',
      String(Buffer.byteLength(mcpBody)),
      'Mcp-Session-Id',
      'c0ffee00-1111-4222-8333-944455556666',
      'Mcp-Method',
      'tools/call',
      'Mcp-Name',
      'refund',
    ],
    mcpBody,
  ),
};

function event(policyInput: unknown, i: number, inputJson?: string): DecisionEvent {
  return {
    decisionId: randomUUID(),
    path: 'tollgate/authz/decision',
    input: policyInput,
    ...(inputJson === undefined ? {} : { inputJson }),
    result: { allowed: i % 10 !== 0, reasons: i % 10 !== 0 ? [] : ['destination not on the allow-list'] },
    revision: 'bench-1',
    evalNanos: 21_000 + (i % 997),
    traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    spanId: '00f067aa0ba902b7',
    requestedBy: '10.0.3.17:40312',
  };
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function cpuMicros(since: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(since);
  return used.user + used.system;
}

/**
 * Tollgate's decision log to a file: CPU µs per record and the file's bytes per record. With
 * `inputJson` each event carries the input's JSON text, as the WASM PDP hands it over (it
 * serialised the input to evaluate it); without, the log serialises the input itself (other
 * PDPs, or an input the mask erased a credential from).
 */
async function tollgateLog(
  policyInput: unknown,
  dir: string,
  inputJson?: string,
): Promise<{ us: number; bytes: number }> {
  const path = join(dir, `tollgate-${randomUUID()}.jsonl`);
  const log = await createDecisionLog({ file: { path, maxBytes: 2 ** 40 }, labels: { id: 'bench' } });
  const started = process.cpuUsage();
  for (let i = 0; i < RECORDS; i++) {
    log.write(event(policyInput, i, inputJson));
    if (i % PER_TURN === PER_TURN - 1) {
      await turn();
      // Handed over far faster than requests arrive: wait for the writer rather than fill its queue.
      if (log.stats().queued > 2000) await log.flush();
    }
  }
  await log.flush();
  const us = cpuMicros(started) / RECORDS;
  const { written, dropped } = log.stats();
  await log.close();
  if (written !== RECORDS || dropped !== 0) throw new Error(`decision log wrote ${written}, dropped ${dropped}`);
  const { size } = await stat(path);
  return { us, bytes: size / RECORDS };
}

/** The floor: the same record as JSON.stringify writes it, 64 KiB per write, no mask, no chain. */
async function plainLines(policyInput: unknown, dir: string): Promise<{ us: number; bytes: number }> {
  const sink = await openFileSink(join(dir, `plain-${randomUUID()}.jsonl`), 0);
  let pending = Buffer.allocUnsafe(128 * 1024);
  let used = 0;
  let queue: DecisionEvent[] = [];
  const started = process.cpuUsage();
  const drain = async (): Promise<void> => {
    for (const e of queue) {
      const line = `${JSON.stringify({
        decision_id: e.decisionId,
        timestamp: new Date().toISOString(),
        path: e.path,
        input: e.input,
        result: e.result,
        bundles: { tollgate: { revision: e.revision } },
        metrics: { timer_rego_query_eval_ns: e.evalNanos },
        labels: { id: 'bench' },
        trace_id: e.traceId,
        span_id: e.spanId,
        requested_by: e.requestedBy,
      })}\n`;
      if (used + line.length * 3 > pending.length) {
        const larger = Buffer.allocUnsafe(pending.length * 2);
        pending.copy(larger, 0, 0, used);
        pending = larger;
      }
      used += pending.write(line, used, 'utf8');
      if (used >= 64 * 1024) {
        await sink.append(pending.subarray(0, used));
        used = 0;
      }
    }
    queue = [];
  };
  for (let i = 0; i < RECORDS; i++) {
    queue.push(event(policyInput, i));
    if (i % PER_TURN === PER_TURN - 1) {
      await turn();
      await drain();
    }
  }
  await drain();
  if (used > 0) await sink.append(pending.subarray(0, used));
  const us = cpuMicros(started) / RECORDS;
  const bytes = sink.size / RECORDS;
  await sink.close();
  return { us, bytes };
}

/** The seal alone, per record: the current scheme and the earlier one on the same record. */
function seals(policyInput: unknown): { line: number; jcs: number } {
  const record: Record<string, unknown> = {
    decision_id: randomUUID(),
    timestamp: new Date().toISOString(),
    path: 'tollgate/authz/decision',
    input: policyInput,
    result: { allowed: true, reasons: [] },
    bundles: { tollgate: { revision: 'bench-1' } },
    metrics: { timer_rego_query_eval_ns: 21_000 },
    labels: { id: 'bench' },
    trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
    span_id: '00f067aa0ba902b7',
    requested_by: '10.0.3.17:40312',
    seq: 7,
    prev_hash: '0'.repeat(64),
  };
  const space = { bytes: Buffer.allocUnsafe(64 * 1024), at: 0 };
  const n = RECORDS;
  let started = process.cpuUsage();
  for (let i = 0; i < n; i++) sealRecordInto(record, () => space);
  const line = cpuMicros(started) / n;
  started = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    // The earlier seal: canonical JSON, encoded once into the buffer, hashed there.
    const body = canonicalJson(record);
    const length = space.bytes.write(body, 0, 'utf8');
    hash('sha256', space.bytes.subarray(0, length), 'hex');
  }
  return { line, jcs: cpuMicros(started) / n };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const dir = await mkdtemp(join(tmpdir(), 'tollgate-bench-decision-log-'));
const rows: string[] = [];
try {
  for (const [name, policyInput] of Object.entries(INPUTS)) {
    const text = JSON.stringify(policyInput);
    const us: Record<'text' | 'object' | 'plain' | 'line' | 'jcs', number[]> = {
      text: [],
      object: [],
      plain: [],
      line: [],
      jcs: [],
    };
    let bytes = 0;
    // Warm-up: every path compiled before it is measured.
    await tollgateLog(policyInput, dir, text);
    await tollgateLog(policyInput, dir);
    await plainLines(policyInput, dir);
    seals(policyInput);
    for (let round = 0; round < ROUNDS; round++) {
      const order = ['text', 'object', 'plain'] as const;
      for (const which of round % 2 === 0 ? order : [...order].reverse()) {
        const r =
          which === 'plain'
            ? await plainLines(policyInput, dir)
            : await tollgateLog(policyInput, dir, which === 'text' ? text : undefined);
        us[which].push(r.us);
        if (which === 'text') bytes = r.bytes;
      }
      const s = seals(policyInput);
      us.line.push(s.line);
      us.jcs.push(s.jcs);
    }
    const m = Object.fromEntries(Object.entries(us).map(([k, v]) => [k, median(v)])) as Record<keyof typeof us, number>;
    const µs = (x: number): string => `${x.toFixed(2)} µs`;
    rows.push(
      `| ${name} | ${Math.round(bytes)} B | ${µs(m.text)} | ${µs(m.object)} | ${µs(m.plain)} | **${(m.text / m.plain).toFixed(2)}×** / ${(m.object / m.plain).toFixed(2)}× | ${µs(m.line)} | ${µs(m.jcs)} | **${(m.line / m.jcs).toFixed(2)}×** |`,
    );
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}

console.log(`### Decision log: CPU per record (${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC)

Machine: ${cpus().length} CPUs, ${cpus()[0]?.model ?? 'unknown'}; Node ${process.versions.node}. ${RECORDS} records per
variant and round, ${PER_TURN} per turn of the event loop, medians of ${ROUNDS} alternating rounds.
Command: \`npm run bench -- decision-log\`

| input | line | Tollgate's log, input text from the PDP | Tollgate's log, input serialised | plain JSON lines | ratios to plain | seal (sha256-line) | seal (sha256-jcs, earlier) | ratio |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
${rows.join('\n')}
`);
