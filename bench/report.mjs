// Turns the rows http-proxy.sh collected into the Markdown report: one line per
// target and load (medians over rounds, with min–max), the ratios the issue sets
// targets for, and memory. Usage: node report.mjs rows.tsv meta.tsv
import { readFileSync } from 'node:fs';

const [rowsFile, metaFile] = process.argv.slice(2);
const [header, ...lines] = readFileSync(rowsFile, 'utf8').trim().split('\n');
const keys = header.split('\t');
const rows = lines.map((line) =>
  Object.fromEntries(line.split('\t').map((v, i) => [keys[i], i === 1 || i === 2 ? v : Number(v)])),
);
const meta = Object.fromEntries(
  readFileSync(metaFile, 'utf8')
    .trim()
    .split('\n')
    .map((l) => [l.slice(0, l.indexOf('\t')), l.slice(l.indexOf('\t') + 1)]),
);

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const ms = (us) => (us / 1000).toFixed(2);
const kib = (kb) => `${(Number(kb) / 1024).toFixed(1)} MiB`;
const loads = meta.loads.split(/\s+/);
const loadLabel = (l) => (l.includes('@') ? `-c ${l.split('@')[0]}, ${l.split('@')[1]} ms think time` : `-c ${l}`);
const targets = [...new Set(rows.map((r) => r.target))];
const label = {
  direct: 'direct (wrk → upstream)',
  tollgate: 'Tollgate (explicit proxy)',
  nginx: 'nginx reverse proxy',
};

// The machine may be shared: a round in which other processes used more than QUIET
// percent of a core is "disturbed". A cell is the median over its undisturbed rounds
// when it has any (marked † when some rounds were dropped), else over all (marked ‡).
const QUIET = Number(process.env.BENCH_OTHERS_MAX ?? 10);
function cellRows(target, conns) {
  const all = rows.filter((r) => r.target === target && r.load === conns);
  const quiet = all.filter((r) => r.others_cpu_pct <= QUIET);
  if (quiet.length === 0) return { rows: all, mark: all.length > 0 ? '‡' : '' };
  return { rows: quiet, mark: quiet.length < all.length ? '†' : '' };
}
function stat(target, conns, field) {
  const xs = cellRows(target, conns).rows.map((r) => r[field]);
  return xs.length === 0 ? undefined : { med: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length };
}
const range = (s, f) => (s.n > 1 ? ` (${f(s.min)}–${f(s.max)})` : '');

const out = [];
out.push(`- date: ${meta.date}; commit ${meta.commit}`);
out.push(`- machine: ${meta.machine}`);
out.push(
  `- load: ${meta.wrk}; pinning ${meta.pin === '1' ? 'on (wrk + upstream on CPU 0, proxy under test on CPU 1)' : 'off'}`,
);
out.push(`- Tollgate: node ${meta.node_version}, policy bundle: ${meta.bundle}`);
out.push(`- nginx ${meta.nginx_version}, 1 worker, keepalive to upstream`);
out.push('');
out.push('| target | load | req/s | p50 ms | p99 ms | proxy CPU | CPU0 / CPU1 busy | others | rounds | errors |');
out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const conns of loads) {
  for (const target of targets) {
    const rps = stat(target, conns, 'rps');
    if (rps === undefined) continue;
    const p50 = stat(target, conns, 'p50_us');
    const p99 = stat(target, conns, 'p99_us');
    const cpu = stat(target, conns, 'proxy_cpu_pct');
    const c0 = stat(target, conns, 'cpu0_busy_pct');
    const c1 = stat(target, conns, 'cpu1_busy_pct');
    const others = stat(target, conns, 'others_cpu_pct');
    const errors = rows.filter((r) => r.target === target && r.load === conns).reduce((a, r) => a + r.errors, 0);
    out.push(
      `| ${label[target] ?? target}${cellRows(target, conns).mark} | ${loadLabel(conns)} | ${Math.round(rps.med)}${range(rps, Math.round)} | ${ms(p50.med)}${range(p50, ms)} | ${ms(p99.med)}${range(p99, ms)} | ${target === 'direct' ? '–' : `${cpu.med}%`} | ${c0.med}% / ${c1.med}% | ${others.max}% | ${rps.n}/${rows.filter((r) => r.target === target && r.load === conns).length} | ${errors} |`,
    );
  }
}
out.push('');
out.push(
  `Medians over rounds; (min–max) when there were several. p50/p99 are wrk's latency percentiles. proxy CPU: the proxy's processes as % of one core. others: share of one core used by processes outside the benchmark (this machine is shared), highest over the rounds used. rounds: rounds used / run; a round with others > ${QUIET}% is dropped when the cell has an undisturbed one († some dropped; ‡ none undisturbed, all used).`,
);
out.push('');

