/**
 * Where two policy layers disagree, and which local rules never matter (pure: the
 * evaluations come from layer.ts). Definitions, in the terms of a PDP chain whose
 * central stage comes first (src/pdp/chain.ts):
 *
 * - outcome of a layer on an input: allow or deny (the decision path's value, a boolean
 *   or a result object's `allowed`), n/a (`"applicable": false`), or error (undefined or
 *   not a result), which counts as deny, as a stage that fails closed does.
 * - disagreement: both layers apply and one allows while the other denies.
 *   "local allows, central denies": under deny-overrides the local allow never takes
 *   effect (an overridden local grant); under first-applicable neither does anything
 *   local says where central applies. "local denies, central allows": a local
 *   restriction; deny-overrides enforces it (the purpose of a local layer), so it is
 *   reported but fails only with failOn "any"; under first-applicable it never takes
 *   effect and fails.
 * - shadowed local rule: a local decision rule that fires on at least one input, and on
 *   every input where it fires the central layer already decides the same way
 *   (deny-overrides: central denies every input where the local rule denies) or
 *   applies at all (first-applicable). Removing it would change no decision on the
 *   corpus. Empirical: "on every generated input", not a proof.
 * - unexercised local rule: fires on no input of the corpus (reported, never failing).
 */

/** A layer's outcome on one input. */
export type Outcome = 'allow' | 'deny' | 'n/a' | 'error';

/** What one layer said on one input. */
export interface LayerAnswer {
  readonly outcome: Outcome;
  readonly reasons: readonly string[];
  readonly fired: readonly string[];
}

/** The outcome of a decision path's value. */
export function outcomeOf(decision: unknown): { outcome: Outcome; reasons: string[] } {
  if (typeof decision === 'boolean') return { outcome: decision ? 'allow' : 'deny', reasons: [] };
  if (typeof decision !== 'object' || decision === null || Array.isArray(decision))
    return {
      outcome: 'error',
      reasons: [decision === undefined ? 'decision is undefined' : 'decision is not a result'],
    };
  const doc = decision as { allowed?: unknown; applicable?: unknown; reasons?: unknown };
  const reasons = Array.isArray(doc.reasons) ? doc.reasons.map(String) : [];
  if (doc.applicable === false) return { outcome: 'n/a', reasons };
  if (typeof doc.allowed !== 'boolean') return { outcome: 'error', reasons: ['result has no boolean "allowed"'] };
  return { outcome: doc.allowed ? 'allow' : 'deny', reasons };
}

/** Allow or deny as a chain counts it (error counts as deny); null for n/a. */
function effective(outcome: Outcome): boolean | null {
  return outcome === 'n/a' ? null : outcome === 'allow';
}

/** Kinds of disagreement. */
export type ConflictKind = 'local-allows-central-denies' | 'local-denies-central-allows';

/** A group of inputs on which the layers disagree the same way, for the same reasons. */
export interface ConflictGroup {
  readonly kind: ConflictKind;
  /** Whether this kind fails the check under the rule and failOn. */
  readonly failing: boolean;
  readonly count: number;
  readonly centralOutcome: Outcome;
  readonly localOutcome: Outcome;
  readonly centralReasons: readonly string[];
  readonly localReasons: readonly string[];
  /** Index into the corpus of the first input of the group. */
  readonly example: number;
}

/** A local rule that never changes a decision. */
export interface ShadowedRule {
  readonly rule: string;
  readonly head: string;
  readonly fired: number;
  readonly why: string;
}

/** The whole analysis. */
export interface Analysis {
  readonly conflicts: readonly ConflictGroup[];
  readonly shadowed: readonly ShadowedRule[];
  readonly unexercised: readonly { readonly rule: string; readonly head: string }[];
  /** Inputs each layer did not apply to, and inputs where a layer made no decision. */
  readonly counts: {
    readonly inputs: number;
    readonly centralNotApplicable: number;
    readonly localNotApplicable: number;
    readonly centralErrors: number;
    readonly localErrors: number;
  };
}

