// Figures for bench/footprint.sh, one JSON object on stdout.
//   latency <vegeta results.csv>      p50/p99/p99.9/max (ms) and errors of a paced run, and its
//                                     slowest second (offset from the run's start, p99 and max
//                                     of the requests sent in it): where a stall was, if any
//   gc <trace-gc-nvp log> <requests>  scavenges and mark-compacts in that log slice: count,
//                                     pauses, bytes surviving scavenges (copied within the
//                                     young generation + promoted), per scavenge and per request
import { readFileSync } from 'node:fs';

const [kind, file, requestsArg] = process.argv.slice(2);
const text = readFileSync(file, 'utf8');
const round = (x, d = 3) => Math.round(x * 10 ** d) / 10 ** d;

if (kind === 'latency') {
  const latencies = [];
  const sent = [];
  let errors = 0;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const cols = line.split(',');
    if (cols[1] !== '200') errors += 1;
    const ms = Number(cols[2]) / 1e6;
    latencies.push(ms);
    sent.push([BigInt(cols[0]), ms]);
  }
  // Each request in the second of the run it was sent in, counted from the first request.
  const first = sent.reduce((min, [t]) => (t < min ? t : min), sent[0]?.[0] ?? 0n);
  const bySecond = new Map();
  for (const [t, ms] of sent) {
    const second = Number((t - first) / 1_000_000_000n);
    if (!bySecond.has(second)) bySecond.set(second, []);
    bySecond.get(second).push(ms);
  }
  const pctOf = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? null;
  latencies.sort((a, b) => a - b);
  const pct = (p) => pctOf(latencies, p);
  let worstSecond = null;
  for (const [second, values] of bySecond) {
    values.sort((a, b) => a - b);
    const p99 = pctOf(values, 99);
    if (worstSecond === null || p99 > worstSecond.p99Ms)
      worstSecond = { atS: second, requests: values.length, p99Ms: p99, maxMs: values.at(-1) };
  }
  if (worstSecond !== null) for (const k of ['p99Ms', 'maxMs']) worstSecond[k] = round(worstSecond[k]);
  const out = {
    requests: latencies.length,
    errors,
    p50Ms: pct(50),
    p99Ms: pct(99),
    p999Ms: pct(99.9),
    maxMs: latencies.at(-1),
  };
  for (const k of ['p50Ms', 'p99Ms', 'p999Ms', 'maxMs']) out[k] = out[k] === null ? null : round(out[k]);
  out.worstSecond = worstSecond;
  process.stdout.write(`${JSON.stringify(out)}\n`);
} else if (kind === 'gc') {
  const requests = Number(requestsArg);
  const field = (line, name) => Number(new RegExp(`\\b${name}=([\\d.]+)`).exec(line)?.[1] ?? 0);
  let scavenges = 0,
    scavengePauseMs = 0,
    maxScavengeMs = 0,
    survived = 0,
    promoted = 0;
  let markCompacts = 0,
    markCompactPauseMs = 0;
  for (const line of text.split('\n')) {
    const gc = /\bgc=(\w+)/.exec(line)?.[1];
    if (gc === undefined) continue;
    const pause = field(line, 'pause');
    if (gc === 's') {
      scavenges += 1;
      scavengePauseMs += pause;
      maxScavengeMs = Math.max(maxScavengeMs, pause);
      survived += field(line, 'new_space_survived');
      promoted += field(line, 'promoted');
    } else {
      markCompacts += 1;
      markCompactPauseMs += pause;
    }
  }
  process.stdout.write(
    `${JSON.stringify({
      requests,
      scavenges,
      scavengePauseMs: round(scavengePauseMs, 1),
      maxScavengeMs: round(maxScavengeMs, 1),
      survivedKbPerScavenge: scavenges ? Math.round((survived + promoted) / scavenges / 1024) : 0,
      survivedBytesPerRequest: requests ? Math.round((survived + promoted) / requests) : 0,
      promotedBytesPerRequest: requests ? Math.round(promoted / requests) : 0,
      markCompacts,
      markCompactPauseMs: round(markCompactPauseMs, 1),
    })}\n`,
  );
} else {
  process.stderr.write('usage: footprint-stats.mjs latency <csv> | gc <log> <requests>\n');
  process.exit(2);
}
