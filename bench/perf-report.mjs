// CPU per request from a Linux `perf record` profile (bench/profile.sh with
// BENCH_PROFILE_TOOL=perf): every thread of the process, kernel and V8 internals included,
// with JIT-compiled JavaScript and WebAssembly named from node's --perf-basic-prof map.
// V8's own CPU profiler attributes native and microtask time to whatever JavaScript frame it
// last saw; perf samples the instruction pointer itself, so this is the view to compare two
// processes with.
// Usage: node bench/perf-report.mjs <a.perf> [<b.perf>] [top N]
//   Each <x.perf> has a <x.perf>.json beside it ({"requests", "frequency", "target"}).
//   With two profiles: µs per request of each, and the difference, by area and by symbol.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const top = /^\d+$/.test(args.at(-1) ?? '') ? Number(args.pop()) : 40;
if (args.length < 1 || args.length > 2) {
  console.error('usage: node bench/perf-report.mjs <a.perf> [<b.perf>] [top N]');
  process.exit(2);
}

/** The area a symbol belongs to: where the time goes, coarsely. */
function area(dso, sym) {
  if (dso.startsWith('[kernel')) return 'kernel';
  if (/^JS:.*(opa_|__opa|builtin_)/.test(sym) || /^JS:g\d+\.data\./.test(sym)) return 'policy.wasm (OPA)';
  if (/^JS:wasm-function\[/.test(sym)) return 'other WebAssembly (undici llhttp)';
  if (/Json(Stringifier|Parser|Stringify|Parse)/.test(sym)) return 'V8 JSON';
  if (/Scaveng|Heap::|MarkCompact|Sweep|Evacuat|ConcurrentMarking|Marking|RememberedSet|MinorMS|GCTracer/.test(sym))
    return 'V8 GC';
  if (sym.includes('/src/') && sym.includes('file://')) return 'Tollgate (src/)';
  if (sym.includes('node_modules/undici')) return 'undici';
  if (sym.includes('node_modules/')) return 'other dependencies';
  if (sym.startsWith('JS:') && sym.includes(' node:')) return 'Node.js library (JS)';
  if (sym.startsWith('JS:')) return 'other JavaScript';
  if (sym.startsWith('Builtins_')) return 'V8 builtins';
  if (sym.startsWith('v8::')) return 'V8 runtime';
  if (sym.startsWith('node::') || sym.startsWith('uv_') || sym.startsWith('uv__') || sym.startsWith('llhttp'))
    return 'Node.js native';
  return 'libc and other native';
}

function load(file) {
  const meta = JSON.parse(readFileSync(`${file}.json`, 'utf8'));
  const text = execFileSync(
    'perf',
    [
      'report',
      '-i',
      file,
      '--no-children',
      '--sort',
      'dso,sym',
      '-g',
      'none',
      '-n',
      '--percent-limit',
      '0',
      '-t',
      '\t',
    ],
    { encoding: 'utf8', maxBuffer: 256 << 20, stdio: ['ignore', 'pipe', 'ignore'] },
  );
  const perRequest = 1e6 / meta.frequency / meta.requests; // µs per sample per request
  const bySymbol = new Map();
  const byArea = new Map();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const [, samples, dso, symbol] = line.split('\t').map((s) => s.trim());
    if (samples === undefined || symbol === undefined) continue;
    // JIT tiers (*, +, ~, ^) and V8's code ids differ between two processes: one name per function.
    const sym = symbol
      .replace(/^\[.\]\s*/, '')
      .replace(/^JS:[*+~^']*/, 'JS:')
      .replace(/-\d+-(turbofan|liftoff|maglev|none)$/, '');
    const us = Number(samples) * perRequest;
    bySymbol.set(sym, (bySymbol.get(sym) ?? 0) + us);
    const a = area(dso, sym);
    byArea.set(a, (byArea.get(a) ?? 0) + us);
  }
  return { meta, bySymbol, byArea, total: [...byArea.values()].reduce((x, y) => x + y, 0) };
}

const profiles = args.map(load);
const fmt = (x) => x.toFixed(2);
const names = profiles.map((p) => p.meta.target);
console.log(
  `CPU µs per request (perf, all threads): ${profiles.map((p) => `${p.meta.target} ${fmt(p.total)} (${p.meta.requests} requests)`).join(', ')}\n`,
);
function table(title, key) {
  const keys = new Set(profiles.flatMap((p) => [...p[key].keys()]));
  const value = (p, k) => p[key].get(k) ?? 0;
  const rows = [...keys].map((k) => ({ k, v: profiles.map((p) => value(p, k)) }));
  const diff = (r) => (r.v.length === 2 ? r.v[0] - r.v[1] : r.v[0]);
  rows.sort((a, b) => diff(b) - diff(a));
  console.log(`| ${title} | ${names.join(' | ')} |${profiles.length === 2 ? ' difference |' : ''}`);
  console.log(`|---|${names.map(() => '---:').join('|')}|${profiles.length === 2 ? '---:|' : ''}`);
  for (const r of rows.slice(0, key === 'byArea' ? rows.length : top))
    console.log(
      `| ${r.k.slice(0, 100).replace(/\|/g, '\\|')} | ${r.v.map(fmt).join(' | ')} |${r.v.length === 2 ? ` ${diff(r) >= 0 ? '+' : ''}${fmt(diff(r))} |` : ''}`,
    );
  console.log('');
}
table('area', 'byArea');
table('symbol', 'bySymbol');
