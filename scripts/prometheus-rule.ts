/**
 * Writes deploy/prometheus/tollgate-prometheusrule.yaml (a PrometheusRule for the
 * Prometheus Operator) from deploy/prometheus/tollgate-rules.yaml, so the two carry the
 * same groups. `node scripts/prometheus-rule.ts` regenerates it; `--check` exits 1 when
 * the committed file differs (test/deploy/prometheus-rules.test.ts runs the check).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';

const dir = fileURLToPath(new URL('../deploy/prometheus/', import.meta.url));
const SOURCE = `${dir}tollgate-rules.yaml`;
const TARGET = `${dir}tollgate-prometheusrule.yaml`;

/** The PrometheusRule document for a rules file's text. */
export function prometheusRule(rulesText: string): string {
  const rules = parse(rulesText) as { groups: unknown[] };
  const doc = {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: {
      name: 'tollgate',
      labels: { 'app.kubernetes.io/name': 'tollgate', 'app.kubernetes.io/component': 'alerting' },
    },
    spec: { groups: rules.groups },
  };
  return `# Generated from tollgate-rules.yaml by scripts/prometheus-rule.ts: do not edit.\n# The Prometheus Operator's ruleSelector must match its labels (e.g. add release: <your-stack>).\n${stringify(doc, { lineWidth: 0 })}`;
}

if (import.meta.main) {
  const text = prometheusRule(readFileSync(SOURCE, 'utf8'));
  if (process.argv.includes('--check')) {
    if (readFileSync(TARGET, 'utf8') !== text) {
      process.stderr.write(`${TARGET} is out of date: run node scripts/prometheus-rule.ts\n`);
      process.exitCode = 1;
    }
  } else writeFileSync(TARGET, text);
}
