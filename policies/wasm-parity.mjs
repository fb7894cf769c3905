// Evaluates policies/wasm_parity_test.rego's cases with the WebAssembly bundle through
// @open-policy-agent/opa-wasm (the PDP Tollgate wraps) and fails on any decision that
// differs from OPA's Go evaluator. Run by scripts/test-policies.sh:
//   node policies/wasm-parity.mjs <bundle.tar.gz> <expected.json>
// Plain JS, not TypeScript: this is a policy check, outside the app's tsc project.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
const { loadPolicy } = require('@open-policy-agent/opa-wasm');

const [bundlePath, expectedPath] = process.argv.slice(2);
const dir = mkdtempSync(join(tmpdir(), 'tollgate-parity-'));
try {
  execFileSync('tar', ['-xzf', bundlePath, '-C', dir], { stdio: ['ignore', 'ignore', 'ignore'] });
  const policy = await loadPolicy(readFileSync(join(dir, 'policy.wasm')));
  policy.setData(JSON.parse(readFileSync(join(dir, 'data.json'), 'utf8')));
  const cases = JSON.parse(readFileSync(expectedPath, 'utf8'));

  // Object key order is not part of the decision.
  const canonical = (value) =>
    JSON.stringify(value, (_key, v) =>
      v && typeof v === 'object' && !Array.isArray(v)
        ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
        : v,
    );
  let failed = 0;
  for (const [i, { input, decision }] of cases.entries()) {
    const wasm = policy.evaluate(input, 'tollgate/authz/decision')[0]?.result;
    const allow = policy.evaluate(input, 'tollgate/authz/allow')[0]?.result;
    if (canonical(wasm) !== canonical(decision) || allow !== decision.allowed) {
      failed++;
      process.stderr.write(`wasm parity case ${i}: go ${canonical(decision)} wasm ${canonical(wasm)} allow ${allow}\n`);
    }
  }
  if (failed > 0) {
    process.stderr.write(`wasm parity: ${failed} of ${cases.length} decisions differ\n`);
    process.exitCode = 1;
  } else {
    process.stdout.write(`policies: wasm bundle agrees with opa on ${cases.length} decisions\n`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
