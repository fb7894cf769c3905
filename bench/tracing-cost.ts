/**
 * What tracing costs per call, in one process and one run: the CPU of the tracing steps a
 * call through Tollgate takes (src/pep/proxy.ts and src/enforce/decide.ts: the call's span,
 * its decision, the decision log's trace ids, the context injected into the forwarded
 * headers, the span's end) with
 *   off       tracing off (the API's no-op tracer; the agent's context still passed on),
 *   default   tracing on at the default sampling (parent-based, 10 % of new traces), calls
 *             with no trace context: what the footprint bench's requests are,
 *   sampled   every call recorded (the agent's traceparent says sampled),
 * exporting over OTLP/gRPC to a live Jaeger (started here, .tools/bin/jaeger) through
 * Tollgate's own set-up (setup.ts: encoding batch processor, gRPC exporter). Calls are
 * made 32 per turn of the event loop, as requests arrive; CPU time (user + system) is
 * counted from the first call until every span is exported (forceFlush). Rounds alternate
 * the variants; figures are medians over rounds.
 *
 *   node bench/tracing-cost.ts [--calls 100000] [--rounds 5]
 *
 * Prints a Markdown section for bench/RESULTS.md.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { INVALID_TRACEID } from '@opentelemetry/api';
import { setupTelemetry, type Telemetry } from '../src/telemetry/setup.ts';
import { createTracing, type Tracing } from '../src/telemetry/spans.ts';
import { decisionMeta } from '../src/telemetry/observer.ts';
import type { PolicyInput } from '../src/input/build.ts';
import { JAEGER, startJaeger } from '../test/helpers/jaeger.ts';
import { benchInput } from './inputs.ts';

const { values } = parseArgs({
  options: { calls: { type: 'string', default: '100000' }, rounds: { type: 'string', default: '5' } },
});
const CALLS = Number(values.calls);
const ROUNDS = Number(values.rounds);
const PER_TURN = 32;

const HEADERS = {
  host: 'tool.internal:8080',
  'user-agent': 'agent-sdk/1.4 (python 3.12)',
  accept: 'application/json',
};
const SAMPLED_PARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

const DECISION = { allowed: true, reasons: [] as string[], revision: 'bench-1', evalNanos: 21_000 };

/** The tracing steps of one allowed call, in the order Tollgate takes them. */
function call(tracing: Tracing, headers: Record<string, string>, input: PolicyInput): string {
  const tr = tracing.startCall({
    method: 'GET',
    scheme: 'http',
    authority: 'tool.internal:8080',
    target: '/v1/refunds/r-1',
    headers,
  });
  const span = tr.startDecision(decisionMeta(randomUUID(), 'tollgate/authz/decision', input, 'tool.internal:8080'));
  span.end(DECISION);
  // The decision log's ids (omitted when tracing is off).
  const ids = span.traceId === INVALID_TRACEID ? '' : span.spanId;
  const out: Record<string, string> = { ...headers };
  tr.forward(out);
  tr.end({ statusCode: 200 });
  return ids;
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function measure(
  telemetry: Telemetry,
  headers: Record<string, string>,
  input: PolicyInput,
): Promise<{ us: number; traceparent: boolean }> {
  const tracing = createTracing({ tracer: telemetry.tracer, propagator: telemetry.propagator, pdpKind: 'wasm' });
  const probe: Record<string, string> = {};
  // Whether the variant injects trace context (checked by the caller), from one call of its own.
  const probeCall = tracing.startCall({ method: 'GET', scheme: 'http', authority: 'tool.internal:8080', headers });
  probeCall.forward(probe);
  probeCall.end({ statusCode: 200 });
  const started = process.cpuUsage();
  let keep = 0;
  for (let i = 0; i < CALLS; i++) {
    // Summed so that the ids the call reads are not optimised away.
    keep += call(tracing, headers, input).length;
    if (i % PER_TURN === PER_TURN - 1) await turn();
  }
  await telemetry.forceFlush();
  const used = process.cpuUsage(started);
  if (keep < 0) throw new Error('unreachable');
  return { us: (used.user + used.system) / CALLS, traceparent: probe.traceparent !== undefined };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

if (!existsSync(JAEGER)) throw new Error(`no ${JAEGER} (bash scripts/install-tools.sh jaeger)`);
// The tests' Jaeger (test/helpers/jaeger.ts), stopped by the teardowns it registers.
const teardowns: (() => unknown)[] = [];
const jaeger = await startJaeger({ teardown: (fn) => teardowns.push(fn) });
const us: Record<'off' | 'default' | 'sampled', number[]> = { off: [], default: [], sampled: [] };
try {
  const off = setupTelemetry({ enabled: false, registerGlobal: false });
  const on = setupTelemetry({ enabled: true, endpoint: `http://127.0.0.1:${jaeger.grpc}`, registerGlobal: false });
  const input = benchInput('GET', 'http://tool.internal:8080/v1/refunds/r-1');
  const sampledHeaders = { ...HEADERS, traceparent: SAMPLED_PARENT };
  const variants = {
    off: () => measure(off, HEADERS, input),
    default: () => measure(on, HEADERS, input),
    sampled: () => measure(on, sampledHeaders, input),
  };
  // Warm-up: every path compiled before it is measured.
  for (const run of Object.values(variants)) await run();
  for (let round = 0; round < ROUNDS; round++) {
    const order = ['off', 'default', 'sampled'] as const;
    for (const which of round % 2 === 0 ? order : [...order].reverse()) {
      const r = await variants[which]();
      if (which !== 'off' && !r.traceparent) throw new Error(`${which}: no traceparent injected`);
      us[which].push(r.us);
    }
  }
  await on.shutdown();
} finally {
  for (const fn of teardowns.reverse()) await fn();
}

const m = { off: median(us.off), default: median(us.default), sampled: median(us.sampled) };
const µs = (x: number): string => `${x.toFixed(2)} µs`;
console.log(`### Tracing: CPU per call (${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC)

Machine: ${cpus().length} CPUs, ${cpus()[0]?.model ?? 'unknown'}; Node ${process.versions.node}. ${CALLS} calls per
variant and round, ${PER_TURN} per turn of the event loop, exported over OTLP/gRPC to a live Jaeger; medians of ${ROUNDS}
alternating rounds (every round: off ${us.off.map((x) => x.toFixed(2)).join(' / ')}, default ${us.default.map((x) => x.toFixed(2)).join(' / ')}, sampled ${us.sampled.map((x) => x.toFixed(2)).join(' / ')} µs).
Command: \`npm run bench -- tracing-cost\`

| tracing | CPU per call | added to off |
|---|---:|---:|
| off | ${µs(m.off)} | — |
| on, default sampling (10 % of new traces) | ${µs(m.default)} | +${µs(m.default - m.off)} |
| on, every call recorded and exported | ${µs(m.sampled)} | +${µs(m.sampled - m.off)} |
`);
