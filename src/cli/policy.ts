/**
 * `tollgate policy conflicts`: where a central and a local policy layer disagree, at
 * authoring time. Both layers are evaluated with the real opa on one corpus (recorded
 * decision-log inputs, the layers' own test inputs, inputs generated around the rules'
 * constants: src/conflicts/), and the report lists the disagreements and the shadowed
 * local rules (src/conflicts/analyze.ts defines both). Exit status: 0 no failing
 * finding, 2 conflicts or shadowed rules, 1 error. A CI step (policies/ci.sh) runs it.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { TollgateError } from '../errors.ts';
import { analyze, outcomeOf, type Analysis, type LayerAnswer } from '../conflicts/analyze.ts';
import { distinct, generateInputs } from '../conflicts/corpus.ts';
import { captureTestInputs, evaluateLayer, prepareLayer, removeLayer, type Layer } from '../conflicts/layer.ts';
import { readDecisionLog } from '../replay/read-log.ts';

/** Help text of `tollgate policy`. */
export const POLICY_HELP = `Usage: tollgate policy conflicts --central A --local B [options]

Evaluates a central and a local policy layer (each a Rego policy directory or an OPA
bundle .tar.gz with its Rego sources) on the same inputs and reports where they disagree
and which local rules can never change a decision (shadowed). Inputs: recorded decisions
(--inputs), the layers' opa test cases, and inputs generated around the constants the
rules compare with. Needs the opa binary (.tools/bin/opa or --opa).

      --central P         the central layer (asked first in the chain)
      --local P           the local layer
      --inputs F          a decision log (JSON Lines) whose inputs are evaluated too; repeatable
      --central-path P    decision path of the central layer (default: the bundle manifest's
      --local-path P      entrypoint, else tollgate/authz/decision)
      --combine R         deny-overrides (default) or first-applicable, as the PDP chain
      --fail-on W         overridden (default: what the rule overrides), any, or none
      --max-generated N   most generated inputs (default 5000)
      --format F          text (default) or json
      --opa F             the opa binary
      --ignore NAME       leave files or directories of this name out of both layers
                          (opa's --ignore; "*" matches any run); repeatable

Exit status: 0 nothing failing, 2 failing conflicts or shadowed rules, 1 error.`;

/** Parsed options. */
export interface ConflictsOptions {
  readonly central: string;
  readonly local: string;
  readonly inputs: readonly string[];
  readonly centralPath?: string;
  readonly localPath?: string;
  readonly combine: 'deny-overrides' | 'first-applicable';
  readonly failOn: 'overridden' | 'any' | 'none';
  readonly maxGenerated: number;
  readonly format: 'text' | 'json';
  readonly opa: string;
  /** Names left out of policy directories (opa's --ignore), e.g. a nested layer. */
  readonly ignore: readonly string[];
}

function usage(message: string): TollgateError {
  return new TollgateError('TG_ERR_INPUT_INVALID', `${message}; see tollgate policy --help`);
}

/** The opa next to this checkout (.tools/bin/opa), else opa on PATH. */
function defaultOpa(): string {
  const local = fileURLToPath(new URL('../../.tools/bin/opa', import.meta.url));
  return existsSync(local) ? local : 'opa';
}

/** Parses `policy conflicts` arguments. */
export function parsePolicyArgs(args: readonly string[]): ConflictsOptions {
  const [sub, ...rest] = args;
  if (sub !== 'conflicts') throw usage(`unknown policy command "${sub ?? ''}"`);
  const { values } = parseArgs({
    args: rest,
    options: {
      central: { type: 'string' },
      local: { type: 'string' },
      inputs: { type: 'string', multiple: true },
      'central-path': { type: 'string' },
      'local-path': { type: 'string' },
      combine: { type: 'string', default: 'deny-overrides' },
      'fail-on': { type: 'string', default: 'overridden' },
      'max-generated': { type: 'string', default: '5000' },
      format: { type: 'string', default: 'text' },
      opa: { type: 'string' },
      ignore: { type: 'string', multiple: true },
    },
  });
  if (values.central === undefined || values.local === undefined) throw usage('--central and --local are required');
  if (values.combine !== 'deny-overrides' && values.combine !== 'first-applicable')
    throw usage(`--combine must be deny-overrides or first-applicable, got "${values.combine}"`);
  if (!['overridden', 'any', 'none'].includes(values['fail-on']))
    throw usage(`--fail-on must be overridden, any or none, got "${values['fail-on']}"`);
  const max = Number(values['max-generated']);
  if (!Number.isInteger(max) || max < 0) throw usage('--max-generated must be a non-negative integer');
  if (values.format !== 'text' && values.format !== 'json') throw usage('--format must be text or json');
  return {
    central: values.central,
    local: values.local,
    inputs: values.inputs ?? [],
    ...(values['central-path'] === undefined ? {} : { centralPath: values['central-path'] }),
    ...(values['local-path'] === undefined ? {} : { localPath: values['local-path'] }),
    combine: values.combine,
    failOn: values['fail-on'] as ConflictsOptions['failOn'],
    maxGenerated: max,
    format: values.format,
    opa: values.opa ?? defaultOpa(),
    ignore: values.ignore ?? [],
  };
}

