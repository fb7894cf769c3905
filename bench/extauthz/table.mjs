// Markdown table of bench/extauthz.sh results (one JSON line per measurement), plus the
// median per server and the ratios of Tollgate's medians to opa-envoy-plugin's and to the bare
// node:http2 gRPC server's (the runtime's limit).
// Usage: node table.mjs <results.jsonl>
// "others CPU" is the CPU time the machine spent during a measurement outside the server and
// ghz (other sessions' tests and benchmarks on a shared machine), as % of one CPU; a row
// where it exceeds 20% is marked disturbed. Medians over all rounds, over undisturbed rounds
// only (when there are both kinds), and the per-round Tollgate / opa-envoy-plugin ratios.
import { readFileSync } from 'node:fs';

const rows = readFileSync(process.argv[2], 'utf8')
  .trim()
  .split('\n')
  .filter(Boolean)
  .map((l) => JSON.parse(l));
const others = (r) => (100 * Math.max(0, r.machineBusyS - r.serverCpuS - r.ghzCpuS)) / r.totalS;
const mb = (kb) => (kb / 1024).toFixed(1);
const lines = [
  '| run round | server | req/s | p50 ms | p99 ms | errors | RSS warm MiB | RSS end MiB | HWM MiB | heap used / total MiB | server CPU µs/req | server CPU s | ghz CPU s | others CPU % | duration s |',
  '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
];
for (const r of rows) {
  lines.push(
    `| ${r.run ?? ''} ${r.round} | ${r.server} | ${r.rps} | ${r.p50Ms} | ${r.p99Ms} | ${r.errors} | ${mb(r.rssWarmKb)} | ${mb(r.rssEndKb)} | ${mb(r.hwmKb)} | ${r.heap?.heapUsedKb === undefined ? '-' : `${mb(r.heap.heapUsedKb)} / ${mb(r.heap.heapTotalKb)}`} | ${r.serverCpuUsPerReq} | ${r.serverCpuS} | ${r.ghzCpuS} | ${others(r).toFixed(0)}${others(r) > 20 ? ' disturbed' : ''} | ${r.totalS} |`,
  );
}
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const servers = [...new Set(rows.map((r) => r.server))];
const summary = (title, pick) => {
  const med = {};
  const out = [
    '',
    `| ${title} | req/s | p50 ms | p99 ms | errors (sum) | RSS end MiB | server CPU µs/req |`,
    '|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const s of servers) {
    const rs = rows.filter((r) => r.server === s && pick(r));
    if (rs.length === 0) continue;
    med[s] = {
      rps: median(rs.map((r) => r.rps)),
      p50: median(rs.map((r) => r.p50Ms)),
      p99: median(rs.map((r) => r.p99Ms)),
      rss: median(rs.map((r) => r.rssEndKb)),
      cpu: median(rs.map((r) => r.serverCpuUsPerReq)),
    };
    out.push(
      `| ${s} (${rs.length}) | ${med[s].rps} | ${med[s].p50.toFixed(2)} | ${med[s].p99.toFixed(2)} | ${rs.reduce((a, r) => a + r.errors, 0)} | ${mb(med[s].rss)} | ${med[s].cpu} |`,
    );
  }
  const t = med.tollgate;
  for (const [peer, label] of [
    ['opa-envoy-plugin', 'opa-envoy-plugin'],
    ['bare-grpc', 'bare node:http2 gRPC server'],
  ]) {
    const o = med[peer];
    if (t && o)
      out.push(
        '',
        `Tollgate / ${label} (${title}): req/s ${(t.rps / o.rps).toFixed(2)}x, p50 ${(t.p50 / o.p50).toFixed(2)}x, p99 ${(t.p99 / o.p99).toFixed(2)}x (lower is better), RSS ${(t.rss / o.rss).toFixed(2)}x, CPU/request ${(t.cpu / o.cpu).toFixed(2)}x`,
      );
  }
  return out;
};
lines.push(...summary('median, all rounds (n)', () => true));
if (rows.some((r) => others(r) <= 20) && rows.some((r) => others(r) > 20))
  lines.push(...summary('median, undisturbed rounds only (n)', (r) => others(r) <= 20));
// Each round measures both servers back to back, so their ratio shares most of the noise.
const rounds = [...new Set(rows.map((r) => `${r.run ?? ''} ${r.round}`))];
const ratios = [];
for (const round of rounds) {
  const t = rows.find((r) => `${r.run ?? ''} ${r.round}` === round && r.server === 'tollgate');
  const o = rows.find((r) => `${r.run ?? ''} ${r.round}` === round && r.server === 'opa-envoy-plugin');
  if (t && o)
    ratios.push({ round, rps: t.rps / o.rps, p99: t.p99Ms / o.p99Ms, cpu: t.serverCpuUsPerReq / o.serverCpuUsPerReq });
}
if (ratios.length > 0) {
  lines.push('', '| run round | req/s ratio | p99 ratio | CPU/request ratio |', '|---:|---:|---:|---:|');
  for (const r of ratios)
    lines.push(`| ${r.round} | ${r.rps.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.cpu.toFixed(2)} |`);
  lines.push(
    `| median | ${median(ratios.map((r) => r.rps)).toFixed(2)} | ${median(ratios.map((r) => r.p99)).toFixed(2)} | ${median(ratios.map((r) => r.cpu)).toFixed(2)} |`,
  );
}
process.stdout.write(`${lines.join('\n')}\n`);
