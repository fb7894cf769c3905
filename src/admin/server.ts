/**
 * The admin listener: /healthz (the process serves), /readyz (a policy is loaded),
 * /version (build and policy revision), and — when a policy token is configured —
 * the policy lifecycle endpoints (admin/policy-routes.ts): GET /v1/bundle/status,
 * POST /v1/bundle/rollback, PATCH /v1/data.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Pdp } from '../pdp/types.ts';
import { splitHostPort } from '../config/load.ts';
import type { Metrics } from '../telemetry/metrics.ts';
import { handlePolicyRoute, type PolicyRoutes } from './policy-routes.ts';
import { handleApprovalRoute, type ApprovalRoutes } from './approval-routes.ts';
import { handleMcpRoute, type McpRoutes } from './mcp-routes.ts';
import { memoryReport } from './memory.ts';

/** Options of createAdmin. */
export interface AdminOptions {
  readonly listen: string;
  readonly pdp: Pdp;
  readonly version: string;
  /** Prometheus metrics served on /metrics. */
  readonly metrics?: Metrics;
  /** Policy lifecycle endpoints (rollback, data patch, status); absent: they answer 404. */
  readonly policy?: PolicyRoutes;
  /** Approvals endpoints (/v1/approvals); absent: they answer 404. */
  readonly approvals?: ApprovalRoutes;
  /** MCP tool-pin endpoints (list, accept); absent: they answer 404. */
  readonly mcp?: McpRoutes;
}

/** The running admin listener. */
export interface Admin {
  listen(): Promise<AddressInfo>;
  close(): Promise<void>;
}

/** Creates the admin listener. */
export function createAdmin(options: AdminOptions): Admin {
  const json = (status: number, body: unknown): { status: number; body: string } => ({
    status,
    body: JSON.stringify(body),
  });
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (options.policy !== undefined && handlePolicyRoute(options.policy, path ?? '/', req, res)) return;
    if (options.approvals !== undefined && handleApprovalRoute(options.approvals, req.url ?? '/', req, res)) return;
    if (options.mcp !== undefined && handleMcpRoute(options.mcp, req.url ?? '/', req, res)) return;
    if (path === '/metrics' && options.metrics !== undefined && (req.method === 'GET' || req.method === 'HEAD')) {
      const metrics = options.metrics;
      metrics.render().then(
        (text) => {
          res.writeHead(200, { 'content-type': metrics.contentType, 'content-length': Buffer.byteLength(text) });
          res.end(req.method === 'HEAD' ? undefined : text);
        },
        () => {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end('metrics unavailable\n');
        },
      );
      return;
    }
    const info = options.pdp.info();
    let out: { status: number; body: string };
    if (req.method !== 'GET' && req.method !== 'HEAD') out = json(405, { error: 'method not allowed' });
    else if (path === '/healthz') out = json(200, { status: 'ok' });
    else if (path === '/readyz')
      out = info ? json(200, { status: 'ready', revision: info.revision }) : json(503, { status: 'no policy loaded' });
    else if (path === '/version') out = json(200, { version: options.version, policy: info ?? null });
    else if (path === '/debug/memory') out = json(200, memoryReport());
    else out = json(404, { error: `no admin endpoint ${path}` });
    res.writeHead(out.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out.body) });
    res.end(req.method === 'HEAD' ? undefined : out.body);
  });
  const { host, port } = splitHostPort(options.listen);
  return {
    listen: () =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve(server.address() as AddressInfo);
        });
      }),
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
