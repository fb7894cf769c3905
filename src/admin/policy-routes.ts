/**
 * The policy lifecycle admin endpoints, mounted on the admin listener:
 *   GET   /v1/bundle/status    revisions, rejection counters, shadow counters
 *   POST  /v1/bundle/rollback  switch back to the previous revision
 *   PATCH /v1/data             RFC 6902 JSON Patch over the live policy data
 * Every request needs `Authorization: Bearer <data.token>` (compared in constant time)
 * and, unless data.allowRemote, a loopback peer. With no token configured the routes
 * are not mounted at all.
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { TollgateError } from '../errors.ts';
import type { PolicyLifecycle } from '../bundle/lifecycle.ts';

/** What the admin server needs to serve the policy routes. */
export interface PolicyRoutes {
  readonly lifecycle: Pick<PolicyLifecycle, 'rollback' | 'patchData' | 'status'>;
  /** Bearer token; empty disables the routes. */
  readonly token: string;
  /** Accept non-loopback peers. */
  readonly allowRemote: boolean;
  /** Largest PATCH body in bytes. */
  readonly maxBodyBytes?: number;
}

const ROUTES: Record<string, string> = {
  '/v1/bundle/status': 'GET',
  '/v1/bundle/rollback': 'POST',
  '/v1/data': 'PATCH',
};

function send(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...extra });
  res.end(text);
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** True when the Authorization header carries the bearer token (compared in constant time). */
export function authorized(routes: Pick<PolicyRoutes, 'token'>, header: string | undefined): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(header ?? '');
  return m !== null && timingSafeEqual(digest(m[1]!.trim()), digest(routes.token));
}

/** True for a loopback peer address (IPv4 127/8, ::1, IPv4-mapped 127/8). */
export function isLoopback(address: string | undefined): boolean {
  return (
    address !== undefined && (address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.'))
  );
}

function errorBody(err: unknown): { status: number; body: unknown } {
  if (err instanceof TollgateError)
    return { status: err.code === 'TG_ERR_BAD_REQUEST' ? 400 : 409, body: { error: err.message, code: err.code } };
  return { status: 500, body: { error: (err as Error).message } };
}

/** Serves a policy route; returns false when the path is not one (the caller continues). */
export function handlePolicyRoute(
  routes: PolicyRoutes,
  path: string,
  req: IncomingMessage,
  res: ServerResponse,
): boolean {
  const method = ROUTES[path];
  if (method === undefined || routes.token === '') return false;
  if (!routes.allowRemote && !isLoopback(req.socket.remoteAddress)) {
    send(res, 403, { error: 'policy admin endpoints accept loopback peers only (data.allowRemote)' });
    return true;
  }
  if (!authorized(routes, req.headers.authorization)) {
    send(res, 401, { error: 'missing or invalid bearer token' }, { 'www-authenticate': 'Bearer' });
    return true;
  }
  if (req.method !== method) {
    send(res, 405, { error: `${path} accepts ${method}` }, { allow: method });
    return true;
  }
  const limit = routes.maxBodyBytes ?? 1024 * 1024;
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (c: Buffer) => {
    size += c.length;
    if (size <= limit) chunks.push(c);
  });
  req.on('end', () => {
    if (size > limit) return send(res, 413, { error: `body exceeds ${limit} bytes` });
    if (path === '/v1/bundle/status') return send(res, 200, routes.lifecycle.status());
    if (path === '/v1/data') {
      try {
        const event = routes.lifecycle.patchData(Buffer.concat(chunks).toString('utf8'));
        return send(res, 200, {
          revision: event.revision,
          data_version: event.dataVersion,
          operations: event.patch.length,
          timestamp: event.timestamp,
        });
      } catch (err) {
        const { status, body } = errorBody(err);
        return send(res, status, body);
      }
    }
    routes.lifecycle.rollback().then(
      (event) => send(res, 200, { revision: event.revision, previous_revision: event.previousRevision ?? null }),
      (err: unknown) => {
        const { status, body } = errorBody(err);
        send(res, status, body);
      },
    );
  });
  return true;
}
