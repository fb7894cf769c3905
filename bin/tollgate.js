#!/usr/bin/env node
// Tollgate runs its TypeScript sources directly on Node 24 (type stripping).
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(
    `tollgate needs Node.js 24 or later (this is ${process.version}); run it through npm (npm start, npx tollgate) which uses the node@24 dev dependency\n`,
  );
  process.exit(1);
}

// V8 settings for a sidecar, applied to `tollgate run` unless the operator chose their own
// (in NODE_OPTIONS or node's own flags; each flag on its own) or set TOLLGATE_NODE_DEFAULTS=0.
// Node 24 lets the young generation grow to 64 MB per semi-space, committed soon after start.
// 8 MB keeps idle and loaded RSS lower while a request's garbage still dies young: at 2 MB a
// request in flight outlives its scavenge 5x as often, is promoted and grows the old space.
// One V8 worker thread instead of four: a sidecar has a CPU or less, and four workers busy
// at once (concurrent marking, optimising compilation) took four fifths of it from request
// handling; the one left runs nicer than the main thread (runtime.backgroundThreadNice).
// (README "Performance".) V8 reads these only at start, so the process re-executes itself
// with them (execve: same pid, no parent process left behind).
const NODE_DEFAULTS = ['--max-semi-space-size=8', '--v8-pool-size=1'];
const chosen = (flag) =>
  process.execArgv.some((a) => a.startsWith(flag)) || (process.env.NODE_OPTIONS ?? '').includes(flag);
const defaults = NODE_DEFAULTS.filter((flag) => !chosen(flag.split('=')[0]));
if (
  process.argv[2] === 'run' &&
  process.env.TOLLGATE_NODE_DEFAULTS !== '0' &&
  typeof process.execve === 'function' &&
  defaults.length > 0
) {
  process.execve(process.execPath, [process.execPath, ...defaults, ...process.execArgv, ...process.argv.slice(1)]);
}

// Compiled JS (npm run build → dist/) when present and built after the last change to src/;
// otherwise the TypeScript sources. TOLLGATE_DIST=0 forces the sources.
import { readdirSync, statSync } from 'node:fs';
const newestSource = (dir) => {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = new URL(`${entry.name}${entry.isDirectory() ? '/' : ''}`, dir);
    newest = Math.max(newest, entry.isDirectory() ? newestSource(path) : statSync(path).mtimeMs);
  }
  return newest;
};
const built = (() => {
  try {
    return statSync(new URL('../dist/BUILT', import.meta.url)).mtimeMs;
  } catch {
    return undefined;
  }
})();
const useDist =
  process.env.TOLLGATE_DIST !== '0' &&
  built !== undefined &&
  built >= newestSource(new URL('../src/', import.meta.url));
await import(useDist ? '../dist/src/cli/main.js' : '../src/cli/main.ts');
