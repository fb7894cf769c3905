/**
 * Produces a real decision log for replay tests and the Policy CI sample: each input is
 * built the way the proxy builds it (normaliser + input builder), decided by the seed
 * bundle, and written as an OPA decision-log record (decision_id, timestamp, path, input,
 * result, bundles{name:{revision}}, metrics) chained with prev_hash/hash after a genesis
 * record, as Tollgate's decision log writes them.
 *
 *   node test/replay/record.ts OUT.jsonl    regenerates test/replay/fixtures/decisions.jsonl
 */
import { createHash, randomUUID } from 'node:crypto';
import { cp, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { loadBundle } from '../../src/bundle/load.ts';
import { createWasmPdp } from '../../src/pdp/wasm.ts';
import { requestInput } from '../bundle/fixtures.ts';
import { OPA, ROOT, tempDir } from '../helpers/processes.ts';

const run = promisify(execFile);
export const SEED_BUNDLE = join(ROOT, 'policies/dist/bundle.tar.gz');
export const SAMPLE_LOG = fileURLToPath(new URL('./fixtures/decisions.jsonl', import.meta.url));

/** The recorded traffic: agent, method, URL, JSON body. */
export const TRAFFIC: ReadonlyArray<
  readonly [agent: string, role: string, method: string, url: string, body?: unknown]
> = [
  ['support-bot', 'support', 'GET', 'http://payments.internal/v1/refunds/r-1'],
  ['support-bot', 'support', 'POST', 'http://payments.internal/v1/refunds', { order: 'o-1', amount: 120 }],
  ['support-bot', 'support', 'POST', 'http://payments.internal/v1/refunds', { order: 'o-2', amount: 80 }],
  ['support-bot', 'support', 'POST', 'http://payments.internal/v1/refunds', { order: 'o-3', amount: 499 }],
  ['support-bot', 'support', 'POST', 'http://payments.internal/v1/refunds', { order: 'o-4', amount: 900 }],
  ['support-bot', 'support', 'GET', 'http://hr.internal/v1/employees'],
  ['support-bot', 'support', 'GET', 'http://crm.internal/v1/customers/c-1'],
  ['cs-bot', 'customer-service', 'GET', 'http://crm.internal/v1/customers/c-2'],
  ['cs-bot', 'customer-service', 'GET', 'http://hr.internal/v1/employees'],
  ['cs-bot', 'customer-service', 'GET', 'http://payments.internal/v1/refunds/r-2'],
  ['trader-1', 'trading', 'POST', 'http://orders.internal/v1/orders', { symbol: 'ACME', quantity: 10, price: 100 }],
  ['hr-bot', 'hr', 'GET', 'http://hr.internal/v1/employees/e-1'],
  ['unknown-bot', '', 'GET', 'http://payments.internal/v1/refunds/r-3'],
];

function seal(record: Record<string, unknown>, prev: string): { line: string; hash: string } {
  const body = { ...record, prev_hash: prev };
  const hash = createHash('sha256').update(JSON.stringify(body)).digest('hex');
  return { line: JSON.stringify({ ...body, hash }), hash };
}

/** Writes a decision log of `rounds` × TRAFFIC decided by the seed bundle; returns the number of decisions. */
export async function recordDecisionLog(out: string, rounds = 1): Promise<number> {
  const bundle = await loadBundle(SEED_BUNDLE);
  const pdp = await createWasmPdp({ bundle, decisionPath: 'tollgate/authz/decision', timeoutMs: 1000 });
  let prev = '0'.repeat(64);
  const lines: string[] = [];
  const genesis = seal(
    { type: 'genesis', timestamp: new Date(Date.UTC(2026, 10, 24)).toISOString(), version: 1 },
    prev,
  );
  lines.push(genesis.line);
  prev = genesis.hash;
  let n = 0;
  for (let round = 0; round < rounds; round++) {
    for (const [agent, role, method, url, body] of TRAFFIC) {
      const input = requestInput(method, url, { id: agent, role }, body === undefined ? '' : JSON.stringify(body));
      const id = randomUUID();
      const d = await pdp.decide(input, id);
      const sealed = seal(
        {
          decision_id: id,
          timestamp: new Date(Date.UTC(2026, 10, 24, 12, 0, n)).toISOString(),
          path: 'tollgate/authz/decision',
          input,
          result: d.result,
          bundles: { tollgate: { revision: d.revision } },
          metrics: { timer_rego_query_eval_ns: d.evalNanos },
        },
        prev,
      );
      lines.push(sealed.line);
      prev = sealed.hash;
      n++;
    }
  }
  await mkdir(join(out, '..'), { recursive: true });
  await writeFile(out, `${lines.join('\n')}\n`);
  return n;
}

/**
 * Builds a candidate from the seed Rego with changed data, as a policy pull request would:
 * support's refund limit 500 → 100 (allow→deny) and support may reach hr.internal (deny→allow).
 */
export async function buildCandidate(revision = 'candidate-1'): Promise<string> {
  const dir = await tempDir('tollgate-candidate-');
  const src = join(dir, 'policies');
  await mkdir(src);
  for (const f of await readdir(join(ROOT, 'policies'))) {
    if (f.endsWith('.rego') && !f.endsWith('_test.rego')) await cp(join(ROOT, 'policies', f), join(src, f));
  }
  const data = JSON.parse(await readFile(join(ROOT, 'policies/data.json'), 'utf8')) as {
    tollgate: { refund_limits: Record<string, number>; role_destinations: Record<string, string[]> };
  };
  data.tollgate.refund_limits.support = 100;
  data.tollgate.role_destinations.support = [...(data.tollgate.role_destinations.support ?? []), 'hr.internal'];
  await writeFile(join(src, 'data.json'), JSON.stringify(data, null, 2));
  const out = join(dir, 'candidate.tar.gz');
  await run(OPA, [
    'build',
    '-t',
    'wasm',
    '-e',
    'tollgate/authz/decision',
    '-e',
    'tollgate/authz/allow',
    '--revision',
    revision,
    '-o',
    out,
    src,
  ]);
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const out = process.argv[2] ?? SAMPLE_LOG;
  const n = await recordDecisionLog(out);
  process.stdout.write(`recorded ${n} decisions to ${out}\n`);
}
