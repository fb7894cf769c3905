/**
 * `tollgate approvals list|show|approve|reject`: talks to a running sidecar's approvals
 * admin API (/v1/approvals) with the approvals token. Any replica answers for the shared
 * store. Exit status: 0 done, 1 refused, invalid or unreachable.
 */
import { TollgateError } from '../errors.ts';
import { adminUrl, parseCommandArgs, type AdminClientOptions } from './args.ts';

/** Help text of `tollgate approvals`. */
export const APPROVALS_HELP = `Usage: tollgate approvals <list|show|approve|reject> [ID] [options]

  list                 approvals, newest first (--status pending|approved|rejected|expired)
  show ID              one approval: the call, the reasons, who may approve, its status
  approve ID --as NAME approve the call (NAME is recorded; the policy may name who may approve)
  reject ID --as NAME  reject it

  -a, --admin URL      admin address (default http://127.0.0.1:15000, or $TOLLGATE_ADMIN_URL)
  -t, --token T        approvals token (state.approvals.token; default $TOLLGATE_APPROVALS_TOKEN)
      --as NAME        the approver's name (default $TOLLGATE_APPROVER)
  -m, --comment TEXT   a comment kept with the answer
      --status S       list: only approvals in status S
      --json           print the API's JSON
`;

/** Parsed options of `tollgate approvals`. */
export interface ApprovalsCommandOptions extends AdminClientOptions {
  readonly subcommand: string;
  readonly id: string;
  readonly approver: string;
  readonly comment?: string;
  readonly status?: string;
}

/** Parses `tollgate approvals` arguments; throws TG_ERR_INPUT_INVALID on bad usage. */
export function parseApprovalsArgs(
  args: readonly string[],
  env: Record<string, string | undefined>,
): Omit<ApprovalsCommandOptions, 'out' | 'err'> {
  const parsed = parseCommandArgs('approvals', {
    args: [...args],
    allowPositionals: true,
    options: {
      admin: { type: 'string', short: 'a' },
      token: { type: 'string', short: 't' },
      as: { type: 'string' },
      comment: { type: 'string', short: 'm' },
      status: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  const { values, positionals } = parsed;
  const [subcommand = '', id = ''] = positionals;
  if (!['list', 'show', 'approve', 'reject'].includes(subcommand))
    throw new TollgateError('TG_ERR_INPUT_INVALID', `approvals: unknown command "${subcommand}"`);
  if (subcommand !== 'list' && id === '')
    throw new TollgateError('TG_ERR_INPUT_INVALID', `approvals ${subcommand} needs an approval ID`);
  const approver = values.as ?? env.TOLLGATE_APPROVER ?? '';
  if ((subcommand === 'approve' || subcommand === 'reject') && approver === '')
    throw new TollgateError(
      'TG_ERR_INPUT_INVALID',
      `approvals ${subcommand} needs --as NAME (who decides is recorded)`,
    );
  return {
    subcommand,
    id,
    admin: adminUrl(values.admin, env),
    token: values.token ?? env.TOLLGATE_APPROVALS_TOKEN ?? '',
    approver,
    ...(values.comment === undefined ? {} : { comment: values.comment }),
    ...(values.status === undefined ? {} : { status: values.status }),
    json: values.json ?? false,
  };
}

/** One approval in a few lines. */
export function describeApproval(a: Record<string, unknown>): string {
  const lines = [
    `${String(a.id)}  ${String(a.status).toUpperCase()}  agent ${String(a.agent)}`,
    `  call       ${String(a.method)} ${String(a.authority)}${String(a.path)}  (body sha256 ${String(a.body_digest).slice(0, 12)}…)`,
    `  why        ${Array.isArray(a.reasons) && a.reasons.length > 0 ? a.reasons.join('; ') : '-'}`,
    `  approvers  ${Array.isArray(a.approvers) && a.approvers.length > 0 ? a.approvers.join(', ') : 'anyone with the token'}`,
    `  requested  ${String(a.created_at)}  by decision ${String(a.decision_id)}`,
    `  ${a.status === 'pending' ? 'expires' : 'valid to'}   ${String(a.expires_at)}`,
  ];
  if (a.decided_by !== undefined)
    lines.push(
      `  decided    ${String(a.status)} by ${String(a.decided_by)} at ${String(a.decided_at)}${a.comment === undefined ? '' : ` ("${String(a.comment)}")`}`,
    );
  if (a.status === 'approved') lines.push(`  uses left  ${String(a.uses_left)} of ${String(a.uses)}`);
  return `${lines.join('\n')}\n`;
}

/** Runs `tollgate approvals <subcommand>`; resolves to the exit code. */
export async function runApprovalsCommand(options: ApprovalsCommandOptions): Promise<number> {
  const base = /^https?:\/\//.test(options.admin) ? options.admin : `http://${options.admin}`;
  const id = encodeURIComponent(options.id);
  const route =
    options.subcommand === 'list'
      ? {
          method: 'GET',
          path: `/v1/approvals${options.status === undefined ? '' : `?status=${encodeURIComponent(options.status)}`}`,
        }
      : options.subcommand === 'show'
        ? { method: 'GET', path: `/v1/approvals/${id}` }
        : { method: 'POST', path: `/v1/approvals/${id}/${options.subcommand}` };
  let res: Response;
  try {
    res = await fetch(new URL(route.path, base), {
      method: route.method,
      headers: { authorization: `Bearer ${options.token}`, 'content-type': 'application/json' },
      ...(route.method === 'POST'
        ? {
            body: JSON.stringify({
              approver: options.approver,
              ...(options.comment === undefined ? {} : { comment: options.comment }),
            }),
          }
        : {}),
      signal: AbortSignal.timeout(options.timeoutMs ?? 10000),
    });
  } catch (cause) {
    options.err(`tollgate: cannot reach the admin API at ${base} (${(cause as Error).message})\n`);
    return 1;
  }
  const text = await res.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { error: text };
  }
  if (!res.ok) {
    options.err(`tollgate: approvals ${options.subcommand} refused (${res.status}): ${String(body.error ?? text)}\n`);
    return 1;
  }
  if (options.json) {
    options.out(`${JSON.stringify(body, null, 2)}\n`);
    return 0;
  }
  if (options.subcommand === 'list') {
    const list = (body.approvals as Record<string, unknown>[] | undefined) ?? [];
    if (list.length === 0) options.out('no approvals\n');
    for (const a of list) options.out(describeApproval(a));
  } else {
    options.out(describeApproval(body));
  }
  return 0;
}
