// The Markdown report of soak.sh from its work dir: meta.tsv, probe.tsv, samples.tsv,
// vegeta.json (vegeta report -type=json) and metrics.txt (a /metrics scrape after the load).
// Usage: node soak-report.mjs <work dir>. Exit status 0 whatever the verdicts: the report says.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
const read = (f) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), 'utf8') : '');
const tsv = (f) =>
  read(f)
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split('\t'));
const meta = Object.fromEntries(tsv('meta.tsv').map(([k, ...v]) => [k, v.join('\t')]));
const [head, ...rows] = tsv('samples.tsv');
const samples = rows.map((r) => Object.fromEntries(r.map((v, i) => [head[i], head[i] === 'phase' ? v : Number(v)])));
const vegeta = JSON.parse(read('vegeta.json') || '{}');

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const mib = (kb) => `${(kb / 1024).toFixed(1)} MiB`;
const ms = (ns) => `${(ns / 1e6).toFixed(2)} ms`;
const pct = (x) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)} %`;
const mark = (ok) => (ok ? 'yes' : '**NO**');

// --- errors --------------------------------------------------------------------------
const codes = vegeta.status_codes ?? {};
const total = vegeta.requests ?? 0;
const count = (pred) =>
  Object.entries(codes)
    .filter(([c]) => pred(Number(c)))
    .reduce((a, [, n]) => a + n, 0);
const connErrors = count((c) => c === 0);
const fiveXX = count((c) => c >= 500);
const unexpected = connErrors + fiveXX;
const otherErrors = (vegeta.errors ?? []).filter((e) => !/^\d{3} /.test(e) || /^5\d\d /.test(e));
// vegeta lists each distinct error string once; ports make every socket error distinct.
const errorPatterns = new Map();
for (const e of otherErrors) {
  const pattern = e.replace(/^[A-Za-z]+ "[^"]*": /, '').replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:*');
  errorPatterns.set(pattern, (errorPatterns.get(pattern) ?? 0) + 1);
}

// --- memory and descriptors -------------------------------------------------------------
const soak = samples.filter((s) => s.phase === 'soak');
// Medians of three samples at each end when the run has enough of them (a 10-minute run has
// over 100); a short validation run compares single samples.
const k = soak.length >= 9 ? 3 : 1;
const warm = soak.slice(0, k);
const last = soak.slice(-k);
const rssWarm = median(warm.map((s) => s.rss_kb));
const rssEnd = median(last.map((s) => s.rss_kb));
const rssMax = Math.max(...soak.map((s) => s.rss_kb));
const rssGrowth = (rssEnd - rssWarm) / rssWarm;
const heapWarm = median(warm.map((s) => s.heap_used_kb));
const heapEnd = median(last.map((s) => s.heap_used_kb));
const at = (phase) => samples.find((s) => s.phase === phase);
const fdIdle = at('idle')?.fds;
const fdBefore = at('before-soak')?.fds;
const fdWarm = median(warm.map((s) => s.fds));
const fdEnd = median(last.map((s) => s.fds));
const fdMax = Math.max(...soak.map((s) => s.fds));
const fdDrained = at('drained')?.fds;
const fdGrowth = fdEnd - fdWarm;
const cpuSeconds =
  soak.length > 1 ? (soak.at(-1).cpu_ticks - soak[0].cpu_ticks) / 100 / (soak.at(-1).seconds - soak[0].seconds) : NaN;

// --- metrics scrape ------------------------------------------------------------------
const metrics = read('metrics.txt');
const values = (name, label) =>
  new Set(
    [...metrics.matchAll(new RegExp(`^${name}\\{[^\\n]*\\b${label}="((?:[^"\\\\]|\\\\.)*)"`, 'gm'))].map((m) => m[1]),
  );
const overflow = (label) =>
  Number(
    new RegExp(`^tollgate_metric_label_overflow_total\\{label="${label}"\\} (\\S+)`, 'm').exec(metrics)?.[1] ?? NaN,
  );

// A paced run only says something about leaks if Tollgate kept up with the pace.
const achieved = Number(vegeta.throughput ?? 0) + 0;
const sustained =
  total > 0 && Number(vegeta.rate ?? 0) >= 0.98 * Number(meta.rate) && (vegeta.latencies?.['99th'] ?? Infinity) < 1e9;
const others = Number(meta.others_cpu_pct ?? NaN);
const verdicts = [
  [
    'Tollgate kept up with the pace (sent ≥ 98 % of the rate, p99 < 1 s)',
    sustained,
    `${Number(vegeta.rate ?? 0).toFixed(0)} of ${meta.rate} req/s sent, ${achieved.toFixed(0)} req/s answered with 2xx/3xx, p99 ${ms(vegeta.latencies?.['99th'] ?? 0)}`,
  ],
  [
    'the machine was quiet (other processes < 10 % of a core)',
    others < 10,
    `${others} % of a core used by other processes`,
  ],
  ['unexpected errors (5xx, connection errors, timeouts) = 0', unexpected === 0, `${unexpected} of ${total}`],
  [
    'RSS growth after warm-up < 10 %',
    rssGrowth < 0.1,
    `${mib(rssWarm)} → ${mib(rssEnd)} (${pct(rssGrowth)}; max ${mib(rssMax)})`,
  ],
  [
    'no file-descriptor growth during the load',
    fdGrowth <= Math.max(8, fdWarm * 0.05),
    `${fdWarm} after warm-up → ${fdEnd} at the end (max ${fdMax})`,
  ],
  [
    'descriptors back to the pre-load count after the drain',
    fdDrained !== undefined && fdDrained <= fdBefore + 2,
    `${fdBefore} before → ${fdDrained} after`,
  ],
];