function get(doc: unknown, ...path: string[]): unknown {
  let node = doc;
  for (const key of path) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

/** One line naming an input: agent, call, MCP tool, amount-like body fields. */
export function describeInput(input: unknown): string {
  const http = get(input, 'attributes', 'request', 'http');
  const labels = get(input, 'agent', 'labels');
  const labelText =
    typeof labels === 'object' && labels !== null && Object.keys(labels).length > 0 ? ` ${JSON.stringify(labels)}` : '';
  const parts = [
    `${String(get(input, 'agent', 'id') ?? '-')} (${String(get(input, 'agent', 'role') ?? '-')})${labelText}`,
    `${String(get(http, 'method') ?? '-')} ${String(get(http, 'host') ?? '-')}${String(get(http, 'path') ?? '')}`,
  ];
  const tool = get(input, 'mcp', 'tool', 'name');
  if (tool !== undefined)
    parts.push(`MCP ${String(tool)} ${JSON.stringify(get(input, 'mcp', 'tool', 'arguments') ?? {})}`);
  const body = get(input, 'parsed_body');
  if (tool === undefined && body !== undefined && body !== null)
    parts.push(`body ${JSON.stringify(body).slice(0, 120)}`);
  if (get(input, 'truncated_body') === true) parts.push('(body truncated)');
  return parts.join('  ');
}

/** The report as a JSON document. */
export interface ConflictsReport {
  readonly central: { source: string; decision_path: string };
  readonly local: { source: string; decision_path: string };
  readonly combine: string;
  readonly corpus: { recorded: number; tests: number; generated: number; distinct: number };
  readonly conflicts: unknown[];
  readonly shadowed: Analysis['shadowed'];
  readonly unexercised: Analysis['unexercised'];
  readonly counts: Analysis['counts'];
  readonly notes: string[];
  readonly failing: number;
}

async function recordedInputs(files: readonly string[]): Promise<unknown[]> {
  const out: unknown[] = [];
  for (const file of files) {
    const counters = { lines: 0, skippedNoInput: 0, unreadable: 0 };
    for await (const record of readDecisionLog(file, counters)) out.push(record.input);
  }
  return out;
}

function answers(evaluations: Awaited<ReturnType<typeof evaluateLayer>>): LayerAnswer[] {
  return evaluations.map((e) => ({ ...outcomeOf(e.decision), fired: e.fired }));
}

/** Runs the analysis; returns the report. */
export async function findConflicts(options: ConflictsOptions): Promise<ConflictsReport> {
  const layers: Layer[] = [];
  try {
    const central = await prepareLayer({
      name: 'central',
      source: options.central,
      opa: options.opa,
      ignore: options.ignore,
      ...(options.centralPath === undefined ? {} : { decisionPath: options.centralPath }),
    });
    layers.push(central);
    const local = await prepareLayer({
      name: 'local',
      source: options.local,
      opa: options.opa,
      ignore: options.ignore,
      ...(options.localPath === undefined ? {} : { decisionPath: options.localPath }),
    });
    layers.push(local);
    const notes: string[] = [];
    const recorded = await recordedInputs(options.inputs);
    const tests: unknown[] = [];
    for (const layer of [central, local]) {
      const captured = await captureTestInputs(layer, options.opa);
      tests.push(...captured.inputs);
      if (captured.note !== undefined) notes.push(captured.note);
    }
    // Sorted: opa runs tests in parallel, and the report must not depend on their order.
    const seeds = distinct([...recorded, ...tests])
      .map((input) => [JSON.stringify(input), input] as const)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, input]) => input);
    if (seeds.length === 0) notes.push('no recorded or test inputs: nothing to generate inputs from');
    const generated = generateInputs({
      seeds,
      constants: [...central.constants, ...local.constants],
      dataValues: [...central.dataValues, ...local.dataValues],
      max: options.maxGenerated,
    });
    const corpus = [...seeds, ...generated];
    const [c, l] = await Promise.all([
      evaluateLayer(central, corpus, options.opa),
      evaluateLayer(local, corpus, options.opa),
    ]);
    const analysis = analyze({
      combine: options.combine,
      failOn: options.failOn,
      central: answers(c),
      local: answers(l),
      localRules: local.rules,
    });
    const failing = analysis.conflicts.filter((g) => g.failing).length + analysis.shadowed.length;
    return {
      central: { source: options.central, decision_path: central.decisionPath },
      local: { source: options.local, decision_path: local.decisionPath },
      combine: options.combine,
      corpus: { recorded: recorded.length, tests: tests.length, generated: generated.length, distinct: corpus.length },
      conflicts: analysis.conflicts.map((g) => ({
        kind: g.kind,
        failing: g.failing,
        count: g.count,
        central: g.centralOutcome,
        local: g.localOutcome,
        central_reasons: g.centralReasons,
        local_reasons: g.localReasons,
        example: describeInput(corpus[g.example]),
        example_input: corpus[g.example],
      })),
      shadowed: analysis.shadowed,
      unexercised: analysis.unexercised,
      counts: analysis.counts,
      notes,
      failing,
    };
  } finally {
    await Promise.all(layers.map(removeLayer));
  }
}