const hi = loads[0];
const v = (t, c, f) => stat(t, c, f)?.med;
out.push('**Ratios**');
out.push('');
for (const conns of loads) {
  const t = v('tollgate', conns, 'rps');
  const n = v('nginx', conns, 'rps');
  const d = v('direct', conns, 'rps');
  if (t !== undefined && n !== undefined) {
    const ratio = t / n;
    const verdict = conns === hi ? (ratio >= 0.5 ? ' — target ≥ 50%: **met**' : ' — target ≥ 50%: **not met**') : '';
    out.push(
      `- ${loadLabel(conns)}: Tollgate / nginx requests/s = ${(100 * ratio).toFixed(0)}%${verdict}${d ? `; Tollgate / direct = ${((100 * t) / d).toFixed(0)}%, nginx / direct = ${((100 * n) / d).toFixed(0)}%` : ''}`,
    );
  }
}
for (const conns of loads) {
  const d = v('direct', conns, 'p99_us');
  if (d === undefined) continue;
  const t = v('tollgate', conns, 'p99_us');
  const n = v('nginx', conns, 'p99_us');
  const parts = [];
  if (t !== undefined) {
    const added = t - d;
    const verdict =
      added < 0
        ? ' (negative: the direct baseline was disturbed, not a measurement)'
        : conns !== hi
          ? added <= 1000
            ? ' — target ≤ 1 ms: **met**'
            : ' — target ≤ 1 ms: **not met**'
          : '';
    parts.push(`Tollgate +${ms(added)} ms${verdict}`);
  }
  if (n !== undefined) parts.push(`nginx +${ms(n - d)} ms`);
  const t50 = v('tollgate', conns, 'p50_us');
  const d50 = v('direct', conns, 'p50_us');
  if (t50 !== undefined) parts.push(`(Tollgate added p50 +${ms(t50 - d50)} ms)`);
  out.push(`- ${loadLabel(conns)}: added p99 over direct: ${parts.join('; ')}`);
}
const tcpu = v('tollgate', hi, 'proxy_cpu_pct');
const trps = v('tollgate', hi, 'rps');
const ncpu = v('nginx', hi, 'proxy_cpu_pct');
const nrps = v('nginx', hi, 'rps');
if (tcpu && trps && ncpu && nrps) {
  const tc = (tcpu / 100 / trps) * 1e6;
  const nc = (ncpu / 100 / nrps) * 1e6;
  out.push(
    `- CPU per request at ${loadLabel(hi)}: Tollgate ${tc.toFixed(0)} µs, nginx ${nc.toFixed(0)} µs (${(tc / nc).toFixed(1)}×)`,
  );
}
out.push('');
out.push('**Memory (RSS)**');
out.push('');
out.push(
  `- Tollgate: ${kib(meta.tollgate_rss_start_kb)} after start; ${loads.map((c) => `${kib(rows.filter((r) => r.target === 'tollgate' && r.load === c).at(-1)?.proxy_rss_kb ?? 0)} at the end of ${loadLabel(c)}`).join(', ')}; ${kib(meta.tollgate_rss_end_kb)} at the end of the run, peak (VmHWM) ${kib(meta.tollgate_hwm_kb)}`,
);
out.push(
  `- nginx reverse proxy (master + worker): ${kib(meta.nginx_rss_start_kb)} after start (worker ${kib(meta.nginx_worker_rss_start_kb)}); ${kib(meta.nginx_rss_end_kb)} at the end, worker peak ${kib(meta.nginx_worker_hwm_kb)}`,
);
process.stdout.write(`${out.join('\n')}\n`);
