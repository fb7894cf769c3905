/**
 * One policy layer as conflict detection sees it: its Rego sources and data copied into
 * a private work directory (from a policy directory or an OPA bundle archive), parsed
 * with `opa parse`, and evaluated with the real `opa eval` over a whole corpus of inputs
 * in one process. The Go evaluator is the reference OPA, needs no build step, and reads
 * the rule bodies' source text, which the instrumentation below needs; the WASM build
 * would hide both.
 *
 * Instrumentation: each decision rule definition (a rule named deny, allow, decision,
 * violation, permit or forbid, with a body) gets a copy of its body as a definition of a
 * partial set `__tollgate_fired`, in the same package with the same imports; so one
 * evaluation reports the decision and which of those rules fired (their bodies held).
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, writeFile, stat, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { extract } from 'tar-stream';
import { TollgateError } from '../errors.ts';

/** Rule names whose definitions are analysed for shadowing. */
export const DECISION_RULE_NAMES: readonly string[] = ['deny', 'allow', 'decision', 'violation', 'permit', 'forbid'];

/** One analysed rule definition. */
export interface RuleDefinition {
  /** "file:row" (file relative to the layer root). */
  readonly id: string;
  readonly name: string;
  readonly file: string;
  readonly row: number;
  /** The rule's first line of source, for reports. */
  readonly head: string;
}

/** A scalar compared against in a rule body, with the input path it is compared with (when direct). */
export interface Constant {
  readonly value: string | number | boolean;
  /** input.a.b.c compared directly against the value, as ["a","b","c"]; absent when the other side is not input. */
  readonly inputPath?: readonly string[];
}

/** A layer ready to evaluate. */
export interface Layer {
  readonly name: string;
  readonly source: string;
  /** The decision path, e.g. tollgate/authz/decision. */
  readonly decisionPath: string;
  readonly rules: readonly RuleDefinition[];
  readonly constants: readonly Constant[];
  /** Scalars found in the layer's data documents. */
  readonly dataValues: readonly (string | number)[];
  /** The directory holding the layer's test files too (for input capture), when it has tests. */
  readonly testDir: string | undefined;
  /** The layer's source files relative to its root (Rego, data). */
  readonly workDir: string;
}

/** One evaluation: the decision path's value (undefined when it had none) and the rules that fired. */
export interface Evaluation {
  readonly decision: unknown;
  readonly fired: readonly string[];
}

function fail(message: string, cause?: unknown): TollgateError {
  return new TollgateError('TG_ERR_INPUT_INVALID', message, cause === undefined ? undefined : { cause });
}

/** Runs the opa binary: its stdout, stderr and exit code. */
function execOpa(opa: string, args: string[], cwd?: string): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((resolve, reject) => {
    execFile(opa, args, { cwd, maxBuffer: 1 << 30 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') reject(fail(`cannot run ${opa}: ${err.message}`, err));
      else resolve({ stdout, stderr, code: err ? Number(err.code) : 0 });
    });
  });
}

/** Runs the opa binary; rejects with its stderr when it exits non-zero. */
export async function runOpa(opa: string, args: string[], cwd?: string): Promise<string> {
  const { stdout, stderr, code } = await execOpa(opa, args, cwd);
  if (code !== 0) throw fail(`opa ${args[0]} failed: ${(stderr || stdout).trim().slice(0, 2000)}`);
  return stdout;
}

/** The files of a .tar.gz bundle. */
async function archiveFiles(path: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  const tar = extract();
  const done = new Promise<void>((resolve, reject) => {
    tar.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => chunks.push(c as Buffer));
      stream.on('end', () => {
        if (header.type === 'file') files.set(header.name.replace(/^\/+/, ''), Buffer.concat(chunks));
        next();
      });
    });
    tar.on('finish', resolve);
    tar.on('error', reject);
  });
  tar.end(gunzipSync(await readFile(path)));
  await done;
  return files;
}

/** A file or directory name matches an --ignore pattern (opa's: a name, "*" matching any run). */
function ignored(name: string, patterns: readonly string[]): boolean {
  return patterns.some((p) =>
    new RegExp(`^${p.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`).test(name),
  );
}

async function walk(dir: string, root = dir, ignore: readonly string[] = []): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.') || entry.name === 'dist' || entry.name === 'node_modules') continue;
    if (ignored(entry.name, ignore)) continue;
    const full = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await walk(full, root, ignore)));
    else out.push(relative(root, full));
  }
  return out;
}

const isRego = (f: string): boolean => f.endsWith('.rego');
const isTest = (f: string): boolean => f.endsWith('_test.rego');
const isData = (f: string): boolean => /(^|\/)data\.json$/.test(f);