const out = [];
out.push(
  `# Soak: ${meta.soak_seconds} s at ${meta.load_pct} % of maximum throughput, mixed allowed / denied / hostile`,
  '',
);
out.push(`Command: \`${meta.command}\` (bench/soak.sh; ${meta.date}, commit ${meta.commit}).`, '');
out.push(
  `Machine: ${meta.machine}; pinning ${meta.pin === '1' ? 'on (load generators and upstream on CPU 0, Tollgate on CPU 1)' : 'off'}. Tools: ${meta.tools}.${meta.node_flags ? ` Node flags: ${meta.node_flags}.` : ''}`,
  '',
);
out.push('## Verdict', '', '| check | met | figures |', '|---|---|---|');
for (const [what, ok, figures] of verdicts) out.push(`| ${what} | ${mark(ok)} | ${figures} |`);
out.push('');
if (!sustained || !(others < 10))
  out.push(
    '**Not conclusive:** Tollgate did not keep up with the pace or the machine was busy with other work, so queueing (open connections, buffered requests, timeouts) dominates the figures below. Run again on a quiet machine, or with a lower SOAK_LOAD_PCT / SOAK_RATE.',
    '',
  );
out.push('## Load', '');
out.push(
  `- Maximum of the mix (wrk -c 32, ${meta.max_rps ? `${meta.max_rps} req/s, p99 ${(meta.max_p99_us / 1000).toFixed(2)} ms, socket errors ${meta.max_socket_errors}` : 'skipped: SOAK_RATE fixed the rate'}).`,
);
out.push(
  `- Soak: vegeta at ${meta.rate} req/s for ${meta.soak_seconds} s (warm-up: the first ${meta.warmup_seconds} s); sent ${total}, achieved ${Number(vegeta.rate ?? 0).toFixed(0)} req/s.`,
);
out.push(
  `- Latency over the whole soak: p50 ${ms(vegeta.latencies?.['50th'] ?? 0)}, p90 ${ms(vegeta.latencies?.['90th'] ?? 0)}, p99 ${ms(vegeta.latencies?.['99th'] ?? 0)}, max ${ms(vegeta.latencies?.max ?? 0)}.`,
);
out.push(
  `- Status codes: ${Object.entries(codes)
    .sort()
    .map(([c, n]) => `${c === '0' ? 'no response' : c} × ${n} (${((100 * n) / total).toFixed(1)} %)`)
    .join(', ')}.`,
);
if (otherErrors.length > 0)
  out.push(
    `- Errors other than 4xx statuses (by cause; vegeta lists each distinct message once, so the count is of distinct URLs and ports): ${[
      ...errorPatterns,
    ]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 8)
      .map(([e, n]) => `\`${e}\` (${n} distinct)`)
      .join(', ')}.`,
  );
out.push(`- Tollgate CPU during the soak: ${(100 * cpuSeconds).toFixed(0)} % of a core.`);
out.push(
  `- Upstream pools: idle eviction after ${meta.pool_idle_ms} ms, at most ${meta.pool_max} pools, ${meta.pool_hosts} distinct allowed origins in the mix.`,
  '',
);
out.push(
  '## Each kind of request, probed once before the load',
  '',
  '| kind | class | expected | got |',
  '|---|---|---|---|',
);
for (const [kind, cls, expect, got] of tsv('probe.tsv'))
  out.push(`| ${kind} | ${cls} | ${expect} | ${expect.split(' ').includes(got) ? got : `**${got}**`} |`);
out.push('');
out.push('## Memory and descriptors of the Tollgate process', '');
const sockets = read('sockets-drained.txt').trim();
out.push(
  `Idle before any load: RSS ${mib(at('idle')?.rss_kb ?? 0)}, ${fdIdle} descriptors. After a drain of ${meta.drain_seconds} s without load: RSS ${mib(at('drained')?.rss_kb ?? 0)}, ${fdDrained} descriptors; TCP sockets then: ${sockets === '' ? 'none but the listeners' : sockets.split('\n').join(', ')}.`,
  '',
);
out.push(
  `V8 heap in use (sampled, so between collections): ${mib(heapWarm)} after the warm-up, ${mib(heapEnd)} at the end.`,
  '',
);
out.push('| s | phase | RSS | heap used / total | fds | threads |', '|---|---|---|---|---|---|');
for (const s of samples)
  out.push(
    `| ${s.seconds} | ${s.phase} | ${mib(s.rss_kb)} | ${mib(s.heap_used_kb)} / ${mib(s.heap_total_kb)} | ${s.fds} | ${s.threads} |`,
  );
out.push('');
if (metrics !== '') {
  out.push('## /metrics after the load', '');
  out.push(
    `- tollgate_decisions_total: ${values('tollgate_decisions_total', 'destination').size} destination values, ${values('tollgate_decisions_total', 'tool').size} tool values (cap ${meta.max_label_values} + "__other__"); ${metrics.split('\n').filter((l) => l.startsWith('tollgate_decisions_total{')).length} series.`,
  );
  out.push(
    `- Overflowed recordings: destination ${overflow('destination')}, tool ${overflow('tool')}, agent ${overflow('agent')}, series ${overflow('series')}.`,
  );
  const gauge = (name) => new RegExp(`^${name} (\\S+)`, 'm').exec(metrics)?.[1] ?? '?';
  out.push(
    `- Upstream pools kept after the drain: ${gauge('tollgate_upstream_pools')}; closed since the start: ${gauge('tollgate_upstream_pools_evicted_total')}.`,
  );
  out.push(`- Scrape size: ${metrics.split('\n').length} lines, ${(metrics.length / 1024).toFixed(0)} KiB.`, '');
}
process.stdout.write(`${out.join('\n')}\n`);
