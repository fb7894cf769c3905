// V8 settings for a sidecar, applied by `tollgate run` unless the operator chose their own (in
// NODE_OPTIONS or node's own flags; each flag on its own, `--x` and `--no-x` being one choice)
// or set TOLLGATE_NODE_DEFAULTS=0. The benchmarks run their bare peers with the same list.
// (README "Performance".)
//
// --max-semi-space-size=8: Node 24 lets the young generation grow to 64 MB per semi-space,
// committed soon after start. 8 MB keeps idle and loaded RSS lower while a request's garbage
// still dies young: at 2 MB a request in flight outlives its scavenge 5x as often, is promoted
// and grows the old space.
// --v8-pool-size=1: one V8 worker thread instead of four. A sidecar has a CPU or less, and four
// workers busy at once (concurrent marking, optimising compilation) took four fifths of it from
// request handling; the one left runs nicer than the main thread (runtime.backgroundThreadNice).
// --no-maglev-destroy-on-background: the main thread frees each finished Maglev compilation
// itself. Left to the one nicer worker, finished compilations queue behind it while requests
// keep the CPU busy, each holding its compiler memory: ~75 MB of C heap at the first seconds of
// load, which glibc keeps afterwards.
import { pathToFileURL } from 'node:url';

export const NODE_DEFAULTS = ['--max-semi-space-size=8', '--v8-pool-size=1', '--no-maglev-destroy-on-background'];

/** A V8 flag's name without its dashes, `no-` and value (`--no-foo_bar=1` → `foo-bar`). */
const flagName = (arg) =>
  arg
    .replace(/^--?(no-)?/, '')
    .split('=')[0]
    .replaceAll('_', '-');

/** NODE_OPTIONS's arguments: space-separated, each possibly in double quotes (as node reads them). */
const nodeOptionsArgs = (text) => (text.match(/"(?:[^"\\]|\\.)*"|\S+/g) ?? []).map((a) => a.replace(/^"(.*)"$/s, '$1'));

/** The defaults the operator did not set themselves, in node's argv or NODE_OPTIONS. */
export function missingDefaults(execArgv, nodeOptions = '') {
  const given = [...execArgv, ...nodeOptionsArgs(nodeOptions)];
  const chosen = new Set(given.filter((a) => a.startsWith('-')).map(flagName));
  return NODE_DEFAULTS.filter((flag) => !chosen.has(flagName(flag)));
}

// `node bin/node-defaults.js` prints the list, for scripts (the benchmarks' bare peers).
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href)
  process.stdout.write(`${NODE_DEFAULTS.join(' ')}\n`);
