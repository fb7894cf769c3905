/**
 * The PDP chain's own cost without the proxy: CPU time per decision of the seed bundle
 * alone vs the deny-overrides chain (seed bundle central + hybrid EU layer local), both
 * in process, on the bench's request. CPU time (process.cpuUsage), so a busy shared
 * machine slows the run but skews the per-decision figure less than wall-clock latency.
 *
 *   node bench/chain-eval.ts [decisions per variant, default 20000]
 */
import { fileURLToPath } from 'node:url';
import { loadBundle } from '../src/bundle/load.ts';
import { createWasmPdp } from '../src/pdp/wasm.ts';
import { createChainPdp } from '../src/pdp/chain.ts';
import type { Pdp } from '../src/pdp/types.ts';
import type { PolicyInput } from '../src/input/build.ts';

const N = Number(process.argv[2] ?? 20000);
const path = (p: string): string => fileURLToPath(new URL(`../${p}`, import.meta.url));
const seed = (): Promise<Pdp> =>
  loadBundle(path('policies/dist/bundle.tar.gz')).then((bundle) =>
    createWasmPdp({ bundle, decisionPath: 'tollgate/authz/decision', timeoutMs: 1000 }),
  );
const local = await createWasmPdp({
  bundle: await loadBundle(path('policies/hybrid/local.tar.gz')),
  decisionPath: 'tollgate/local/decision',
  timeoutMs: 1000,
});
const input = {
  attributes: {
    request: {
      http: { method: 'GET', host: 'payments.internal', path: '/v1/refunds/r-1', scheme: 'http', headers: {} },
    },
  },
  parsed_path: ['v1', 'refunds', 'r-1'],
  parsed_query: {},
  parsed_body: null,
  truncated_body: false,
  agent: { id: 'support-bot', role: 'support', labels: { region: 'eu' } },
} as unknown as PolicyInput;

const variants: Record<string, Pdp> = {
  local: await seed(),
  // The second stage's own evaluation, alone: the chain's cost is at least this.
  'eu-layer': local,
  chain: createChainPdp({
    stages: [
      { name: 'central', type: 'wasm', pdp: await seed(), timeoutMs: 1000, failureModeAllow: false, selfTimed: true },
      { name: 'local', type: 'wasm', pdp: local, timeoutMs: 1000, failureModeAllow: false, selfTimed: true },
    ],
  }),
};
const results: Record<string, number> = {};
for (const round of [0, 1, 2]) {
  for (const [name, pdp] of Object.entries(variants)) {
    for (let i = 0; i < 2000; i++) await pdp.decide(input, 'warm');
    const cpu = process.cpuUsage();
    for (let i = 0; i < N; i++) {
      const d = await pdp.decide(input, 'd');
      if (!d.allowed && d.applicable !== false) throw new Error(`${name} denied the bench request`);
    }
    const used = process.cpuUsage(cpu);
    const us = (used.user + used.system) / N;
    console.log(`round ${round} ${name.padEnd(5)} ${us.toFixed(1)} us CPU per decision`);
    results[name] = Math.min(results[name] ?? Infinity, us);
  }
}
console.log(
  `best of 3: local ${results.local!.toFixed(1)} us, chain ${results.chain!.toFixed(1)} us: the chain adds ${(results.chain! - results.local!).toFixed(1)} us CPU per decision, of which the EU layer's own evaluation is ${results['eu-layer']!.toFixed(1)} us`,
);