/** Options of analyze. */
export interface AnalyzeOptions {
  readonly combine: 'deny-overrides' | 'first-applicable';
  /** overridden (default): fail on what the rule overrides; any: every disagreement; none: report only. */
  readonly failOn: 'overridden' | 'any' | 'none';
  readonly central: readonly LayerAnswer[];
  readonly local: readonly LayerAnswer[];
  /** The local layer's decision rules (id and first line). */
  readonly localRules: readonly { readonly id: string; readonly head: string }[];
}

function failing(kind: ConflictKind, options: AnalyzeOptions): boolean {
  if (options.failOn === 'none') return false;
  if (options.failOn === 'any' || options.combine === 'first-applicable') return true;
  return kind === 'local-allows-central-denies';
}

/** Compares the layers input by input. */
export function analyze(options: AnalyzeOptions): Analysis {
  const { central, local } = options;
  const groups = new Map<
    string,
    { kind: ConflictKind; count: number; co: Outcome; lo: Outcome; c: string[]; l: string[]; example: number }
  >();
  const counts = {
    inputs: central.length,
    centralNotApplicable: 0,
    localNotApplicable: 0,
    centralErrors: 0,
    localErrors: 0,
  };
  for (let i = 0; i < central.length; i++) {
    const c = central[i]!;
    const l = local[i]!;
    if (c.outcome === 'n/a') counts.centralNotApplicable++;
    if (l.outcome === 'n/a') counts.localNotApplicable++;
    if (c.outcome === 'error') counts.centralErrors++;
    if (l.outcome === 'error') counts.localErrors++;
    const ce = effective(c.outcome);
    const le = effective(l.outcome);
    if (ce === null || le === null || ce === le) continue;
    const kind: ConflictKind = le ? 'local-allows-central-denies' : 'local-denies-central-allows';
    // Reasons that differ only in the numbers they name are one finding.
    const key = JSON.stringify([kind, c.reasons, l.reasons]).replace(/-?\d+(\.\d+)?/g, '#');
    const group = groups.get(key);
    if (group === undefined)
      groups.set(key, {
        kind,
        count: 1,
        co: c.outcome,
        lo: l.outcome,
        c: [...c.reasons],
        l: [...l.reasons],
        example: i,
      });
    else group.count++;
  }
  const conflicts = [...groups.values()]
    .map((g) => ({
      kind: g.kind,
      failing: failing(g.kind, options),
      count: g.count,
      centralOutcome: g.co,
      localOutcome: g.lo,
      centralReasons: g.c,
      localReasons: g.l,
      example: g.example,
    }))
    .sort((a, b) => Number(b.failing) - Number(a.failing) || b.count - a.count || a.example - b.example);

  const shadowed: ShadowedRule[] = [];
  const unexercised: { rule: string; head: string }[] = [];
  for (const rule of options.localRules) {
    const where: number[] = [];
    for (let i = 0; i < local.length; i++) if (local[i]!.fired.includes(rule.id)) where.push(i);
    if (where.length === 0) {
      unexercised.push({ rule: rule.id, head: rule.head });
      continue;
    }
    if (options.combine === 'first-applicable') {
      if (where.every((i) => central[i]!.outcome !== 'n/a'))
        shadowed.push({
          rule: rule.id,
          head: rule.head,
          fired: where.length,
          why: `the central layer applies on all ${where.length} inputs it fires on, so first-applicable never asks the local layer there`,
        });
      continue;
    }
    const localDenies = where.every((i) => effective(local[i]!.outcome) === false);
    const centralDenies = where.every((i) => effective(central[i]!.outcome) === false);
    if (localDenies && centralDenies)
      shadowed.push({
        rule: rule.id,
        head: rule.head,
        fired: where.length,
        why: `the central layer denies all ${where.length} inputs it fires on, so it never changes a decision`,
      });
  }
  return { conflicts, shadowed, unexercised, counts };
}
