/**
 * The configuration schema: the types *are* the schema. Objects are closed (unknown
 * keys rejected), keys are camelCase, every field has a description and a default.
 * `tollgate config schema` prints it as JSON Schema for editors.
 */
import { z } from 'zod';

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'expected host:port');

const agentSchema = z
  .strictObject({
    id: z.string().default('').describe('Agent id reported to the policy as input.agent.id (empty: unknown agent).'),
    role: z.string().default('').describe('Agent role reported as input.agent.role.'),
    labels: z.record(z.string(), z.string()).default({}).describe('Free-form labels reported as input.agent.labels.'),
    token: z
      .strictObject({
        header: z.string().default('x-tollgate-agent-token').describe('Request header carrying an HS256 JWT that overrides the agent identity.'),
        secret: z.string().min(16).describe('Shared HS256 secret used to verify the token (at least 16 characters).'),
      })
      .optional()
      .describe('When set, a verified token in this header overrides id/role/labels; an invalid token is refused with 401. The header is never forwarded.'),
  })
  .describe('The identity of the agent this sidecar serves.');

const failureModeAllow = z.boolean().default(false).describe('Allow the request when no decision could be made (Envoy\'s failure_mode_allow). Default: fail closed.');
const failureModeAllowHosts = z.array(z.string()).default([]).describe('Destination hosts (no port) for which a PDP failure allows the request; all others fail closed.');

const wasmPdpSchema = z
  .strictObject({
    type: z.literal('wasm').default('wasm').describe('PDP kind: "wasm" evaluates an OPA WASM bundle in-process (the default); "extauthz" asks a remote Envoy ext_authz server.'),
    bundle: z.string().default('').describe('Path to an OPA bundle (.tar.gz built by `opa build -t wasm`) or a directory holding policy.wasm and data.json. Empty: the embedded default bundle.'),
    decisionPath: z.string().default('tollgate/authz/decision').describe('The entrypoint whose value is the decision (boolean or opa-envoy-plugin result object).'),
    data: z.record(z.string(), z.unknown()).default({}).describe('Data merged over the bundle\'s data.json at load (deep merge; objects merge, other values replace).'),
    timeoutMs: z.number().int().positive().default(100).describe('Evaluation deadline in milliseconds; a decision that takes longer is discarded and the failure mode applies.'),
    failureModeAllow,
    failureModeAllowHosts,
  })
  .describe('In-process PDP: an OPA policy compiled to WebAssembly.');

const circuitBreakerSchema = z
  .strictObject({
    failureThreshold: z.number().int().positive().default(3).describe('Consecutive timeouts or connection failures that open the circuit; while open, decisions fail at once (failure mode applies) instead of each waiting for the deadline.'),
    openMs: z.number().int().positive().default(2000).describe('Cool-down before a half-open circuit lets one probe request through; its success closes the circuit, its failure opens it again.'),
  })
  .describe('Circuit breaker in front of the remote PDP, so a dead PDP costs one timeout, not one per request.');

const extAuthzPdpSchema = z
  .strictObject({
    type: z.literal('extauthz').describe('PDP kind: "extauthz" sends an Envoy v3 CheckRequest per request to a remote ext_authz server (opa-envoy-plugin, another Tollgate) and enforces its CheckResponse.'),
    target: hostPort.describe('host:port of the remote ext_authz gRPC server (plaintext HTTP/2, one long-lived channel).'),
    timeoutMs: z.number().int().positive().default(200).describe('Deadline of each Check call in milliseconds; past it the failure mode applies (Envoy ext_authz timeout).'),
    failureModeAllow,
    failureModeAllowHosts,
    circuitBreaker: circuitBreakerSchema.default({ failureThreshold: 3, openMs: 2000 }),
  })
  .describe('Remote PDP over Envoy\'s ext_authz v3 gRPC protocol.');

const pdpSchema = z.discriminatedUnion('type', [wasmPdpSchema, extAuthzPdpSchema]).describe('The policy decision point: "wasm" (in-process, default) or "extauthz" (remote).');

