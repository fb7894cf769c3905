// Figures for bench/footprint.sh, one JSON object on stdout.
//   latency <vegeta results.csv>      p50/p99/p99.9/max (ms) and errors of a paced run
//   gc <trace-gc-nvp log> <requests>  scavenges and mark-compacts in that log slice: count,
//                                     pauses, bytes surviving scavenges (copied within the
//                                     young generation + promoted), per scavenge and per request
import { readFileSync } from 'node:fs';

const [kind, file, requestsArg] = process.argv.slice(2);
const text = readFileSync(file, 'utf8');
const round = (x, d = 3) => Math.round(x * 10 ** d) / 10 ** d;

if (kind === 'latency') {
  const latencies = [];
  let errors = 0;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const cols = line.split(',');
    if (cols[1] !== '200') errors += 1;
    latencies.push(Number(cols[2]) / 1e6);
  }
  latencies.sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.ceil((p / 100) * latencies.length) - 1)] ?? null;
  const out = {
    requests: latencies.length,
    errors,
    p50Ms: pct(50),
    p99Ms: pct(99),
    p999Ms: pct(99.9),
    maxMs: latencies.at(-1),
  };
  for (const k of ['p50Ms', 'p99Ms', 'p999Ms', 'maxMs']) out[k] = out[k] === null ? null : round(out[k]);
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
