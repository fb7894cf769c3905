// Summarises a V8 .cpuprofile: self and total time per function (name + file +
// line), and self time per area (Tollgate's src/, undici, opa-wasm, pino, Node
// internals, GC, ...). Times come from the sample time deltas, not hit counts.
// Usage: node cpuprofile-top.mjs <file.cpuprofile> [top N]
import { readFileSync } from 'node:fs';

const [file, topArg] = process.argv.slice(2);
const top = Number(topArg ?? 25);
const profile = JSON.parse(readFileSync(file, 'utf8'));
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const shortUrl = (url) =>
  url
    .replace(/^file:\/\/.*?\/node_modules\//, '')
    .replace(/^file:\/\/.*?\/(src\/)/, '$1')
    .replace(/^file:\/\//, '');
const key = (cf) =>
  `${(cf.functionName || '(anonymous)').slice(0, 60)}\t${shortUrl(cf.url)}${cf.url ? `:${cf.lineNumber + 1}` : ''}`;

function area(cf) {
  const { url, functionName } = cf;
  if (!url) {
    if (functionName === '(garbage collector)') return 'GC';
    if (functionName === '(idle)') return 'idle';
    if (functionName === '(program)') return '(program): native, not attributed';
    return `native: ${functionName}`;
  }
  if (url.startsWith('wasm://')) return 'policy.wasm (OPA)';
  if (url.includes('/node_modules/undici/')) return 'undici';
  if (url.includes('/node_modules/@open-policy-agent/')) return 'opa-wasm (JS glue)';
  if (url.includes('/node_modules/pino')) return 'pino';
  const dep = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (dep) return `dependency ${dep[1]}`;
  if (url.includes('/src/')) return `tollgate ${url.slice(url.indexOf('/src/') + 1)}`;
  if (url.startsWith('node:')) {
    const m = /^node:(internal\/)?([^/]+(?:\/[^/]+)?)/.exec(url);
    return `node ${m ? m[2] : url}`;
  }
  return url;
}

const self = new Map();
// Native leaves (syscall-bearing writes, JSON, encoders) charged to their nearest JS caller.
const nativeByCaller = new Map();
const total = new Map();
const areas = new Map();
let all = 0;
const { samples, timeDeltas } = profile;
for (let i = 0; i < samples.length; i++) {
  const dt = timeDeltas[i + 1] ?? 0; // the delta after a sample is the time it stands for
  all += dt;
  const leaf = nodes.get(samples[i]);
  const k = key(leaf.callFrame);
  self.set(k, (self.get(k) ?? 0) + dt);
  const a = area(leaf.callFrame);
  areas.set(a, (areas.get(a) ?? 0) + dt);
  if (!leaf.callFrame.url && !leaf.callFrame.functionName.startsWith('(')) {
    // The nearest JS caller, then the nearest caller outside Node's own modules.
    let caller = parent.get(samples[i]);
    const chain = [];
    while (caller !== undefined) {
      const cf = nodes.get(caller).callFrame;
      if (cf.url && (chain.length === 0 || !cf.url.startsWith('node:'))) {
        chain.push(key(cf).replace('\t', ' '));
        if (!cf.url.startsWith('node:')) break;
      }
      caller = parent.get(caller);
    }
    const ck = `${leaf.callFrame.functionName.slice(0, 60)}\t${chain.join(' ← ')}`;
    nativeByCaller.set(ck, (nativeByCaller.get(ck) ?? 0) + dt);
  }
  const seen = new Set();
  for (let id = samples[i]; id !== undefined; id = parent.get(id)) {
    const kk = key(nodes.get(id).callFrame);
    if (seen.has(kk)) continue;
    seen.add(kk);
    total.set(kk, (total.get(kk) ?? 0) + dt);
  }
}
const idle = areas.get('idle') ?? 0;
const busy = all - idle;
const pct = (x) => `${((100 * x) / busy).toFixed(1)}%`;
const msf = (us) => `${(us / 1000).toFixed(0)} ms`;

const lines = [];
lines.push(
  `profile ${file}: ${(all / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s busy (idle ${((100 * idle) / all).toFixed(1)}%); percentages are of busy time`,
);
lines.push('');
lines.push('| self | % busy | function | where |');
lines.push('|---:|---:|---|---|');
for (const [k, v] of [...self]
  .filter(([k]) => !k.startsWith('(idle)'))
  .sort((a, b) => b[1] - a[1])
  .slice(0, top)) {
  const [fn, where] = k.split('\t');
  lines.push(`| ${msf(v)} | ${pct(v)} | \`${fn}\` | ${where || '(native)'} |`);
}
lines.push('');
lines.push('Self time by area:');
lines.push('');
lines.push('| self | % busy | area |');
lines.push('|---:|---:|---|');
for (const [a, v] of [...areas]
  .filter(([a]) => a !== 'idle')
  .sort((x, y) => y[1] - x[1])
  .slice(0, top)) {
  lines.push(`| ${msf(v)} | ${pct(v)} | ${a} |`);
}
lines.push('');
lines.push('Native functions by JS caller (nearest, and nearest outside node:*):');
lines.push('');
lines.push('| self | % busy | native | called from |');
lines.push('|---:|---:|---|---|');
for (const [k, v] of [...nativeByCaller].sort((a, b) => b[1] - a[1]).slice(0, Math.min(top, 15))) {
  const [fn, where] = k.split('\t');
  lines.push(`| ${msf(v)} | ${pct(v)} | \`${fn}\` | ${where} |`);
}
lines.push('');
lines.push("Total (inclusive) time of Tollgate's own functions (src/):");
lines.push('');
lines.push('| total | % busy | function | where |');
lines.push('|---:|---:|---|---|');
for (const [k, v] of [...total]
  .filter(([k]) => k.includes('\tsrc/'))
  .sort((a, b) => b[1] - a[1])
  .slice(0, top)) {
  const [fn, where] = k.split('\t');
  lines.push(`| ${msf(v)} | ${pct(v)} | \`${fn}\` | ${where} |`);
}
process.stdout.write(`${lines.join('\n')}\n`);