const KIND_TEXT: Record<string, string> = {
  'local-allows-central-denies': 'local allows what central denies',
  'local-denies-central-allows': 'local denies what central allows',
};

/** The report for humans. */
export function conflictsText(report: ConflictsReport): string {
  const lines = [
    `policy conflicts: central ${report.central.source} (${report.central.decision_path}), local ${report.local.source} (${report.local.decision_path}), ${report.combine}`,
    `inputs: ${report.corpus.recorded} recorded, ${report.corpus.tests} from tests, ${report.corpus.generated} generated: ${report.corpus.distinct} distinct; ` +
      `local applies to ${report.counts.inputs - report.counts.localNotApplicable}, central to ${report.counts.inputs - report.counts.centralNotApplicable}`,
  ];
  for (const note of report.notes) lines.push(`note: ${note}`);
  for (const g of report.conflicts as {
    kind: string;
    failing: boolean;
    count: number;
    central: string;
    local: string;
    central_reasons: string[];
    local_reasons: string[];
    example: string;
  }[]) {
    const said = (outcome: string, reasons: string[]): string =>
      `${outcome}${reasons.length > 0 ? `: ${reasons.join('; ')}` : ''}`;
    lines.push(
      '',
      `${g.failing ? 'CONFLICT' : 'restricts'}  ${KIND_TEXT[g.kind] ?? g.kind}: ${g.count} input${g.count === 1 ? '' : 's'}`,
      `  e.g.     ${g.example}`,
      `  central  ${said(g.central, g.central_reasons)}`,
      `  local    ${said(g.local, g.local_reasons)}`,
    );
  }
  for (const s of report.shadowed) lines.push('', `SHADOWED  local rule ${s.rule}  ${s.head}`, `  ${s.why}`);
  for (const u of report.unexercised)
    lines.push('', `unexercised  local rule ${u.rule}  ${u.head}`, '  fired on no input (add a test that reaches it)');
  const failingConflicts = (report.conflicts as { failing: boolean }[]).filter((g) => g.failing).length;
  lines.push(
    '',
    report.failing === 0
      ? 'policy conflicts: none failing'
      : `policy conflicts: ${failingConflicts} conflict group${failingConflicts === 1 ? '' : 's'}, ${report.shadowed.length} shadowed rule${report.shadowed.length === 1 ? '' : 's'}`,
  );
  return `${lines.join('\n')}\n`;
}

/** Runs `tollgate policy ...`; returns the exit status. */
export async function runPolicyCommand(options: ConflictsOptions & { out: (text: string) => void }): Promise<number> {
  const report = await findConflicts(options);
  options.out(options.format === 'json' ? `${JSON.stringify(report, null, 2)}\n` : conflictsText(report));
  return report.failing > 0 ? 2 : 0;
}
