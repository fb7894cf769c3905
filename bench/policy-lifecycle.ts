/**
 * Policy lifecycle benchmark:
 *   1. swap time of a bundle with 1,000 rules and a 10 MB data document (verify, instantiate,
 *      load data, smoke check, swap), built and signed by the real opa CLI;
 *   2. decision latency (p50/p99/max) under steady concurrent load vs while that bundle is swapped in;
 *   3. replay throughput (decisions/s) over a recorded decision log.
 *
 *   node bench/policy-lifecycle.ts [--rules 1000] [--data-mb 10] [--replay 20000]
 *
 * Prints a Markdown section for bench/RESULTS.md.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, mkdir, writeFile } from 'node:fs/promises';
import { generateKeyPairSync } from 'node:crypto';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { loadBundle, parseBundleArchive } from '../src/bundle/load.ts';
import { createBundleVerifier } from '../src/bundle/verify.ts';
import { createSwappablePdp } from '../src/pdp/swap.ts';
import { replayDecisionLog } from '../src/replay/replay.ts';
import { requestInput } from '../test/bundle/fixtures.ts';
import { recordDecisionLog, SEED_BUNDLE, TRAFFIC } from '../test/replay/record.ts';
import { OPA } from '../test/helpers/processes.ts';

const run = promisify(execFile);
const { values } = parseArgs({
  options: {
    rules: { type: 'string', default: '1000' },
    'data-mb': { type: 'string', default: '10' },
    replay: { type: 'string', default: '20000' },
  },
});
const RULES = Number(values.rules);
const DATA_MB = Number(values['data-mb']);
const REPLAY = Number(values.replay);

const dir = await mkdtemp(join(tmpdir(), 'tollgate-bench-lifecycle-'));
const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
await writeFile(join(dir, 'key.pem'), keys.privateKey.export({ type: 'pkcs8', format: 'pem' }));
const publicKey = keys.publicKey.export({ type: 'spki', format: 'pem' }) as string;

/** A policy with RULES deny rules (one per path), an allow-list, and DATA_MB of data. */
async function build(revision: string): Promise<string> {
  const src = join(dir, revision);
  await mkdir(src, { recursive: true });
  const rules = Array.from(
    { length: RULES },
    (_, i) =>
      `deny contains "rule ${i}: ${revision} denies /blocked/${i}" if input.attributes.request.http.path == "/blocked/${i}"\n`,
  ).join('\n');
  await writeFile(
    join(src, 'policy.rego'),
    `package tollgate.authz\n\nimport rego.v1\n\n${rules}\nallowed if {\n\tcount(deny) == 0\n\tdata.tollgate.hosts[input.attributes.request.http.host]\n}\n\ndefault allowed := false\n\ndecision := {"allowed": allowed, "reasons": sort([r | some r in deny])}\n`,
  );
  // ~DATA_MB of customer records the policy does not read: what a big allow-list or risk table costs to load.
  const records: Record<string, { tier: string; limit: number; note: string }> = {};
  const per = 86; // bytes per record as serialised
  for (let i = 0; i < (DATA_MB * 1024 * 1024) / per; i++)
    records[`customer-${i}`] = { tier: i % 3 === 0 ? 'gold' : 'silver', limit: i % 1000, note: 'x'.repeat(30) };
  await writeFile(
    join(src, 'data.json'),
    JSON.stringify({ tollgate: { hosts: { 'api.example': true }, customers: records } }),
  );
  const out = join(dir, `${revision}.tar.gz`);
  await run(
    OPA,
    [
      'build',
      '-b',
      '-t',
      'wasm',
      '-e',
      'tollgate/authz/decision',
      '--revision',
      revision,
      '--signing-key',
      join(dir, 'key.pem'),
      '--signing-alg',
      'RS256',
      '-o',
      out,
      src,
    ],
    { maxBuffer: 64 * 1024 * 1024 },
  );
  return out;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

const t0 = Date.now();
const [a, b] = await Promise.all([build('big-a'), build('big-b')]);
const buildSeconds = (Date.now() - t0) / 1000;
const [bundleA, bundleB] = await Promise.all([loadBundle(a), loadBundle(b)]);
const pdp = createSwappablePdp({
  decisionPath: 'tollgate/authz/decision',
  timeoutMs: 1000,
  verifier: createBundleVerifier({ keyId: 'default', publicKey, algorithm: 'RS256', scope: '' }),
  smoke: { input: requestInput('GET', 'http://api.example/ok'), expectAllowed: true },
});
const first = await pdp.activate(bundleA, 'startup');

// Open-loop load (no coordinated omission): requests "arrive" at a fixed rate whether or not
// the event loop is free; latency = completion − scheduled arrival, so a stall of the event
// loop during the swap shows up in every request that arrived while it lasted.
const RATE_PER_MS = 5; // 5,000 decisions/s
const inputs = [
  requestInput('GET', 'http://api.example/ok'),
  requestInput('GET', 'http://api.example/blocked/999'),
  requestInput('GET', 'http://other.example/x'),
];
async function measure(
  ms: number,
  during?: () => Promise<unknown>,
): Promise<{ latencies: number[]; decisions: number; revisions: Set<string>; failures: number }> {
  const latencies: number[] = [];
  const revisions = new Set<string>();
  let failures = 0;
  const start = performance.now();
  let next = start;
  let n = 0;
  const pending = during?.();
  while (performance.now() - start < ms) {
    const now = performance.now();
    while (next <= now) {
      try {
        const d = await pdp.decide(inputs[n % inputs.length]!, `b-${n}`);
        revisions.add(d.revision);
      } catch {
        failures++;
      }
      latencies.push(performance.now() - next);
      next += 1 / RATE_PER_MS;
      n++;
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  await pending;
  return { latencies: latencies.sort((x, y) => x - y), decisions: latencies.length, revisions, failures };
}

const steady = await measure(3000);
let swapEvent: Awaited<ReturnType<typeof pdp.activate>> | undefined;
let parseMs = 0;
const swapping = await measure(3000, async () => {
  // What a poll does with a downloaded bundle: parse the archive, then verify/instantiate/smoke/swap.
  const started = performance.now();
  const parsed = await parseBundleArchive(b, bundleB.archive!);
  parseMs = performance.now() - started;
  swapEvent = await pdp.activate(parsed, 'poll');
});

// Replay throughput over a recorded log of REPLAY decisions (the seed policy, real inputs).
const log = join(dir, 'decisions.jsonl');
await recordDecisionLog(log, Math.ceil(REPLAY / TRAFFIC.length));
const report = await replayDecisionLog({
  log,
  bundle: await loadBundle(SEED_BUNDLE),
  decisionPath: 'tollgate/authz/decision',
});

const row = (name: string, m: Awaited<ReturnType<typeof measure>>): string =>
  `| ${name} | ${m.decisions} | ${percentile(m.latencies, 50).toFixed(3)} | ${percentile(m.latencies, 99).toFixed(3)} | ${(m.latencies.at(-1) ?? 0).toFixed(1)} | ${m.failures} | ${[...m.revisions].sort().join(', ')} |`;
const sizeMb = (bundleA.archive!.length / 1024 / 1024).toFixed(1);
const dataMb = (Buffer.byteLength(JSON.stringify(bundleA.data)) / 1024 / 1024).toFixed(1);
process.stdout.write(`## Policy lifecycle — \`node bench/policy-lifecycle.ts\`

Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, opa ${(await run(OPA, ['version'])).stdout.split('\n')[0]?.replace('Version: ', '')}.
Bundle: ${RULES} deny rules + ${dataMb} MB data.json (${sizeMb} MB .tar.gz, signed RS256), built in ${buildSeconds.toFixed(1)} s for two revisions.

| swap step | ms |
| --- | --- |
| first activation (verify + instantiate + 10 MB data + smoke) | ${first.prepareMs.toFixed(1)} |
| parse the downloaded archive (gunzip on the zlib pool, untar, JSON.parse of data.json) | ${parseMs.toFixed(1)} |
| hot swap under load (verify + instantiate + data + smoke, then one reference assignment) | ${swapEvent?.prepareMs.toFixed(1)} |

Decision latency at a fixed 5,000 decisions/s, open loop (ms from scheduled arrival to decision, so event-loop stalls count):

| phase | decisions | p50 | p99 | max | failures | revisions |
| --- | --- | --- | --- | --- | --- | --- |
${row('steady (3 s)', steady)}
${row('3 s window containing the swap', swapping)}

Replay: ${report.totals.replayed} recorded decisions in ${report.durationMs.toFixed(0)} ms = **${report.decisionsPerSecond} decisions/s** (read JSONL, evaluate, compare; seed policy).
`);
