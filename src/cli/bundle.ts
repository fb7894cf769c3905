/**
 * `tollgate bundle rollback|status|patch`: talks to a running sidecar's admin API
 * (POST /v1/bundle/rollback, GET /v1/bundle/status, PATCH /v1/data) with the policy
 * admin token. Exit status: 0 done, 1 refused or unreachable.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';

/** Help text of `tollgate bundle`. */
export const BUNDLE_HELP = `Usage: tollgate bundle <rollback|status|patch> [options]

  rollback            switch the running sidecar back to its previous policy revision
  status              print the active and previous revisions, rejection and shadow counters
  patch FILE          apply an RFC 6902 JSON Patch (FILE, or "-" for stdin) to the live policy data

  -a, --admin URL     admin address (default http://127.0.0.1:15000, or $TOLLGATE_ADMIN_URL)
  -t, --token T       policy admin token (data.token; default $TOLLGATE_ADMIN_TOKEN)
`;

/** Parsed options of `tollgate bundle`. */
export interface BundleCommandOptions {
  readonly subcommand: string;
  readonly admin: string;
  readonly token: string;
  /** For "patch": the patch text. */
  readonly patch?: string;
  /** Where output goes (stdout / stderr writers). */
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly timeoutMs?: number;
}

/** Parses `tollgate bundle` arguments (env supplies defaults; main.ts passes process.env). */
export async function parseBundleArgs(args: readonly string[], env: Record<string, string | undefined>, readStdin: () => Promise<string>): Promise<Omit<BundleCommandOptions, 'out' | 'err'>> {
  const { values, positionals } = parseArgs({
    args: [...args],
    allowPositionals: true,
    options: { admin: { type: 'string', short: 'a' }, token: { type: 'string', short: 't' } },
  });
  const [subcommand = '', file] = positionals;
  let patch: string | undefined;
  if (subcommand === 'patch') {
    if (file === undefined) throw new Error('bundle patch needs a FILE (or "-" for stdin)');
    patch = file === '-' ? await readStdin() : await readFile(file, 'utf8');
  }
  return {
    subcommand,
    admin: values.admin ?? env.TOLLGATE_ADMIN_URL ?? 'http://127.0.0.1:15000',
    token: values.token ?? env.TOLLGATE_ADMIN_TOKEN ?? '',
    ...(patch === undefined ? {} : { patch }),
  };
}

const ROUTES: Record<string, { method: string; path: string }> = {
  rollback: { method: 'POST', path: '/v1/bundle/rollback' },
  status: { method: 'GET', path: '/v1/bundle/status' },
  patch: { method: 'PATCH', path: '/v1/data' },
};

/** Runs `tollgate bundle <subcommand>` against the admin API; resolves to the exit code. */
export async function runBundleCommand(options: BundleCommandOptions): Promise<number> {
  const route = ROUTES[options.subcommand];
  if (route === undefined) {
    options.err(`tollgate: unknown bundle command "${options.subcommand}"\n${BUNDLE_HELP}`);
    return 1;
  }
  const base = /^https?:\/\//.test(options.admin) ? options.admin : `http://${options.admin}`;
  let res: Response;
  try {
    res = await fetch(new URL(route.path, base), {
      method: route.method,
      headers: { authorization: `Bearer ${options.token}`, ...(options.patch === undefined ? {} : { 'content-type': 'application/json-patch+json' }) },
      ...(options.patch === undefined ? {} : { body: options.patch }),
      signal: AbortSignal.timeout(options.timeoutMs ?? 10000),
    });
  } catch (cause) {
    options.err(`tollgate: cannot reach the admin API at ${base} (${(cause as Error).cause instanceof Error ? ((cause as Error).cause as Error).message : (cause as Error).message})\n`);
    return 1;
  }
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { error: text };
  }
  if (!res.ok) {
    options.err(`tollgate: ${options.subcommand} refused (${res.status}): ${String(body.error ?? text)}\n`);
    return 1;
  }
  if (options.subcommand === 'rollback') options.out(`rolled back: ${String(body.previous_revision)} -> ${String(body.revision)}\n`);
  else if (options.subcommand === 'patch') options.out(`data patched: revision ${String(body.revision)}, data version ${String(body.data_version)}\n`);
  else options.out(`${JSON.stringify(body, null, 2)}\n`);
  return 0;
}
