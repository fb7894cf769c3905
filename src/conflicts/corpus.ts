/**
 * The inputs conflict detection evaluates both layers on: recorded decision-log inputs
 * and the layers' own test inputs (the seeds), plus inputs generated from the rules'
 * constants. Generation is a heuristic, bounded and deterministic:
 *
 * 1. direct: where a rule compares an input path with a literal (`input.agent.labels.region
 *    == "eu"`), each seed gets that path set to the literal (numbers also ±1 and +0.01);
 * 2. numbers: every numeric leaf of a seed's body or MCP call (a JSON number or a plain
 *    decimal string) takes each number the rules or data compare with, and ±1, +0.01;
 * 3. vocabulary: every string leaf whose value is one of the rules' or data's strings
 *    (a host, a method, an agent id, a tool) takes each other such string of the same
 *    shape (host-like, upper-case word, other).
 *
 * It finds disagreements around the values the rules name; it proves nothing about
 * inputs it does not generate.
 */
import type { Constant } from './layer.ts';

/** A JSON value. */
type Json = unknown;

const PLAIN_DECIMAL = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?$/;

/** Paths never mutated: transport details no policy decides on, and header echoes. */
const SKIPPED = [
  'attributes.source',
  'attributes.destination',
  'attributes.request.http.id',
  'attributes.request.http.headers',
  'attributes.request.http.body',
  'version',
];

function isObject(value: Json): value is Record<string, Json> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Every scalar leaf of a document with its path. */
function leaves(doc: Json, path: string[] = [], out: { path: string[]; value: Json }[] = []) {
  const dotted = path.join('.');
  if (SKIPPED.some((s) => dotted === s || dotted.startsWith(`${s}.`))) return out;
  if (Array.isArray(doc)) doc.forEach((item, i) => leaves(item, [...path, String(i)], out));
  else if (isObject(doc)) for (const [k, v] of Object.entries(doc)) leaves(v, [...path, k], out);
  else out.push({ path, value: doc });
  return out;
}

/** A copy of doc with path set to value (objects created on the way). */
export function withPath(doc: Json, path: readonly string[], value: Json): Json {
  if (path.length === 0) return value;
  const [head, ...rest] = path as [string, ...string[]];
  if (Array.isArray(doc) && /^\d+$/.test(head)) {
    const copy = [...doc];
    copy[Number(head)] = withPath(doc[Number(head)], rest, value);
    return copy;
  }
  const base = isObject(doc) ? doc : {};
  return { ...base, [head]: withPath(base[head], rest, value) };
}

function shape(s: string): string {
  if (/^[A-Z]+$/.test(s)) return 'upper';
  if (/^[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(s)) return 'host';
  return 'word';
}

/** Names, not prose: no spaces, no format strings, not empty. */
function vocabulary(s: string): boolean {
  return s !== '' && s.length < 100 && !/[\s%]/.test(s);
}

function around(n: number): number[] {
  return [n - 1, n, Math.round((n + 0.01) * 100) / 100, n + 1];
}

/** Options of generateInputs. */
export interface GenerateOptions {
  readonly seeds: readonly Json[];
  readonly constants: readonly Constant[];
  readonly dataValues: readonly (string | number)[];
  /** Most inputs generated (sampled evenly past it). */
  readonly max: number;
}

/** Generates inputs around the constants (deterministic; seeds excluded). */
export function generateInputs(options: GenerateOptions): Json[] {
  const seen = new Set(options.seeds.map((s) => JSON.stringify(s)));
  const numbers = new Set<number>();
  const strings = new Set<string>();
  for (const c of options.constants) {
    if (typeof c.value === 'number') numbers.add(c.value);
    else if (typeof c.value === 'string' && vocabulary(c.value)) strings.add(c.value);
  }
  for (const v of options.dataValues) {
    if (typeof v === 'number') numbers.add(v);
    else if (vocabulary(v)) strings.add(v);
  }
  const direct = options.constants.filter((c) => c.inputPath !== undefined && c.inputPath.length > 0);
  const byShape = new Map<string, string[]>();
  for (const s of [...strings].sort()) {
    const list = byShape.get(shape(s)) ?? [];
    list.push(s);
    byShape.set(shape(s), list);
  }
  const sortedNumbers = [...numbers].sort((a, b) => a - b);
  // Three tiers, in priority order when the budget is short: direct comparisons with the
  // input, then numbers, then vocabulary swaps (by far the most numerous).
  const tiers: Json[][] = [[], [], []];
  const add = (tier: number, doc: Json): void => {
    const key = JSON.stringify(doc);
    if (seen.has(key)) return;
    seen.add(key);
    tiers[tier]!.push(doc);
  };
  for (const seed of options.seeds) {
    for (const c of direct) {
      const values = typeof c.value === 'number' ? around(c.value) : [c.value];
      for (const v of values) add(0, withPath(seed, c.inputPath!, v));
    }
    for (const leaf of leaves(seed)) {
      const top = leaf.path[0];
      const numeric =
        typeof leaf.value === 'number' || (typeof leaf.value === 'string' && PLAIN_DECIMAL.test(leaf.value));
      if (numeric && (top === 'parsed_body' || top === 'mcp')) {
        for (const n of sortedNumbers) for (const v of around(n)) add(1, withPath(seed, leaf.path, v));
      } else if (typeof leaf.value === 'string' && strings.has(leaf.value)) {
        for (const other of byShape.get(shape(leaf.value)) ?? []) {
          if (other !== leaf.value) add(2, withPath(seed, leaf.path, other));
        }
      }
    }
  }
  const out: Json[] = [];
  for (const tier of tiers) {
    const budget = options.max - out.length;
    if (budget <= 0) break;
    if (tier.length <= budget) {
      out.push(...tier);
      continue;
    }
    // Evenly spaced, so every seed and constant keeps some of its inputs.
    const step = tier.length / budget;
    for (let i = 0; i < budget; i++) out.push(tier[Math.floor(i * step)]);
  }
  return out;
}

/** Distinct inputs, first occurrence kept. */
export function distinct(inputs: readonly Json[]): Json[] {
  const out = new Map<string, Json>();
  for (const input of inputs) {
    const key = JSON.stringify(input);
    if (!out.has(key)) out.set(key, input);
  }
  return [...out.values()];
}