/** Copies a layer's sources into dir/src (no tests) and dir/tests (with tests); returns the manifest's entrypoint if any. */
async function materialise(
  source: string,
  dir: string,
  ignore: readonly string[],
): Promise<{ entrypoint?: string; hasTests: boolean }> {
  const src = join(dir, 'src');
  const tests = join(dir, 'tests');
  let entrypoint: string | undefined;
  let hasTests = false;
  const put = async (rel: string, content: Buffer | string): Promise<void> => {
    for (const root of isTest(rel) ? [tests] : [src, tests]) {
      await mkdir(dirname(join(root, rel)), { recursive: true });
      await writeFile(join(root, rel), content);
    }
  };
  let info;
  try {
    info = await stat(source);
  } catch (err) {
    throw fail(`cannot read the policy layer ${source}`, err);
  }
  if (info.isDirectory()) {
    for (const rel of await walk(source, source, ignore)) {
      if (!isRego(rel) && !isData(rel)) continue;
      if (isTest(rel)) hasTests = true;
      await put(rel, await readFile(join(source, rel)));
    }
  } else {
    let files: Map<string, Buffer>;
    try {
      files = await archiveFiles(source);
    } catch (err) {
      throw fail(`${source} is neither a policy directory nor a readable .tar.gz bundle`, err);
    }
    const manifest = files.get('.manifest');
    if (manifest !== undefined) {
      try {
        const doc = JSON.parse(manifest.toString('utf8')) as { wasm?: { entrypoint?: string }[] };
        entrypoint = doc.wasm?.[0]?.entrypoint;
      } catch {
        // No readable manifest: the decision path must be given.
      }
    }
    for (const [rel, content] of files) {
      if (!isRego(rel) && !isData(rel)) continue;
      if (isTest(rel)) hasTests = true;
      await put(rel, content);
    }
  }
  const sources = (await walk(src)).filter(isRego);
  if (sources.length === 0)
    throw fail(`${source} holds no Rego sources (a WebAssembly-only bundle?): pass the policy directory instead`);
  return { ...(entrypoint === undefined ? {} : { entrypoint }), hasTests };
}

interface AstTerm {
  type: string;
  value: unknown;
  location?: { row: number; text?: string };
}

interface AstRule {
  default?: boolean;
  head: { name?: string; ref?: AstTerm[]; location?: { row: number; text?: string } };
  body: { terms: unknown; location?: { row: number; text?: string } }[];
  location?: { row: number; file?: string; text?: string };
}

interface AstModule {
  package: { path: AstTerm[] };
  imports?: { path: AstTerm; alias?: string; location?: { text?: string } }[];
  rules?: AstRule[];
}

const decode = (text: string | undefined): string =>
  text === undefined ? '' : Buffer.from(text, 'base64').toString('utf8');

function ruleName(rule: AstRule): string {
  if (rule.head.name !== undefined && rule.head.name !== '') return rule.head.name;
  const first = rule.head.ref?.[0];
  return typeof first?.value === 'string' ? first.value : '';
}

/** Comparison built-ins whose literal operand is a constant worth generating inputs around. */
const COMPARISONS = new Set(['equal', 'neq', 'lt', 'lte', 'gt', 'gte', 'startswith', 'endswith', 'internal.member_2']);

function refPath(term: AstTerm): string[] | undefined {
  if (term.type !== 'ref' || !Array.isArray(term.value)) return undefined;
  const parts = term.value as AstTerm[];
  if (parts[0]?.type !== 'var' || parts[0].value !== 'input') return undefined;
  const path: string[] = [];
  for (const part of parts.slice(1)) {
    if (part.type !== 'string') return undefined;
    path.push(String(part.value));
  }
  return path;
}

function scalar(term: AstTerm): string | number | boolean | undefined {
  if (term.type === 'string' || term.type === 'number' || term.type === 'boolean') {
    const v = term.value;
    return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? v : undefined;
  }
  return undefined;
}

