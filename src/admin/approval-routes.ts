/**
 * The approvals admin endpoints, mounted on the admin listener when
 * state.approvals.token is set:
 *   GET  /v1/approvals[?status=pending&limit=50]    newest first
 *   GET  /v1/approvals/{id}
 *   POST /v1/approvals/{id}/approve   {"approver": "alice", "comment": "..."}
 *   POST /v1/approvals/{id}/reject    {"approver": "alice", "comment": "..."}
 * Every request needs `Authorization: Bearer <state.approvals.token>` and, unless
 * allowRemote, a loopback peer. Any replica's admin API answers for the shared store.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { TollgateError } from '../errors.ts';
import type { Approvals } from '../state/approvals.ts';
import { approvalEvent } from '../state/approvals.ts';
import type { ApprovalRecord, ApprovalStatus } from '../state/types.ts';
import { isLoopback } from './policy-routes.ts';

/** What the admin server needs to serve the approvals routes. */
export interface ApprovalRoutes {
  readonly approvals: Approvals;
  readonly token: string;
  readonly allowRemote: boolean;
}

const STATUSES: readonly string[] = ['pending', 'approved', 'rejected', 'expired'];
const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

function send(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...extra });
  res.end(text);
}

/** An approval as the API shows it (times as RFC 3339, the status URL). */
function view(routes: ApprovalRoutes, record: ApprovalRecord): Record<string, unknown> {
  return approvalEvent('requested', record, routes.approvals.statusUrl(record.id)).approval as Record<string, unknown>;
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 64 * 1024) throw new TollgateError('TG_ERR_BAD_REQUEST', 'approval body is larger than 64 KiB');
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new TollgateError('TG_ERR_BAD_REQUEST', 'approval body is not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new TollgateError('TG_ERR_BAD_REQUEST', 'approval body must be a JSON object');
  return parsed as Record<string, unknown>;
}

async function serve(
  routes: ApprovalRoutes,
  path: string,
  query: URLSearchParams,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const { approvals } = routes;
  if (path === '/v1/approvals') {
    if (req.method !== 'GET') return send(res, 405, { error: '/v1/approvals accepts GET' }, { allow: 'GET' });
    const status = query.get('status') ?? undefined;
    if (status !== undefined && !STATUSES.includes(status))
      return send(res, 400, { error: `status must be one of ${STATUSES.join(', ')}` });
    const limit = Math.min(1000, Math.max(1, Number(query.get('limit') ?? 100) || 100));
    const list = await approvals.list(status as ApprovalStatus | undefined, limit);
    return send(res, 200, { approvals: list.map((r) => view(routes, r)) });
  }
  const m = /^\/v1\/approvals\/([A-Za-z0-9-]{1,64})(\/(approve|reject))?$/.exec(path);
  if (m === null) return send(res, 404, { error: `no admin endpoint ${path}` });
  const id = m[1]!;
  const action = m[3];
  if (action === undefined) {
    if (req.method !== 'GET') return send(res, 405, { error: `${path} accepts GET` }, { allow: 'GET' });
    const record = await approvals.show(id);
    return record === undefined ? send(res, 404, { error: `no approval ${id}` }) : send(res, 200, view(routes, record));
  }
  if (req.method !== 'POST') return send(res, 405, { error: `${path} accepts POST` }, { allow: 'POST' });
  const body = await readJson(req);
  const approver = body.approver;
  if (typeof approver !== 'string' || approver.trim() === '')
    return send(res, 400, { error: 'approver (the name of the person deciding) is required' });
  if (body.comment !== undefined && typeof body.comment !== 'string')
    return send(res, 400, { error: 'comment must be a string' });
  const outcome = action === 'approve' ? 'approved' : 'rejected';
  const result = await approvals.decide(id, outcome, approver.trim(), body.comment as string | undefined);
  if (result.ok) return send(res, 200, view(routes, result.record));
  switch (result.reason) {
    case 'not_found':
      return send(res, 404, { error: `no approval ${id}` });
    case 'not_an_approver':
      return send(res, 403, {
        error: `${approver} may not decide approval ${id} (approvers: ${result.record.approvers.join(', ')})`,
      });
    case 'not_pending':
      return send(res, 409, {
        error: `approval ${id} is ${result.record?.status ?? 'not pending'}, not pending`,
        ...(result.record === undefined ? {} : { approval: view(routes, result.record) }),
      });
    default:
      return result satisfies never;
  }
}

/** Serves an approvals route; returns false when the path is not one (the caller continues). */
export function handleApprovalRoute(
  routes: ApprovalRoutes,
  url: string,
  req: IncomingMessage,
  res: ServerResponse,
): boolean {
  const [path = '/', search = ''] = url.split('?');
  if (routes.token === '' || (path !== '/v1/approvals' && !path.startsWith('/v1/approvals/'))) return false;
  if (!routes.allowRemote && !isLoopback(req.socket.remoteAddress)) {
    send(res, 403, { error: 'approvals endpoints accept loopback peers only (state.approvals.allowRemote)' });
    return true;
  }
  const bearer = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
  if (bearer === null || !timingSafeEqual(digest(bearer[1]!.trim()), digest(routes.token))) {
    send(res, 401, { error: 'missing or invalid bearer token' }, { 'www-authenticate': 'Bearer' });
    return true;
  }
  serve(routes, path, new URLSearchParams(search), req, res).catch((err: unknown) => {
    if (res.headersSent) return;
    if (err instanceof TollgateError)
      send(res, err.code === 'TG_ERR_BAD_REQUEST' ? 400 : err.status, { error: err.message, code: err.code });
    else send(res, 500, { error: err instanceof Error ? err.message : String(err) });
  });
  return true;
}
