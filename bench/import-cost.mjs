// What each dependency costs at start: the RSS (and V8 heap) a fresh Node process has
// after importing one module, minus a bare Node process's, median of BENCH_IMPORT_RUNS (3)
// runs each. Costs overlap (undici is inside several), so they do not add up.
// Usage: node bench/import-cost.mjs [module or ./src/file.ts ...]; prints a Markdown table.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const RUNS = Number(process.env.BENCH_IMPORT_RUNS ?? 3);
const DEFAULT = [
  'undici',
  '@grpc/grpc-js',
  './src/extauthz/server.ts',
  '@opentelemetry/sdk-trace',
  './src/telemetry/setup.ts',
  'prom-client',
  './src/telemetry/metrics.ts',
  'zod',
  'yaml',
  'pino',
  '@open-policy-agent/opa-wasm',
  './src/pep/proxy.ts',
  './src/sidecar.ts',
  './src/cli/main.ts',
];
const targets = process.argv.length > 2 ? process.argv.slice(2) : DEFAULT;

// One child: import, let start-up garbage go, then report RSS and heap in KiB.
const probe = (target) => {
  const code = `${target === '' ? '' : `await import(${JSON.stringify(target.startsWith('./') ? new URL(target, `file://${root}`).href : target)});`}
globalThis.gc?.(); await new Promise((r) => setTimeout(r, 200)); globalThis.gc?.();
const m = process.memoryUsage();
process.stdout.write(JSON.stringify({ rss: m.rss >> 10, heap: m.heapUsed >> 10, ext: (m.external + m.arrayBuffers) >> 10 }));`;
  // main.ts runs the CLI when imported: give it "version" so it prints and returns.
  const out = execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', code, '--', 'version'], {
    cwd: root,
    encoding: 'utf8',
  });
  return JSON.parse(out.slice(out.indexOf('{')));
};
const median = (xs) => xs.sort((a, b) => a - b)[xs.length >> 1];
const measure = (target) => {
  const runs = Array.from({ length: RUNS }, () => probe(target));
  return {
    rss: median(runs.map((r) => r.rss)),
    heap: median(runs.map((r) => r.heap)),
    ext: median(runs.map((r) => r.ext)),
  };
};

const base = measure('');
const mb = (kb) => (kb / 1024).toFixed(1);
console.log(`| import (node ${process.version}) | RSS MB added | V8 heap used MB added | external MB added |`);
console.log('|---|---:|---:|---:|');
console.log(`| (bare node: ${mb(base.rss)} MB RSS, ${mb(base.heap)} MB heap) | 0 | 0 | 0 |`);
for (const target of targets) {
  const r = measure(target);
  console.log(`| ${target} | ${mb(r.rss - base.rss)} | ${mb(r.heap - base.heap)} | ${mb(r.ext - base.ext)} |`);
}
