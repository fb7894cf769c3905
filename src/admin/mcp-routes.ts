/**
 * The MCP tool-pin admin endpoints, mounted on the admin listener beside the policy routes
 * and guarded the same way (`Authorization: Bearer <data.token>`, loopback peers unless
 * data.allowRemote; not mounted without a token):
 *   GET  /v1/mcp/tools[?server=AUTHORITY]   every pin; changed tools with the definition seen
 *   POST /v1/mcp/tools/accept               {"server": "...", "tool": "..."} (tool absent: every changed tool)
 * Accepting returns the pins-file entry to commit and whether the file was rewritten.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { TollgateError } from '../errors.ts';
import type { PinStore, PinsFileEntry } from '../mcp/pins.ts';
import { authorized, isLoopback } from './policy-routes.ts';

/** What the admin server needs to serve the pin routes. */
export interface McpRoutes {
  readonly pins: Pick<PinStore, 'list' | 'accept'>;
  /** Bearer token (data.token); empty disables the routes. */
  readonly token: string;
  readonly allowRemote: boolean;
  /** Whether accept rewrites the pins file (mcp.pins.writeBack with a file). */
  readonly writesFile: boolean;
  /** Called after an accept (the decision log records it). */
  readonly onAccept?: (server: string, tool: string | undefined, entry: PinsFileEntry) => void;
}

function send(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...extra });
  res.end(text);
}

const ROUTES: Record<string, string> = { '/v1/mcp/tools': 'GET', '/v1/mcp/tools/accept': 'POST' };

/** Serves a pin route; returns false when the path is not one (the caller continues). */
export function handleMcpRoute(routes: McpRoutes, url: string, req: IncomingMessage, res: ServerResponse): boolean {
  const parsed = new URL(url, 'http://admin');
  const method = ROUTES[parsed.pathname];
  if (method === undefined || routes.token === '') return false;
  if (!routes.allowRemote && !isLoopback(req.socket.remoteAddress)) {
    send(res, 403, { error: 'admin endpoints accept loopback peers only (data.allowRemote)' });
    return true;
  }
  if (!authorized(routes, req.headers.authorization)) {
    send(res, 401, { error: 'missing or invalid bearer token' }, { 'www-authenticate': 'Bearer' });
    return true;
  }
  if (req.method !== method) {
    send(res, 405, { error: `${parsed.pathname} accepts ${method}` }, { allow: method });
    return true;
  }
  if (method === 'GET') {
    const server = parsed.searchParams.get('server') ?? undefined;
    send(res, 200, { tools: routes.pins.list(server) });
    return true;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (c: Buffer) => {
    size += c.length;
    if (size <= 64 * 1024) chunks.push(c);
  });
  req.on('end', () => {
    if (size > 64 * 1024) return send(res, 413, { error: 'body exceeds 65536 bytes' });
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
    } catch {
      return send(res, 400, { error: 'the body is not JSON', code: 'TG_ERR_BAD_REQUEST' });
    }
    const { server, tool } = (body ?? {}) as { server?: unknown; tool?: unknown };
    if (typeof server !== 'string' || server === '' || (tool !== undefined && typeof tool !== 'string'))
      return send(res, 400, {
        error: 'expected {"server": "<authority>", "tool": "<name>"} (tool optional)',
        code: 'TG_ERR_BAD_REQUEST',
      });
    try {
      const entry = routes.pins.accept(server, tool);
      routes.onAccept?.(server, tool, entry);
      return send(res, 200, { accepted: entry, file_written: routes.writesFile });
    } catch (err) {
      if (err instanceof TollgateError)
        return send(res, err.code === 'TG_ERR_BAD_REQUEST' ? 404 : 500, { error: err.message, code: err.code });
      return send(res, 500, { error: (err as Error).message });
    }
  });
  return true;
}
