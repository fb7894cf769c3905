// One JSON line from a ghz JSON report (-O json), ghz's /usr/bin/time output ("user sys
// elapsed") and extra fields (a JSON object). Errors are every call whose gRPC status is
// not OK (a denied CheckResponse is a gRPC OK carrying PERMISSION_DENIED, as in Envoy).
// Usage: node ghz-summary.mjs <ghz.json> <time file> '<extra json>'
import { readFileSync } from 'node:fs';

const [reportFile, timeFile, extra = '{}'] = process.argv.slice(2);
const r = JSON.parse(readFileSync(reportFile, 'utf8'));
const pct = (p) => (r.latencyDistribution ?? []).find((d) => d.percentage === p)?.latency ?? null;
const ms = (ns) => (ns === null ? null : Math.round(ns / 1e3) / 1e3);
const ok = r.statusCodeDistribution?.OK ?? 0;
const [user, sys, elapsed] = readFileSync(timeFile, 'utf8').trim().split('\n').at(-1).split(/\s+/).map(Number);
const out = {
  ...JSON.parse(extra),
  count: r.count,
  rps: Math.round(r.rps),
  p50Ms: ms(pct(50)),
  p90Ms: ms(pct(90)),
  p99Ms: ms(pct(99)),
  avgMs: ms(r.average),
  slowestMs: ms(r.slowest),
  errors: r.count - ok,
  statusCodes: r.statusCodeDistribution ?? {},
  errorKinds: r.errorDistribution ?? {},
  totalS: Math.round(r.total / 1e6) / 1e3,
  ghzCpuS: Math.round((user + sys) * 100) / 100,
};
if (out.serverCpuS !== undefined) out.serverCpuUsPerReq = Math.round((out.serverCpuS * 1e6) / r.count);
process.stdout.write(`${JSON.stringify(out)}\n`);
