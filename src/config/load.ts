/**
 * Configuration loading: parse YAML → apply env overrides → validate against the
 * schema collecting *all* problems → normalise → deep-freeze. Nothing after this
 * file re-checks the configuration.
 */
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { configSchema, type Config } from './schema.ts';
import { TollgateError } from '../errors.ts';

/** Environment variables that override config fields (a small documented set). */
export const ENV_OVERRIDES = {
  TOLLGATE_PROXY_LISTEN: ['proxy', 'listen'],
  TOLLGATE_ADMIN_LISTEN: ['admin', 'listen'],
  TOLLGATE_EXTAUTHZ_LISTEN: ['extAuthz', 'listen'],
  TOLLGATE_LOG_LEVEL: ['logLevel'],
  TOLLGATE_AGENT_ID: ['agent', 'id'],
  TOLLGATE_AGENT_ROLE: ['agent', 'role'],
  TOLLGATE_BUNDLE: ['pdp', 'bundle'],
} as const;

function setPath(doc: Record<string, unknown>, path: readonly string[], value: string): void {
  let node = doc;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

/** Validates a parsed document (already YAML-decoded) into a frozen Config. */
export function parseConfig(doc: unknown, env: Record<string, string | undefined> = {}, source = 'config'): Config {
  const base: Record<string, unknown> =
    doc === null || doc === undefined
      ? {}
      : typeof doc === 'object' && !Array.isArray(doc)
        ? structuredClone(doc as Record<string, unknown>)
        : { __invalid: doc };
  if ('__invalid' in base) {
    throw new TollgateError('TG_ERR_CONFIG_INVALID', `${source}: expected a mapping at the top level`);
  }
  for (const [name, path] of Object.entries(ENV_OVERRIDES)) {
    const value = env[name];
    if (value !== undefined && value !== '') setPath(base, path, value);
  }
  const result = configSchema.safeParse(base);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => `/${issue.path.join('/')}: ${issue.message}`);
    throw new TollgateError('TG_ERR_CONFIG_INVALID', `${source}: ${problems.join('; ')}`);
  }
  return deepFreeze(result.data);
}

/** Reads and validates a YAML config file; an absent path yields the defaults. */
export async function loadConfig(
  path: string | undefined,
  env: Record<string, string | undefined> = {},
): Promise<Config> {
  if (path === undefined) return parseConfig({}, env, 'defaults');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw new TollgateError(
      'TG_ERR_CONFIG_INVALID',
      `${path}: cannot read the file (${(cause as NodeJS.ErrnoException).code ?? 'error'})`,
      { cause },
    );
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (cause) {
    throw new TollgateError(
      'TG_ERR_CONFIG_INVALID',
      `${path}: not valid YAML: ${(cause as Error).message.split('\n')[0]}`,
      { cause },
    );
  }
  return parseConfig(doc, env, path);
}

/** Splits "host:port" (IPv6 in brackets) into its parts. */
export function splitHostPort(value: string): { host: string; port: number } {
  const idx = value.lastIndexOf(':');
  const host = value.slice(0, idx).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(value.slice(idx + 1)) };
}
