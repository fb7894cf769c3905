/**
 * The deny rules of a bundle's Rego sources, so a report can say which rules fired and
 * which never did. A rule is each `deny contains <reason>` (and the older `deny[<reason>]`)
 * head; its reason template is the string literal or sprintf format it builds the reason
 * from (looked up in the rule body when the head names a variable). A reason is matched
 * to the most specific template it fits (%v, %s, %d … match any text). A rule whose
 * reason is built some other way has no template and cannot be matched: the report lists
 * it as unmatched rather than guessing.
 */

/** One deny rule of the policy. */
export interface PolicyRule {
  /** "<file>:<line>" of the rule head, e.g. "policies/refunds.rego:60". */
  readonly id: string;
  readonly file: string;
  readonly line: number;
  /** The reason's format (sprintf verbs kept), or undefined when it is not a literal. */
  readonly template?: string;
}

const HEAD = /\bdeny\s+contains\s+|\bdeny\s*\[\s*/g;

/** Reads a Rego string literal (double-quoted or raw backquoted) at `i`; undefined when there is none. */
function stringAt(text: string, i: number): string | undefined {
  if (text[i] === '`') {
    const end = text.indexOf('`', i + 1);
    return end === -1 ? undefined : text.slice(i + 1, end);
  }
  if (text[i] !== '"') return undefined;
  let j = i + 1;
  while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
  try {
    return JSON.parse(text.slice(i, j + 1)) as string;
  } catch {
    return undefined;
  }
}

/** The format of `sprintf(` at `i` (whitespace and newlines allowed before the literal). */
function sprintfAt(text: string, i: number): string | undefined {
  const m = /^sprintf\s*\(\s*/.exec(text.slice(i, i + 64));
  return m === null ? undefined : stringAt(text, i + m[0].length);
}

function templateAt(text: string, i: number): string | undefined {
  const literal = stringAt(text, i) ?? sprintfAt(text, i);
  if (literal !== undefined) return literal;
  // A variable: `msg := sprintf(...)` or `msg := "..."` in the body that follows.
  const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i))?.[0];
  if (name === undefined) return undefined;
  const body = text.slice(i, i + 2000).split(/\n\}/)[0] ?? '';
  const assign = new RegExp(`\\b${name}\\s*:?=\\s*`).exec(body.slice(name.length));
  if (assign === null) return undefined;
  const at = i + name.length + assign.index + assign[0].length;
  return stringAt(text, at) ?? sprintfAt(text, at);
}

/** The deny rules of Rego sources (file path → text), in file then line order; *_test.rego files are skipped. */
export function extractDenyRules(sources: ReadonlyMap<string, string>): PolicyRule[] {
  const rules: PolicyRule[] = [];
  for (const [file, text] of [...sources].sort(([a], [b]) => a.localeCompare(b))) {
    if (!file.endsWith('.rego') || file.endsWith('_test.rego')) continue;
    for (const m of text.matchAll(HEAD)) {
      const lineStart = text.lastIndexOf('\n', m.index) + 1;
      // A comment line mentioning a rule is not a rule.
      if (text.slice(lineStart, m.index).includes('#')) continue;
      const line = text.slice(0, m.index).split('\n').length;
      const template = templateAt(text, m.index + m[0].length);
      rules.push({
        id: `${file.replace(/^\//, '')}:${line}`,
        file,
        line,
        ...(template === undefined ? {} : { template }),
      });
    }
  }
  return rules;
}

interface Compiled {
  readonly rule: PolicyRule;
  readonly pattern: RegExp;
  /** Characters of literal text: the more, the more specific. */
  readonly literal: number;
}

/** A matcher from reasons to the rules that produce them. */
export interface RuleMatcher {
  /** The rule a reason came from, or undefined when none fits. */
  match(reason: string): PolicyRule | undefined;
}

/** Compiles the rules' templates into a matcher. */
export function createRuleMatcher(rules: readonly PolicyRule[]): RuleMatcher {
  const compiled: Compiled[] = [];
  for (const rule of rules) {
    if (rule.template === undefined) continue;
    const parts = rule.template.split(/%(?:\[\d+\])?[-+# 0]*\d*(?:\.\d+)?[vVsdqfgextTbocUp%]/);
    const pattern = new RegExp(`^${parts.map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('[\\s\\S]*?')}$`);
    compiled.push({ rule, pattern, literal: parts.join('').length });
  }
  compiled.sort((a, b) => b.literal - a.literal);
  const cache = new Map<string, PolicyRule | undefined>();
  return {
    match(reason) {
      if (cache.has(reason)) return cache.get(reason);
      const found = compiled.find((c) => c.pattern.test(reason))?.rule;
      if (cache.size < 10_000) cache.set(reason, found);
      return found;
    },
  };
}
