// V8's worker threads made nicer than request handling, read back from the kernel
// (/proc/<pid>/task/<tid>/stat): in a child process calling the module, and in the sidecar
// started as users start it (bin/tollgate.js, with its V8 defaults).
import t from 'tap';
import { execFile, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT, tempDir, type TestLike } from '../helpers/processes.ts';

const run = promisify(execFile);
const MODULE = join(ROOT, 'src/runtime/thread-priority.ts');
const BIN = join(ROOT, 'bin/tollgate.js');

/** Every thread of a process: its name and its nice value (field 19 of stat). */
function threads(pid: number | 'self'): Array<{ name: string; nice: number }> {
  return readdirSync(`/proc/${pid}/task`).map((task) => {
    const stat = readFileSync(`/proc/${pid}/task/${task}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { name: readFileSync(`/proc/${pid}/task/${task}/comm`, 'utf8').trim(), nice: Number(fields[16]) };
  });
}

/** Runs lowerBackgroundPriority(delta) in a fresh node (optionally under `nice -n base`) and reports its threads. */
async function inChild(delta: number, options: { base?: number; before?: number } = {}) {
  const script = `
    import { readdirSync, readFileSync } from 'node:fs';
    import { setPriority } from 'node:os';
    import { lowerBackgroundPriority, threadsNamed } from ${JSON.stringify(MODULE)};
    ${options.before === undefined ? '' : `setPriority(threadsNamed('V8Worker')[0], ${options.before});`}
    const outcome = lowerBackgroundPriority(${delta});
    const threads = readdirSync('/proc/self/task').map((task) => {
      const stat = readFileSync('/proc/self/task/' + task + '/stat', 'utf8');
      return { name: readFileSync('/proc/self/task/' + task + '/comm', 'utf8').trim(), nice: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]) };
    });
    process.stdout.write(JSON.stringify({ outcome, threads }));
  `;
  const command = options.base === undefined ? process.execPath : 'nice';
  const args = ['--input-type=module', '-e', script];
  const { stdout } = await run(
    command,
    options.base === undefined ? args : ['-n', String(options.base), process.execPath, ...args],
  );
  return JSON.parse(stdout) as {
    outcome: { workers: number; nice?: number };
    threads: Array<{ name: string; nice: number }>;
  };
}

t.test("V8's workers run nicer; the main thread and libuv's threads do not", async (t) => {
  const { outcome, threads } = await inChild(10);
  const workers = threads.filter((th) => th.name === 'V8Worker');
  t.ok(workers.length > 0, 'node has V8 worker threads');
  t.equal(outcome.workers, workers.length);
  t.equal(outcome.nice, 10);
  t.same(new Set(workers.map((w) => w.nice)), new Set([10]));
  t.same(new Set(threads.filter((th) => th.name !== 'V8Worker').map((th) => th.nice)), new Set([0]));
});

t.test('relative to the process: under nice 5 the workers get 15, and never past 19', async (t) => {
  const under5 = await inChild(10, { base: 5 });
  t.same(new Set(under5.threads.filter((th) => th.name === 'V8Worker').map((th) => th.nice)), new Set([15]));
  t.equal(under5.threads.find((th) => th.name === 'MainThread')?.nice, 5);
  const capped = await inChild(10, { base: 15 });
  t.same(new Set(capped.threads.filter((th) => th.name === 'V8Worker').map((th) => th.nice)), new Set([19]));
});

t.test('0 changes nothing; a worker already nicer is left nicer', async (t) => {
  const none = await inChild(0);
  t.equal(none.outcome.nice, undefined);
  t.same(new Set(none.threads.map((th) => th.nice)), new Set([0]));
  const nicer = await inChild(10, { before: 17 });
  const nices = nicer.threads.filter((th) => th.name === 'V8Worker').map((th) => th.nice);
  t.ok(nices.includes(17), 'the worker set to 17 beforehand keeps 17');
  t.ok(
    nices.filter((n) => n !== 17).every((n) => n === 10),
    'the others get 10',
  );
});

/** Starts `bin/tollgate.js run` and returns its pid once it listens, its command line and its threads. */
async function startBin(
  t: TestLike,
  config: Record<string, unknown>,
  env: Record<string, string> = {},
  nodeFlags: string[] = [],
) {
  const dir = await tempDir();
  const file = join(dir, 'tollgate.yaml');
  await writeFile(
    file,
    JSON.stringify({
      logLevel: 'warn',
      proxy: { listen: '127.0.0.1:0' },
      admin: { listen: '127.0.0.1:0' },
      extAuthz: { enabled: false },
      ...config,
    }),
  );
  const { NODE_OPTIONS: _dropped, ...inherited } = process.env;
  const child = spawn(process.execPath, [...nodeFlags, BIN, 'run', '--config', file], {
    env: { ...inherited, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => {
    child.kill('SIGTERM');
  });
  let out = '';
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (c: string) => (out += c));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (c: string) => {
      out += c;
      if (out.includes('listening: proxy')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`tollgate exited (${code}): ${out}`)));
  });
  const pid = child.pid!;
  return {
    argv: readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0'),
    threads: threads(pid),
  };
}

t.test('tollgate run: one V8 worker, nicer than request handling, beside the heap default', async (t) => {
  const { argv, threads: th } = await startBin(t, {});
  t.ok(argv.includes('--max-semi-space-size=8'), argv.join(' '));
  t.ok(argv.includes('--v8-pool-size=1'), argv.join(' '));
  // V8 knows the flag: node refuses to start on one it does not.
  t.ok(argv.includes('--no-maglev-destroy-on-background'), argv.join(' '));
  const workers = th.filter((x) => x.name === 'V8Worker');
  t.equal(workers.length, 1);
  t.equal(workers[0]?.nice, 10);
  t.equal(th.find((x) => x.name === 'MainThread')?.nice, 0);
});

t.test("tollgate run: the operator's own flag wins, the other defaults still apply", async (t) => {
  // Quoted, as node itself accepts NODE_OPTIONS (and as test runners rewrite it).
  const { argv, threads: th } = await startBin(t, {}, { NODE_OPTIONS: '"--v8-pool-size=2"' });
  t.notOk(argv.includes('--v8-pool-size=1'), argv.join(' '));
  t.ok(argv.includes('--max-semi-space-size=8'), argv.join(' '));
  t.ok(argv.includes('--no-maglev-destroy-on-background'), argv.join(' '));
  t.equal(th.filter((x) => x.name === 'V8Worker').length, 2);
});

t.test("tollgate run: the operator's --x and --no-x are one choice, spelt with dashes or underscores", async (t) => {
  // V8 flags other than a few are refused in NODE_OPTIONS: this one goes on node's command line.
  const { argv } = await startBin(t, {}, {}, ['--maglev_destroy_on_background']);
  t.notOk(argv.includes('--no-maglev-destroy-on-background'), argv.join(' '));
  t.ok(argv.includes('--v8-pool-size=1'), argv.join(' '));
  t.ok(argv.includes('--max-semi-space-size=8'), argv.join(' '));
});

t.test('tollgate run: TOLLGATE_NODE_DEFAULTS=0 and backgroundThreadNice 0 keep Node as it is', async (t) => {
  const { argv, threads: th } = await startBin(
    t,
    { runtime: { backgroundThreadNice: 0 } },
    { TOLLGATE_NODE_DEFAULTS: '0' },
  );
  t.notOk(
    argv.some((a) => /^--(v8-pool-size|max-semi-space-size|no-maglev-destroy-on-background)/.test(a)),
    argv.join(' '),
  );
  const workers = th.filter((x) => x.name === 'V8Worker');
  t.equal(workers.length, 4, "Node's default pool");
  t.same(new Set(workers.map((w) => w.nice)), new Set([0]));
});
