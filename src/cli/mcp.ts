/**
 * `tollgate mcp tools list|accept`: the running sidecar's tool pins, through the admin
 * API (GET /v1/mcp/tools, POST /v1/mcp/tools/accept) with the admin token (data.token).
 * `accept` pins the definition last seen for a changed tool (or every changed tool of a
 * server) and prints the pins-file entry to commit; the sidecar rewrites the file itself
 * only with mcp.pins.writeBack. Exit status: 0 done, 1 refused, invalid or unreachable.
 */
import { stringify as stringifyYaml } from 'yaml';
import { TollgateError } from '../errors.ts';
import { adminUrl, parseCommandArgs, type AdminClientOptions } from './args.ts';

/** Help text of `tollgate mcp`. */
export const MCP_HELP = `Usage: tollgate mcp tools <list|accept> [options]

  tools list                 every pinned tool per server; changed ones with both fingerprints
  tools accept --server S    accept the changed definition(s) seen for server S (an authority,
                             e.g. mcp.internal or 127.0.0.1:8931); prints the pins-file entry

  -s, --server S      server (destination authority)
      --tool T        accept: only this tool (default: every changed tool of the server)
      --json          print JSON instead of text
  -a, --admin URL     admin address (default http://127.0.0.1:15000, or $TOLLGATE_ADMIN_URL)
  -t, --token T       admin token (data.token; default $TOLLGATE_ADMIN_TOKEN)
`;

/** Parsed options of `tollgate mcp`. */
export interface McpCommandOptions extends AdminClientOptions {
  readonly subcommand: 'list' | 'accept';
  readonly server?: string;
  readonly tool?: string;
}

/** Parses `tollgate mcp` arguments; throws TG_ERR_INPUT_INVALID on bad usage. */
export function parseMcpArgs(
  args: readonly string[],
  env: Record<string, string | undefined>,
): Omit<McpCommandOptions, 'out' | 'err'> {
  const parsed = parseCommandArgs('mcp', {
    args: [...args],
    allowPositionals: true,
    options: {
      server: { type: 'string', short: 's' },
      tool: { type: 'string' },
      json: { type: 'boolean', default: false },
      admin: { type: 'string', short: 'a' },
      token: { type: 'string', short: 't' },
    },
  });
  const { values, positionals } = parsed;
  const [group, subcommand] = positionals;
  if (group !== 'tools' || (subcommand !== 'list' && subcommand !== 'accept'))
    throw new TollgateError('TG_ERR_INPUT_INVALID', 'usage: tollgate mcp tools list|accept');
  if (subcommand === 'accept' && values.server === undefined)
    throw new TollgateError('TG_ERR_INPUT_INVALID', 'mcp tools accept needs --server <authority>');
  return {
    subcommand,
    ...(values.server === undefined ? {} : { server: values.server }),
    ...(values.tool === undefined ? {} : { tool: values.tool }),
    json: values.json ?? false,
    admin: adminUrl(values.admin, env),
    token: values.token ?? env.TOLLGATE_ADMIN_TOKEN ?? '',
  };
}

interface ListedTool {
  server: string;
  tool: string;
  status: 'pinned' | 'changed';
  pin: { sha256: string; source: string; pinnedAt: string; definition?: { description?: string } };
  observed?: { sha256: string; seenAt: string; definition: { description?: string } };
}

function listText(tools: ListedTool[]): string {
  if (tools.length === 0) return 'no tools pinned yet\n';
  const lines = ['SERVER  TOOL  STATUS  PINNED  OBSERVED  SOURCE'];
  for (const t of tools)
    lines.push(
      `${t.server}  ${t.tool}  ${t.status}  ${t.pin.sha256.slice(0, 12)}  ${(t.observed?.sha256 ?? t.pin.sha256).slice(0, 12)}  ${t.pin.source}`,
    );
  for (const t of tools.filter((x) => x.observed !== undefined)) {
    lines.push('', `${t.server} ${t.tool} changed at ${t.observed!.seenAt}:`);
    lines.push(`  pinned description:   ${JSON.stringify(t.pin.definition?.description ?? null)}`);
    lines.push(`  observed description: ${JSON.stringify(t.observed!.definition.description ?? null)}`);
    lines.push(`  accept with: tollgate mcp tools accept --server ${t.server} --tool ${t.tool}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Runs `tollgate mcp tools <list|accept>` against the admin API; resolves to the exit code. */
export async function runMcpCommand(options: McpCommandOptions): Promise<number> {
  const base = /^https?:\/\//.test(options.admin) ? options.admin : `http://${options.admin}`;
  const url = new URL(options.subcommand === 'list' ? '/v1/mcp/tools' : '/v1/mcp/tools/accept', base);
  if (options.subcommand === 'list' && options.server !== undefined) url.searchParams.set('server', options.server);
  let res: Response;
  try {
    res = await fetch(url, {
      method: options.subcommand === 'list' ? 'GET' : 'POST',
      headers: { authorization: `Bearer ${options.token}`, 'content-type': 'application/json' },
      ...(options.subcommand === 'accept'
        ? {
            body: JSON.stringify({
              server: options.server,
              ...(options.tool === undefined ? {} : { tool: options.tool }),
            }),
          }
        : {}),
      signal: AbortSignal.timeout(options.timeoutMs ?? 10000),
    });
  } catch (cause) {
    const inner = (cause as Error).cause;
    options.err(
      `tollgate: cannot reach the admin API at ${base} (${inner instanceof Error ? inner.message : (cause as Error).message})\n`,
    );
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
    const hint = res.status === 404 && body.code === undefined ? ' (are mcp.pins.enabled and data.token set?)' : '';
    options.err(
      `tollgate: mcp tools ${options.subcommand} refused (${res.status}): ${String(body.error ?? text)}${hint}\n`,
    );
    return 1;
  }
  if (options.json) {
    options.out(`${JSON.stringify(body, null, 2)}\n`);
    return 0;
  }
  if (options.subcommand === 'list') {
    options.out(listText((body.tools ?? []) as ListedTool[]));
    return 0;
  }
  const accepted = body.accepted as { servers: Record<string, { tools: Record<string, unknown> }> };
  const names = Object.values(accepted.servers).flatMap((s) => Object.keys(s.tools));
  options.out(
    `accepted ${names.join(', ')} on ${options.server}${body.file_written ? ' (pins file rewritten)' : ''}\n` +
      (body.file_written ? '' : `# add to the pins file (mcp.pins.file) and commit:\n${stringifyYaml(accepted)}`),
  );
  return 0;
}