/** Walks an AST node, collecting comparison constants. */
function collectConstants(node: unknown, out: Constant[]): void {
  if (Array.isArray(node)) {
    // A call expression: [operator ref, ...operands].
    const op = node[0] as AstTerm | undefined;
    const name =
      op?.type === 'ref' && Array.isArray(op.value)
        ? (op.value as AstTerm[]).map((p) => String(p.value)).join('.')
        : undefined;
    if (name !== undefined && COMPARISONS.has(name) && node.length >= 3) {
      const [a, b] = [node[1] as AstTerm, node[2] as AstTerm];
      for (const [lit, other] of [
        [a, b],
        [b, a],
      ] as const) {
        const value = scalar(lit);
        if (value !== undefined) {
          const inputPath = refPath(other);
          out.push({ value, ...(inputPath === undefined ? {} : { inputPath }) });
        }
        // x in ["a", "b"]: every element is a constant.
        if (name === 'internal.member_2' && lit === b && (b.type === 'array' || b.type === 'set')) {
          const inputPath = refPath(a);
          for (const el of b.value as AstTerm[]) {
            const v = scalar(el);
            if (v !== undefined) out.push({ value: v, ...(inputPath === undefined ? {} : { inputPath }) });
          }
        }
      }
    }
    for (const item of node) collectConstants(item, out);
    return;
  }
  if (typeof node === 'object' && node !== null) {
    for (const value of Object.values(node)) collectConstants(value, out);
  }
}

function dataScalars(doc: unknown, out: (string | number)[]): void {
  if (typeof doc === 'string' || typeof doc === 'number') out.push(doc);
  else if (Array.isArray(doc)) for (const item of doc) dataScalars(item, out);
  else if (typeof doc === 'object' && doc !== null) {
    for (const [key, value] of Object.entries(doc)) {
      out.push(key);
      dataScalars(value, out);
    }
  }
}

/** Prepares a layer: copies its sources, parses them, writes the instrumentation. */
export async function prepareLayer(options: {
  readonly name: string;
  readonly source: string;
  readonly decisionPath?: string;
  readonly opa: string;
  /** File and directory names left out of a policy directory (opa's --ignore). */
  readonly ignore?: readonly string[];
}): Promise<Layer> {
  const dir = await mkdtemp(join(tmpdir(), `tollgate-conflicts-${options.name}-`));
  const { entrypoint, hasTests } = await materialise(options.source, dir, options.ignore ?? []);
  const decisionPath = options.decisionPath ?? entrypoint ?? 'tollgate/authz/decision';
  const src = join(dir, 'src');
  const rules: RuleDefinition[] = [];
  const constants: Constant[] = [];
  const instrumentation = new Map<string, string[]>();
  let decisionRuleFound = false;
  for (const rel of (await walk(src)).filter(isRego)) {
    const text = await readFile(join(src, rel), 'utf8');
    const module = JSON.parse(
      await runOpa(options.opa, ['parse', '--format', 'json', '--json-include', 'locations,-comments', rel], src),
    ) as AstModule;
    const pkg = module.package.path
      .slice(1)
      .map((p) => String(p.value))
      .join('.');
    const lines = text.split('\n');
    const bodies: string[] = [];
    for (const rule of module.rules ?? []) {
      collectConstants(rule.body, constants);
      collectConstants(rule.head, constants);
      const name = ruleName(rule);
      if (`${pkg.split('.').join('/')}/${name}` === decisionPath) decisionRuleFound = true;
      if (rule.default === true || !DECISION_RULE_NAMES.includes(name)) continue;
      const row = rule.location?.row ?? rule.head.location?.row ?? 0;
      const exprs = rule.body.map((e) => decode(e.location?.text)).filter((e) => e !== '');
      if (exprs.length === 0 || exprs.length !== rule.body.length) continue;
      const id = `${rel}:${row}`;
      rules.push({ id, name, file: rel, row, head: (lines[row - 1] ?? '').trim() });
      bodies.push(`__tollgate_fired contains ${JSON.stringify(id)} if {\n${exprs.map((e) => `\t${e}`).join('\n')}\n}`);
    }
    if (bodies.length === 0) continue;
    const imports = (module.imports ?? [])
      .map((i) => {
        const path = decode(i.path.location?.text);
        return path === '' ? '' : `import ${path}${i.alias ? ` as ${i.alias}` : ''}`;
      })
      .filter((i) => i !== '');
    instrumentation.set(`__tollgate_instrument_${instrumentation.size}.rego`, [
      `package ${pkg}`,
      ...imports,
      ...bodies,
    ]);
  }
  if (!decisionRuleFound) {
    throw fail(
      `${options.source}: no rule ${decisionPath.split('/').at(-1)} in package ${decisionPath.split('/').slice(0, -1).join('.')} ` +
        '(a bundle built with -t wasm holds its entrypoint rule only inside policy.wasm): pass the policy directory, or the right decision path',
    );
  }
  for (const [file, parts] of instrumentation) await writeFile(join(src, file), `${parts.join('\n\n')}\n`);
  const dataValues: (string | number)[] = [];
  for (const rel of (await walk(src)).filter(isData)) {
    try {
      dataScalars(JSON.parse(await readFile(join(src, rel), 'utf8')), dataValues);
    } catch (err) {
      throw fail(`${options.source}: ${rel} is not JSON`, err);
    }
  }
  return {
    name: options.name,
    source: options.source,
    decisionPath,
    rules,
    constants,
    dataValues,
    testDir: hasTests ? join(dir, 'tests') : undefined,
    workDir: dir,
  };
}