const extAuthzSchema = z
  .strictObject({
    enabled: z.boolean().default(true).describe('Serve Envoy\'s ext_authz v3 gRPC API (envoy.service.auth.v3.Authorization/Check), with grpc.health.v1 and server reflection, deciding with the same PDP as the proxy.'),
    listen: hostPort.default('127.0.0.1:9191').describe('ext_authz gRPC listener (plaintext HTTP/2); 9191 as opa-envoy-plugin.'),
    dryRun: z.boolean().default(false).describe('Always answer OK while still evaluating and logging the real decision (opa-envoy-plugin\'s dry-run).'),
    maxReceiveBytes: z.number().int().min(1024).default(4194304).describe('Largest CheckRequest accepted in bytes; larger gets RESOURCE_EXHAUSTED (gRPC\'s and opa-envoy-plugin\'s 4 MiB default).'),
  })
  .describe('The Envoy ext_authz gRPC server (Tollgate as the PDP of Envoy or Istio).');

const proxySchema = z
  .strictObject({
    listen: hostPort.default('127.0.0.1:15001').describe('Outbound listener: explicit proxy (absolute-form) and origin-form (Host) requests.'),
    maxRequestBytes: z.number().int().nonnegative().default(65536).describe('Request body bytes buffered for the policy (Envoy\'s max_request_bytes); beyond it input.truncated_body is true.'),
    maxHeaderBytes: z.number().int().min(1024).default(16384).describe('Largest accepted request head; larger gets 431.'),
    resolve: z.record(z.string(), hostPort).default({}).describe('Static address overrides, like curl --resolve: "name:port" -> "ip:port". The policy and the upstream Host still see the name.'),
    upstreamTimeoutMs: z.number().int().positive().default(30000).describe('Time allowed for the upstream to send response headers; past it 504.'),
    upstreamConnectTimeoutMs: z.number().int().positive().default(5000).describe('Time allowed to connect to the upstream; past it 502.'),
    denyStatus: z.number().int().min(400).max(599).default(403).describe('Status of a deny when the policy sets no http_status.'),
  })
  .describe('The outbound HTTP proxy listener.');

const adminSchema = z
  .strictObject({
    listen: hostPort.default('127.0.0.1:15000').describe('Admin listener: /healthz, /readyz, /version.'),
  })
  .describe('The admin endpoint.');

/** The whole tollgate.yaml document. */
export const configSchema = z
  .strictObject({
    agent: agentSchema.default({ id: '', role: '', labels: {} }),
    pdp: pdpSchema.default({
      type: 'wasm',
      bundle: '',
      decisionPath: 'tollgate/authz/decision',
      data: {},
      timeoutMs: 100,
      failureModeAllow: false,
      failureModeAllowHosts: [],
    }),
    proxy: proxySchema.default({
      listen: '127.0.0.1:15001',
      maxRequestBytes: 65536,
      maxHeaderBytes: 16384,
      resolve: {},
      upstreamTimeoutMs: 30000,
      upstreamConnectTimeoutMs: 5000,
      denyStatus: 403,
    }),
    admin: adminSchema.default({ listen: '127.0.0.1:15000' }),
    extAuthz: extAuthzSchema.default({ enabled: true, listen: '127.0.0.1:9191', dryRun: false, maxReceiveBytes: 4194304 }),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('Log level of the structured (pino) log.'),
  })
  .describe('Tollgate sidecar configuration (tollgate.yaml).');

/** The validated configuration, as the rest of the code sees it (deep-frozen). */
export type Config = z.infer<typeof configSchema>;

/** The in-process (WASM) PDP settings. */
export type WasmPdpConfig = z.infer<typeof wasmPdpSchema>;

/** The remote (ext_authz client) PDP settings. */
export type ExtAuthzPdpConfig = z.infer<typeof extAuthzPdpSchema>;

/** The configuration as JSON Schema (draft 2020-12). */
export function configJsonSchema(): unknown {
  return z.toJSONSchema(configSchema, { io: 'input' });
}
