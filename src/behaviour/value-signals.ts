/**
 * Value-weighted behaviour signals (refund amounts, order notionals): each configured
 * signal names where its number is in the policy input and which requests it applies
 * to. Pure: a compiled signal maps one policy input to a number, or undefined when the
 * request is not one it measures or carries no usable number.
 */
import type { PolicyInput } from '../input/build.ts';

/** One configured signal (behaviour.values[]). */
export interface ValueSignalConfig {
  readonly name: string;
  /** A path, or several whose values are multiplied (quantity × price). */
  readonly from: string | readonly string[];
  readonly when?: {
    readonly method?: string | undefined;
    readonly host?: string | undefined;
    readonly path?: string | undefined;
    readonly tool?: string | undefined;
  };
}

/** A signal ready to measure inputs. */
export interface ValueSignal {
  readonly name: string;
  /** The request's value (absolute), or undefined when the signal does not apply to it. */
  measure(input: PolicyInput): number | undefined;
}

type Getter = (input: PolicyInput) => unknown;

function walk(value: unknown, keys: readonly string[]): unknown {
  let at = value;
  for (const key of keys) {
    if (typeof at !== 'object' || at === null) return undefined;
    if (Array.isArray(at)) {
      const i = Number(key);
      at = Number.isInteger(i) ? at[i] : undefined;
    } else at = Object.hasOwn(at, key) ? (at as Record<string, unknown>)[key] : undefined;
  }
  return at;
}

/**
 * A getter for one path. Shortcuts: `body.*` (parsed_body), `arguments.*` (the MCP
 * tools/call arguments), `headers.*`, `query.*` (first value); anything else is a
 * dotted path from the input's root (`attributes.request.http.method`).
 */
export function compilePath(path: string): Getter {
  const [head, ...rest] = path.split('.');
  switch (head) {
    case 'body':
      return (input) => walk(input.parsed_body, rest);
    case 'arguments':
      return (input) => {
        const mcp = input.mcp;
        return mcp !== undefined && 'tool' in mcp ? walk(mcp.tool?.arguments, rest) : undefined;
      };
    case 'headers':
      return (input) => input.attributes.request.http.headers[rest.join('.').toLowerCase()];
    case 'query':
      return (input) => input.parsed_query[rest.join('.')]?.[0];
    default:
      return (input) => walk(input, path.split('.'));
  }
}

/** A number, or a string that is exactly a finite decimal number (as the seed policies' as_number reads amounts). */
export function asNumber(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value === 'string' && /^\s*-?\d+(\.\d+)?([eE][-+]?\d+)?\s*$/.test(value)) {
    const n = Number(value);
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

function matches(pattern: string | undefined, actual: string): boolean {
  if (pattern === undefined) return true;
  return pattern.endsWith('*') ? actual.startsWith(pattern.slice(0, -1)) : actual === pattern;
}

/** The host without a port (the input's host may carry one). */
function bareHost(host: string): string {
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1);
  const colon = host.lastIndexOf(':');
  return colon === -1 ? host : host.slice(0, colon);
}

/** Compiles a configured signal. */
export function compileValueSignal(config: ValueSignalConfig): ValueSignal {
  const getters = (typeof config.from === 'string' ? [config.from] : config.from).map(compilePath);
  const when = config.when ?? {};
  const method = when.method?.toUpperCase();
  return {
    name: config.name,
    measure(input) {
      const http = input.attributes.request.http;
      if (method !== undefined && http.method !== method) return undefined;
      if (when.host !== undefined && !matches(when.host, http.host) && !matches(when.host, bareHost(http.host)))
        return undefined;
      if (when.path !== undefined) {
        const q = http.path.indexOf('?');
        if (!matches(when.path, q === -1 ? http.path : http.path.slice(0, q))) return undefined;
      }
      if (when.tool !== undefined) {
        const mcp = input.mcp;
        const tool = mcp !== undefined && 'tool' in mcp ? mcp.tool?.name : undefined;
        if (tool === undefined || !matches(when.tool, tool)) return undefined;
      }
      let product = 1;
      for (const get of getters) {
        const n = asNumber(get(input));
        if (n === undefined) return undefined;
        product *= n;
      }
      return Math.abs(product);
    },
  };
}