/** Evaluates the layer's decision and fired rules on every input, in one opa process. */
export async function evaluateLayer(layer: Layer, inputs: readonly unknown[], opa: string): Promise<Evaluation[]> {
  const corpus = join(layer.workDir, 'corpus.json');
  await writeFile(corpus, JSON.stringify({ __tollgate_conflicts: { inputs } }));
  const ref = `data.${layer.decisionPath.split('/').join('.')}`;
  // Each element: [decision values (0 or 1), fired rule ids]; a comprehension is defined even
  // when the decision is not, so every input keeps its place.
  const query = `[[d, f] | some x in data.__tollgate_conflicts.inputs; d := [y | y := ${ref}] with input as x; f := [z | some z in data.__tollgate_gather.fired] with input as x]`;
  // The fired sets of every instrumented package, gathered by one rule.
  const packages = new Set<string>();
  for (const file of await readdir(join(layer.workDir, 'src'))) {
    if (!file.startsWith('__tollgate_instrument_')) continue;
    const first = (await readFile(join(layer.workDir, 'src', file), 'utf8')).split('\n')[0] ?? '';
    packages.add(`data.${first.replace(/^package /, '')}`);
  }
  const gather = [
    'package __tollgate_gather',
    '',
    ...[...packages].map((p) => `fired contains f if {\n\tsome f in ${p}.__tollgate_fired\n}`),
  ];
  await writeFile(join(layer.workDir, 'gather.rego'), `${gather.join('\n\n')}\n`);
  const out = await runOpa(opa, [
    'eval',
    '--format',
    'json',
    '-d',
    join(layer.workDir, 'src'),
    '-d',
    join(layer.workDir, 'gather.rego'),
    '-d',
    corpus,
    query,
  ]);
  const doc = JSON.parse(out) as { result?: { expressions?: { value?: unknown }[] }[] };
  const value = doc.result?.[0]?.expressions?.[0]?.value;
  if (!Array.isArray(value) || value.length !== inputs.length)
    throw fail(`opa eval did not return one decision per input for ${layer.source}`);
  return (value as [unknown[], string[]][]).map(([decisions, fired]) => ({
    decision: decisions[0],
    fired: [...fired].sort(),
  }));
}

/** Removes a layer's work directory. */
export async function removeLayer(layer: Layer): Promise<void> {
  await rm(layer.workDir, { recursive: true, force: true });
}

/**
 * The inputs a layer's own `opa test` cases evaluate its decision with: a copy of the
 * layer with its tests gets one more definition of the decision rule that prints the
 * input as JSON and never holds, then `opa test --format json` reports every print.
 * Decision rules that are not complete rules (a function, a partial set) cannot take
 * that definition: then no test inputs are collected.
 */
export async function captureTestInputs(layer: Layer, opa: string): Promise<{ inputs: unknown[]; note?: string }> {
  if (layer.testDir === undefined) return { inputs: [] };
  const parts = layer.decisionPath.split('/');
  const rule = parts.at(-1)!;
  const capture = [
    `package ${parts.slice(0, -1).join('.')}`,
    '',
    `${rule} := {"__tollgate_capture": true} if {`,
    '\tprint("__TOLLGATE_INPUT__", json.marshal(input))',
    '\tfalse',
    '}',
    '',
  ].join('\n');
  await writeFile(join(layer.testDir, '__tollgate_capture.rego'), capture);
  // Failing tests still print their JSON report on stdout (exit 2); a compile error does not.
  const { stdout: out, stderr } = await execOpa(opa, ['test', '--format', 'json', layer.testDir]);
  if (!out.trimStart().startsWith('['))
    return { inputs: [], note: `no test inputs from ${layer.source}: ${(stderr || out).trim().slice(0, 300)}` };
  const inputs: unknown[] = [];
  for (const test of JSON.parse(out) as { output?: string }[]) {
    if (test.output === undefined) continue;
    for (const line of Buffer.from(test.output, 'base64').toString('utf8').split('\n')) {
      if (!line.startsWith('__TOLLGATE_INPUT__ ')) continue;
      // print writes json.marshal's string unquoted: the rest of the line is the input's JSON.
      try {
        inputs.push(JSON.parse(line.slice('__TOLLGATE_INPUT__ '.length)));
      } catch {
        // "<undefined>" (a test without input) or a value that is not JSON: skipped.
      }
    }
  }
  return { inputs };
}
