#!/usr/bin/env node
// Tollgate runs its TypeScript sources directly on Node 24 (type stripping).
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(
    `tollgate needs Node.js 24 or later (this is ${process.version}); run it through npm (npm start, npx tollgate) which uses the node@24 dev dependency\n`,
  );
  process.exit(1);
}

// V8 settings for a sidecar (bin/node-defaults.js). V8 reads them only at start, so the process
// re-executes itself with them (execve: same pid, no parent process left behind).
import { missingDefaults } from './node-defaults.js';
const defaults = missingDefaults(process.execArgv, process.env.NODE_OPTIONS);
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
