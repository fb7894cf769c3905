/**
 * `tollgate bundle rollback|status|patch`: talks to a running sidecar's admin API
 * (POST /v1/bundle/rollback, GET /v1/bundle/status, PATCH /v1/data) with the policy
 * admin token. `tollgate bundle verify` checks a bundle's signature offline, with the
 * same verifier the sidecar uses (for CI). Exit status: 0 done, 1 refused, invalid or
 * unreachable.
 */
import { readFile } from 'node:fs/promises';
import { loadBundle } from '../bundle/load.ts';
import { TollgateError } from '../errors.ts';
import { createBundleVerifier, SIGNING_ALGORITHMS, type SigningAlgorithm } from '../bundle/verify.ts';
import { adminUrl, parseCommandArgs } from './args.ts';

/** Help text of `tollgate bundle`. */
export const BUNDLE_HELP = `Usage: tollgate bundle <rollback|status|patch> [options]

  rollback            switch the running sidecar back to its previous policy revision
  status              print the active and previous revisions, rejection and shadow counters
  patch FILE          apply an RFC 6902 JSON Patch (FILE, or "-" for stdin) to the live policy data
  verify BUNDLE       check BUNDLE's .signatures.json offline (--key, --alg, --key-id, --scope)

  -a, --admin URL     admin address (default http://127.0.0.1:15000, or $TOLLGATE_ADMIN_URL)
  -t, --token T       policy admin token (data.token; default $TOLLGATE_ADMIN_TOKEN)
  -k, --key F         verify: PEM public key of the signer
      --alg A         verify: RS256 (default), ES256, ...
      --key-id K      verify: key id the signature must name (default "default")
      --scope S       verify: scope the signature must carry (default "")
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
  /** For "verify": the bundle path and verification key settings. */
  readonly verify?: {
    readonly bundle: string;
    readonly keyFile: string;
    readonly algorithm: string;
    readonly keyId: string;
    readonly scope: string;
  };
}

/** Parses `tollgate bundle` arguments (env supplies defaults; main.ts passes process.env); throws TG_ERR_INPUT_INVALID on bad usage. */
export async function parseBundleArgs(
  args: readonly string[],
  env: Record<string, string | undefined>,
  readStdin: () => Promise<string>,
): Promise<Omit<BundleCommandOptions, 'out' | 'err'>> {
  const parsed = parseCommandArgs('bundle', {
    args: [...args],
    allowPositionals: true,
    options: {
      admin: { type: 'string', short: 'a' },
      token: { type: 'string', short: 't' },
      key: { type: 'string', short: 'k' },
      alg: { type: 'string', default: 'RS256' },
      'key-id': { type: 'string', default: 'default' },
      scope: { type: 'string', default: '' },
    },
  });
  const { values, positionals } = parsed;
  const [subcommand = '', file] = positionals;
  let patch: string | undefined;
  if (subcommand === 'patch') {
    if (file === undefined)
      throw new TollgateError('TG_ERR_INPUT_INVALID', 'bundle patch needs a FILE (or "-" for stdin)');
    try {
      patch = file === '-' ? await readStdin() : await readFile(file, 'utf8');
    } catch (cause) {
      throw new TollgateError(
        'TG_ERR_INPUT_INVALID',
        `cannot read ${file} (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message})`,
        { cause },
      );
    }
  }
  const verify =
    subcommand === 'verify'
      ? {
          bundle: file ?? '',
          keyFile: values.key ?? '',
          algorithm: values.alg ?? 'RS256',
          keyId: values['key-id'] ?? 'default',
          scope: values.scope ?? '',
        }
      : undefined;
  return {
    ...(verify === undefined ? {} : { verify }),
    subcommand,
    admin: adminUrl(values.admin, env),
    token: values.token ?? env.TOLLGATE_ADMIN_TOKEN ?? '',
    ...(patch === undefined ? {} : { patch }),
  };
}

const ROUTES: Record<string, { method: string; path: string }> = {
  rollback: { method: 'POST', path: '/v1/bundle/rollback' },
  status: { method: 'GET', path: '/v1/bundle/status' },
  patch: { method: 'PATCH', path: '/v1/data' },
};

async function verifyOffline(options: BundleCommandOptions): Promise<number> {
  const v = options.verify;
  if (v === undefined || v.bundle === '' || v.keyFile === '') {
    options.err('tollgate: bundle verify needs BUNDLE and --key <public.pem>\n');
    return 1;
  }
  if (!(SIGNING_ALGORITHMS as readonly string[]).includes(v.algorithm)) {
    options.err(`tollgate: --alg must be one of ${SIGNING_ALGORITHMS.join(', ')}\n`);
    return 1;
  }
  try {
    const bundle = await loadBundle(v.bundle);
    const publicKey = await readFile(v.keyFile, 'utf8');
    createBundleVerifier({
      keyId: v.keyId,
      publicKey,
      algorithm: v.algorithm as SigningAlgorithm,
      scope: v.scope,
    }).verify(bundle);
    options.out(
      `${v.bundle}: signature valid (revision ${bundle.manifest.revision}, ${bundle.files?.size ?? 0} files, key ${v.keyId}, ${v.algorithm})\n`,
    );
    return 0;
  } catch (err) {
    options.err(`tollgate: ${(err as { code?: string }).code ?? 'error'}: ${(err as Error).message}\n`);
    return 1;
  }
}

/** Runs `tollgate bundle <subcommand>` against the admin API (or offline for verify); resolves to the exit code. */
export async function runBundleCommand(options: BundleCommandOptions): Promise<number> {
  if (options.subcommand === 'verify') return verifyOffline(options);
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
      headers: {
        authorization: `Bearer ${options.token}`,
        ...(options.patch === undefined ? {} : { 'content-type': 'application/json-patch+json' }),
      },
      ...(options.patch === undefined ? {} : { body: options.patch }),
      signal: AbortSignal.timeout(options.timeoutMs ?? 10000),
    });
  } catch (cause) {
    options.err(
      `tollgate: cannot reach the admin API at ${base} (${(cause as Error).cause instanceof Error ? ((cause as Error).cause as Error).message : (cause as Error).message})\n`,
    );
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
  if (options.subcommand === 'rollback')
    options.out(`rolled back: ${String(body.previous_revision)} -> ${String(body.revision)}\n`);
  else if (options.subcommand === 'patch')
    options.out(`data patched: revision ${String(body.revision)}, data version ${String(body.data_version)}\n`);
  else options.out(`${JSON.stringify(body, null, 2)}\n`);
  return 0;
}

// Standalone use until `tollgate bundle` is wired into main.ts: node src/cli/bundle.ts <command> ...
if (import.meta.main) {
  const readStdin = async (): Promise<string> => {
    let text = '';
    for await (const chunk of process.stdin) text += String(chunk);
    return text;
  };
  try {
    const options = await parseBundleArgs(process.argv.slice(2), process.env, readStdin);
    process.exitCode = await runBundleCommand({
      ...options,
      out: (s) => process.stdout.write(s),
      err: (s) => process.stderr.write(s),
    });
  } catch (err) {
    process.stderr.write(`tollgate: ${(err as Error).message}\n${BUNDLE_HELP}`);
    process.exitCode = 1;
  }
}
