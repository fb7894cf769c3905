/**
 * A strict reader of the Prometheus text exposition format (0.0.4), for tests: every
 * non-empty line must be a HELP, a TYPE or a sample of a declared family, label values must be
 * escaped as the format says, and no series may appear twice.
 */

/** One sample line, label values unescaped. */
export interface ExpositionSample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*';
// Inside a label value only \\, \" and \n are escapes; a raw newline or quote is invalid.
const VALUE = '(?:[^"\\\\\\n]|\\\\[\\\\"n])*';
const SAMPLE = new RegExp(
  `^(${NAME})(?:\\{((?:${LABEL}="${VALUE}")(?:,${LABEL}="${VALUE}")*,?)?\\})? (\\S+)(?: -?\\d+)?$`,
);
const PAIR = new RegExp(`(${LABEL})="(${VALUE})"`, 'g');
const SUFFIXES: Record<string, readonly string[]> = {
  histogram: ['_bucket', '_sum', '_count'],
  summary: ['', '_sum', '_count'],
};

/** Parses and validates an exposition; throws naming the first invalid line. */
export function parseExposition(text: string): ExpositionSample[] {
  const types = new Map<string, string>();
  const seen = new Set<string>();
  const samples: ExpositionSample[] = [];
  const lines = text.split('\n');
  if (lines.at(-1) !== '') throw new Error('exposition does not end with a newline');
  lines.pop();
  for (const line of lines) {
    // The format ignores empty lines (prom-client puts one between families).
    if (line === '') continue;
    let m: RegExpExecArray | null;
    if ((m = new RegExp(`^# HELP (${NAME}) (.*)$`).exec(line)) !== null) continue;
    if ((m = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`).exec(line)) !== null) {
      if (types.has(m[1]!)) throw new Error(`second TYPE for ${m[1]}`);
      types.set(m[1]!, m[2]!);
      continue;
    }
    if (line.startsWith('#')) throw new Error(`invalid comment line: ${line}`);
    m = SAMPLE.exec(line);
    if (m === null) throw new Error(`invalid sample line: ${JSON.stringify(line)}`);
    const name = m[1]!;
    const family = [...types.entries()].find(([f, type]) => (SUFFIXES[type] ?? ['']).some((s) => name === f + s));
    if (family === undefined) throw new Error(`sample of an undeclared family: ${line}`);
    const value = m[3]!;
    if (!/^(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Inf|NaN)$/.test(value))
      throw new Error(`invalid value: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (m[2] ?? '').matchAll(PAIR)) {
      if (pair[1]! in labels) throw new Error(`label ${pair[1]} twice: ${line}`);
      labels[pair[1]!] = pair[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    const key = `${name}{${Object.entries(labels)
      .sort()
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join(',')}}`;
    if (seen.has(key)) throw new Error(`series twice: ${key}`);
    seen.add(key);
    samples.push({ name, labels, value: Number(value.replace('Inf', 'Infinity')) });
  }
  return samples;
}

/** Distinct values of one label among the samples of one metric name. */
export function labelValues(samples: readonly ExpositionSample[], name: string, label: string): Set<string> {
  return new Set(samples.filter((s) => s.name === name && label in s.labels).map((s) => s.labels[label]!));
}

/** Sum of the values of the samples of one name whose labels include `labels`. */
export function sum(samples: readonly ExpositionSample[], name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}
