/**
 * A small, careful reader of PromQL for tests: which metric names an expression selects,
 * which label names its matchers name per metric, and which labels its grouping clauses
 * (by, without, on, ignoring, group_left, group_right) name. Strings, range and subquery
 * brackets, numbers, durations and Grafana variables ($__rate_interval, ${x}) are skipped;
 * an identifier followed by "(" is a function or aggregation; keywords are not metrics.
 */

/** What an expression refers to. */
export interface PromqlRefs {
  /** Metric name → label names its matchers use. */
  readonly metrics: Map<string, Set<string>>;
  /** Labels named by grouping and vector-matching clauses. */
  readonly groupings: Set<string>;
}

const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'atan2', 'inf', 'nan', ...GROUPING]);
const IDENT_START = /[a-zA-Z_:]/;
const IDENT = /[a-zA-Z0-9_:]/;

/** Extracts the metric selectors and grouping labels of one PromQL expression; throws on what it cannot read. */
export function promqlRefs(expr: string): PromqlRefs {
  const metrics = new Map<string, Set<string>>();
  const groupings = new Set<string>();
  let i = 0;
  let lastMetric: string | undefined;
  const ws = (): void => {
    while (i < expr.length && /\s/.test(expr[i]!)) i++;
  };
  const ident = (): string => {
    const start = i;
    while (i < expr.length && IDENT.test(expr[i]!)) i++;
    return expr.slice(start, i);
  };
  const string = (): void => {
    const quote = expr[i++];
    while (i < expr.length && expr[i] !== quote) i += expr[i] === '\\' ? 2 : 1;
    if (i >= expr.length) throw new Error(`unterminated string in ${expr}`);
    i++;
  };
  while (i < expr.length) {
    const c = expr[i]!;
    if (/\s/.test(c)) i++;
    else if (c === '"' || c === "'" || c === '`') {
      string();
      lastMetric = undefined;
    } else if (c === '[') {
      const close = expr.indexOf(']', i);
      if (close === -1) throw new Error(`unterminated [ in ${expr}`);
      i = close + 1;
    } else if (c === '$') {
      i++;
      if (expr[i] === '{') i = expr.indexOf('}', i) + 1;
      else ident();
    } else if (c === '{') {
      i++;
      const labels = lastMetric === undefined ? undefined : metrics.get(lastMetric);
      if (labels === undefined) throw new Error(`a selector without a metric name in ${expr}`);
      for (;;) {
        ws();
        if (expr[i] === '}') break;
        const label = ident();
        if (label === '') throw new Error(`expected a label name at ${i} in ${expr}`);
        labels.add(label);
        ws();
        const op = /^(=~|!~|!=|=)/.exec(expr.slice(i));
        if (op === null) throw new Error(`expected a matcher after ${label} in ${expr}`);
        i += op[0].length;
        ws();
        string();
        ws();
        if (expr[i] === ',') i++;
      }
      i++;
      lastMetric = undefined;
    } else if (/[0-9.]/.test(c)) {
      while (i < expr.length && /[0-9.eExXa-fA-FsmhdwyM_]/.test(expr[i]!)) i++;
      lastMetric = undefined;
    } else if (IDENT_START.test(c)) {
      const name = ident();
      ws();
      const next = expr[i];
      if (GROUPING.has(name) && next === '(') {
        i++;
        for (;;) {
          ws();
          if (expr[i] === ')') break;
          const label = ident();
          if (label === '') throw new Error(`expected a label in ${name}(...) of ${expr}`);
          groupings.add(label);
          ws();
          if (expr[i] === ',') i++;
        }
        i++;
        lastMetric = undefined;
      } else if (next === '(' || KEYWORDS.has(name.toLowerCase()) || /^(by|without)\s*\(/.test(expr.slice(i))) {
        // A function, a keyword, or an aggregation written `sum by (x) (...)`.
        lastMetric = undefined;
      } else {
        if (!metrics.has(name)) metrics.set(name, new Set());
        lastMetric = name;
      }
    } else {
      i++;
      lastMetric = undefined;
    }
  }
  return { metrics, groupings };
}
