// Summarises a V8 .cpuprofile by self time aggregated per function name + file (all
// lines of a file together), then per area (Tollgate src/ file, dependency, node:
// internals, policy.wasm, GC, native). Times come from the sample time deltas.
// Usage: node cpuprofile-summary.mjs <file.cpuprofile> [top N]
import { readFileSync } from 'node:fs';

const [file, topArg] = process.argv.slice(2);
const top = Number(topArg ?? 25);
const profile = JSON.parse(readFileSync(file, 'utf8'));
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const shortUrl = (url) => url.replace(/^file:\/\/.*?\/node_modules\//, '').replace(/^file:\/\/.*?\/(src\/)/, '$1').replace(/^file:\/\//, '');
const fnKey = (cf) => `${(cf.functionName || '(anonymous)').slice(0, 70)}\t${cf.url ? shortUrl(cf.url) : '(native)'}`;
function area(cf) {
  const { url, functionName } = cf;
  if (!url) {
    if (functionName === '(garbage collector)') return 'GC';
    if (functionName === '(idle)') return 'idle';
    if (functionName === '(program)') return '(program): native, not attributed';
    return 'native (builtins called from JS)';
  }
  if (url.startsWith('wasm://')) return 'policy.wasm (OPA)';
  const dep = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (dep) return `dependency ${dep[1]}`;
  if (url.includes('/src/')) return `tollgate ${url.slice(url.indexOf('/src/') + 1)}`;
  if (url.startsWith('node:')) return 'node: internals';
  return url;
}

const self = new Map();
const areas = new Map();
const total = new Map();
let all = 0;
for (let i = 0; i < profile.samples.length; i++) {
  const dt = profile.timeDeltas[i + 1] ?? 0;
  all += dt;
  const leaf = nodes.get(profile.samples[i]).callFrame;
  self.set(fnKey(leaf), (self.get(fnKey(leaf)) ?? 0) + dt);
  areas.set(area(leaf), (areas.get(area(leaf)) ?? 0) + dt);
  const seen = new Set();
  for (let id = profile.samples[i]; id !== undefined; id = parent.get(id)) {
    const k = fnKey(nodes.get(id).callFrame);
    if (!seen.has(k)) total.set(k, (total.get(k) ?? 0) + dt), seen.add(k);
  }
}
const idle = areas.get('idle') ?? 0;
const busy = all - idle;
const pct = (x) => `${((100 * x) / busy).toFixed(1)}%`;
const msf = (us) => `${(us / 1000).toFixed(0)} ms`;
const table = (title, head, entries, n) => {
  const out = [title, '', head, head.replace(/[^|]+/g, (c) => (c.trim() === '' ? c : '---'))];
  for (const [k, v] of entries.slice(0, n)) out.push(`| ${msf(v)} | ${pct(v)} | ${k.split('\t').map((x, j) => (j === 0 ? `\`${x}\`` : x)).join(' | ')} |`);
  return out.concat('');
};
const lines = [`profile ${file}: ${(all / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s busy (idle ${((100 * idle) / all).toFixed(1)}%); percentages are of busy time`, ''];
lines.push(...table('Self time by function (name + file):', '| self | % busy | function | file |', [...self].filter(([k]) => !k.startsWith('(idle)')).sort((a, b) => b[1] - a[1]), top));
lines.push(...table('Self time by area:', '| self | % busy | area |', [...areas].filter(([a]) => a !== 'idle').sort((a, b) => b[1] - a[1]), top));
lines.push(...table("Inclusive time of Tollgate's own functions (src/):", '| total | % busy | function | file |', [...total].filter(([k]) => k.includes('\tsrc/')).sort((a, b) => b[1] - a[1]), top));
process.stdout.write(`${lines.join('\n')}\n`);
