/**
 * The configuration schema: the types *are* the schema. Objects are closed (unknown
 * keys rejected), keys are camelCase, every field has a description and a default.
 * `tollgate config schema` prints it as JSON Schema for editors.
 */
import { z } from 'zod';

const hostPort = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'expected host:port');

const claimPath = z
  .string()
  .min(1)
  .describe(
    'A claim: a top-level claim name ("sub", "https://example.com/role"), or a JSON Pointer into the claims when it starts with "/" ("/kubernetes.io/namespace").',
  );

const jwtIssuerSchema = z
  .strictObject({
    issuer: z
      .string()
      .min(1)
      .describe('The `iss` a token must carry (exactly). Tokens are matched to an issuer entry by their `iss`.'),
    preset: z
      .enum(['oidc', 'kubernetes'])
      .default('oidc')
      .describe(
        'Claim defaults: "oidc" maps sub → id, role → role; "kubernetes" (a projected service-account token) maps sub (system:serviceaccount:<ns>:<name>) → id and the kubernetes.io claims → labels namespace, serviceaccount, pod. Explicit `claims` override the preset.',
      ),
    audience: z
      .array(z.string().min(1))
      .min(1)
      .describe('Accepted `aud` values: a token must name at least one (audience-bound tokens only).'),
    jwksUrl: z
      .string()
      .default('')
      .describe(
        "URL of the issuer's JWKS. Empty: OIDC discovery, the `jwks_uri` of <issuer>/.well-known/openid-configuration (whose `issuer` must equal this one).",
      ),
    algorithms: z
      .array(
        z.enum(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519']),
      )
      .default(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'])
      .describe('Accepted signature algorithms (asymmetric only; HS256 stays with agent.token).'),
    clockSkewSeconds: z
      .number()
      .int()
      .nonnegative()
      .default(30)
      .describe('Tolerance applied to `exp`, `nbf` and `iat`, for clocks that disagree.'),
    requireExp: z.boolean().default(true).describe('Refuse tokens without an `exp` claim.'),
    cacheMaxAgeMs: z
      .number()
      .int()
      .positive()
      .default(600000)
      .describe('How long a fetched key set is used before it is fetched again (a removed key stops verifying then).'),
    cooldownMs: z
      .number()
      .int()
      .nonnegative()
      .default(30000)
      .describe(
        'Key rotation: a token naming an unknown `kid` refetches the key set at once, but at most once per cooldown.',
      ),
    fetchTimeoutMs: z
      .number()
      .int()
      .positive()
      .default(5000)
      .describe('Time allowed to fetch the discovery document or the key set.'),
    claims: z
      .strictObject({
        id: claimPath.optional().describe('Claim giving input.agent.id (default: sub). A token without it is refused.'),
        role: claimPath
          .optional()
          .describe('Claim giving input.agent.role (default: role for oidc, none for kubernetes).'),
        labels: z
          .record(z.string(), claimPath)
          .optional()
          .describe('input.agent.labels: label name → claim (string, number or boolean; arrays are joined by ",").'),
      })
      .prefault({})
      .describe('How verified claims map to input.agent (defaults from the preset).'),
  })
  .describe('One trusted JWT issuer.');

const spiffeAgentSchema = z
  .strictObject({
    id: z.string().optional().describe('input.agent.id for this SPIFFE ID (default: by `idFrom`).'),
    role: z.string().optional().describe('input.agent.role for this SPIFFE ID.'),
    labels: z.record(z.string(), z.string()).optional().describe('Extra input.agent.labels for this SPIFFE ID.'),
  })
  .describe('The agent a SPIFFE ID stands for.');

const spiffeSchema = z
  .strictObject({
    trustDomains: z
      .array(z.string().min(1))
      .default([])
      .describe('Accepted trust domains (e.g. "example.org"); a SPIFFE ID from another is refused. Empty: any.'),
    idFrom: z
      .enum(['spiffe-id', 'path', 'last-segment'])
      .default('spiffe-id')
      .describe(
        'input.agent.id of a SPIFFE ID without an `agents` entry: the whole ID, its path ("/ns/shop/sa/support-bot"), or its last path segment ("support-bot").',
      ),
    agents: z
      .record(z.string(), spiffeAgentSchema)
      .default({})
      .describe('Per-SPIFFE-ID agent (keys are full spiffe:// IDs): id, role and labels.'),
  })
  .describe(
    'How a SPIFFE ID (mTLS SVID, Envoy principal, XFCC URI) becomes input.agent: spiffe_id is the ID; labels.trust_domain, and labels.namespace / labels.serviceaccount for /ns/<ns>/sa/<sa> paths.',
  );

const mtlsSchema = z
  .strictObject({
    certFile: z.string().min(1).describe("PEM certificate chain Tollgate's proxy listener presents (its own SVID)."),
    keyFile: z.string().min(1).describe('PEM private key of certFile.'),
    bundleFile: z
      .string()
      .min(1)
      .describe(
        "SPIFFE trust bundle agents' X.509 SVIDs are verified against: PEM CA certificates, or a SPIFFE bundle (JWKS with x509-svid keys). All three files are re-read when they change.",
      ),
    requireClientCert: z
      .boolean()
      .default(true)
      .describe('Refuse TLS connections without a client certificate. false: such agents fall back to other sources.'),
  })
  .describe(
    "When set, the proxy listener speaks TLS (agents use an https:// proxy URL) and verifies client certificates: the SVID's spiffe:// URI SAN becomes input.agent.spiffe_id.",
  );

const identitySchema = z
  .strictObject({
    required: z
      .boolean()
      .default(false)
      .describe(
        'Refuse (401) a request that carries no verified identity, instead of deciding it as the configured agent.',
      ),
    jwt: z
      .strictObject({
        header: z
          .string()
          .default('x-tollgate-agent-token')
          .describe(
            'Request header carrying the JWT ("Bearer " prefix optional); removed before the policy and the upstream see the request. It may be agent.token.header: the token\'s alg chooses HS256 or an issuer.',
          ),
        issuers: z.array(jwtIssuerSchema).min(1).describe('Trusted issuers (OIDC providers, Kubernetes clusters).'),
      })
      .optional()
      .describe("JWTs verified against an issuer's JWKS (jose; RS/PS/ES/EdDSA)."),
    spiffe: spiffeSchema.prefault({}),
    mtls: mtlsSchema.optional(),
    extAuthz: z
      .strictObject({
        principal: z
          .boolean()
          .default(false)
          .describe(
            "Trust a CheckRequest's attributes.source.principal (the peer Envoy authenticated): spiffe:// IDs map as `spiffe`, other principals become input.agent.id.",
          ),
        xfccHeader: z
          .string()
          .default('')
          .describe(
            'Header holding an x-forwarded-client-cert Envoy set (e.g. "x-forwarded-client-cert"): its last element\'s URI (SPIFFE ID) is the agent. Only set when Envoy sanitises the header. Empty: ignored.',
          ),
      })
      .prefault({})
      .describe('What the ext_authz server trusts from Envoy.'),
  })
  .describe(
    "Verified agent identity. Order: a token in the request header, then the connection's SVID (or Envoy's principal / XFCC on ext_authz), then the configured id/role/labels. A credential that fails verification is refused with 401 TG_ERR_IDENTITY.",
  );

const agentSchema = z
  .strictObject({
    id: z.string().default('').describe('Agent id reported to the policy as input.agent.id (empty: unknown agent).'),
    role: z.string().default('').describe('Agent role reported as input.agent.role.'),
    labels: z.record(z.string(), z.string()).default({}).describe('Free-form labels reported as input.agent.labels.'),
    token: z
      .strictObject({
        header: z
          .string()
          .default('x-tollgate-agent-token')
          .describe('Request header carrying an HS256 JWT that overrides the agent identity.'),
        secret: z.string().min(16).describe('Shared HS256 secret used to verify the token (at least 16 characters).'),
      })
      .optional()
      .describe(
        'When set, a verified token in this header overrides id/role/labels; an invalid token is refused with 401. The header is never forwarded.',
      ),
    identity: identitySchema.prefault({}),
  })
  .describe('The identity of the agent this sidecar serves.');

const failureModeAllow = z
  .boolean()
  .default(false)
  .describe("Allow the request when no decision could be made (Envoy's failure_mode_allow). Default: fail closed.");
const failureModeAllowHosts = z
  .array(z.string())
  .default([])
  .describe('Destination hosts (no port) for which a PDP failure allows the request; all others fail closed.');

const wasmPdpSchema = z
  .strictObject({
    type: z
      .literal('wasm')
      .default('wasm')
      .describe(
        'PDP kind: "wasm" evaluates an OPA WASM bundle in-process (the default); "extauthz" asks a remote Envoy ext_authz server.',
      ),
    bundle: z
      .string()
      .default('')
      .describe(
        'Path to an OPA bundle (.tar.gz built by `opa build -t wasm`) or a directory holding policy.wasm and data.json. Empty: the embedded default bundle.',
      ),
    decisionPath: z
      .string()
      .default('tollgate/authz/decision')
      .describe('The entrypoint whose value is the decision (boolean or opa-envoy-plugin result object).'),
    data: z
      .record(z.string(), z.unknown())
      .default({})
      .describe("Data merged over the bundle's data.json at load (deep merge; objects merge, other values replace)."),
    timeoutMs: z
      .number()
      .int()
      .positive()
      .default(100)
      .describe(
        'Evaluation deadline in milliseconds; a decision that takes longer is discarded and the failure mode applies.',
      ),
    failureModeAllow,
    failureModeAllowHosts,
  })
  .describe('In-process PDP: an OPA policy compiled to WebAssembly.');

const circuitBreakerSchema = z
  .strictObject({
    failureThreshold: z
      .number()
      .int()
      .positive()
      .default(3)
      .describe(
        'Consecutive timeouts or connection failures that open the circuit; while open, decisions fail at once (failure mode applies) instead of each waiting for the deadline.',
      ),
    openMs: z
      .number()
      .int()
      .positive()
      .default(2000)
      .describe(
        'Cool-down before a half-open circuit lets one probe request through; its success closes the circuit, its failure opens it again.',
      ),
  })
  .describe('Circuit breaker in front of the remote PDP, so a dead PDP costs one timeout, not one per request.');

const extAuthzPdpSchema = z
  .strictObject({
    type: z
      .literal('extauthz')
      .describe(
        'PDP kind: "extauthz" sends an Envoy v3 CheckRequest per request to a remote ext_authz server (opa-envoy-plugin, another Tollgate) and enforces its CheckResponse.',
      ),
    target: hostPort.describe(
      'host:port of the remote ext_authz gRPC server (plaintext HTTP/2, one long-lived channel).',
    ),
    timeoutMs: z
      .number()
      .int()
      .positive()
      .default(200)
      .describe(
        'Deadline of each Check call in milliseconds; past it the failure mode applies (Envoy ext_authz timeout).',
      ),
    failureModeAllow,
    failureModeAllowHosts,
    circuitBreaker: circuitBreakerSchema.prefault({}),
  })
  .describe("Remote PDP over Envoy's ext_authz v3 gRPC protocol.");

const cedarFields = {
  policies: z
    .string()
    .min(1)
    .describe(
      'Path to a Cedar policy file (.cedar) or a directory whose *.cedar files (sorted by name) form one policy set. Policy ids are "<file>:<n>" unless a policy has an @id("...") annotation.',
    ),
  schema: z
    .string()
    .min(1)
    .describe(
      'Path to the Cedar schema (.cedarschema, or .json in the JSON schema format). The policies are validated against it at load, and the request and entities Tollgate builds are checked against it on every decision.',
    ),
  entities: z
    .string()
    .default('')
    .describe(
      'Path to a JSON array of extra Cedar entities (Cedar JSON entity format), e.g. Destination entities with attributes. Empty: only the entities Tollgate builds from the request.',
    ),
  timeoutMs: z
    .number()
    .int()
    .positive()
    .default(100)
    .describe(
      'Evaluation deadline in milliseconds; a decision that takes longer is discarded and the failure mode applies.',
    ),
};

const cedarPdpSchema = z
  .strictObject({
    type: z
      .literal('cedar')
      .describe(
        'PDP kind: "cedar" evaluates Cedar policies in-process (@cedar-policy/cedar-wasm, loaded only when configured); README "Cedar" documents the request mapping.',
      ),
    ...cedarFields,
    failureModeAllow,
    failureModeAllowHosts,
  })
  .describe('In-process PDP: Cedar policies over the request, the agent and the MCP call.');

const stageName = z
  .string()
  .regex(/^[a-z][a-z0-9_-]{0,62}$/, 'expected a lowercase name of letters, digits, "-" and "_"')
  .describe(
    'Stage name (unique in the chain), e.g. "central" or "local": on spans, in the decision log, in `tollgate explain`.',
  );
const stageFailureModeAllow = z
  .boolean()
  .default(false)
  .describe(
    'When this stage makes no decision (an error, or no answer within timeoutMs): true counts it as an allow, false (default) as a deny.',
  );

const wasmStageSchema = z
  .strictObject({
    name: stageName,
    type: z.literal('wasm').describe('An OPA bundle compiled to WebAssembly, evaluated in-process.'),
    bundle: wasmPdpSchema.shape.bundle,
    decisionPath: wasmPdpSchema.shape.decisionPath,
    data: wasmPdpSchema.shape.data,
    timeoutMs: wasmPdpSchema.shape.timeoutMs,
    failureModeAllow: stageFailureModeAllow,
  })
  .describe('A chain stage: an in-process OPA WASM bundle (read once at start; no polling or hot swap).');

const extAuthzStageSchema = z
  .strictObject({
    name: stageName,
    type: z.literal('extauthz').describe('A remote Envoy ext_authz server (opa-envoy-plugin, another Tollgate).'),
    target: extAuthzPdpSchema.shape.target,
    timeoutMs: extAuthzPdpSchema.shape.timeoutMs,
    failureModeAllow: stageFailureModeAllow,
    circuitBreaker: circuitBreakerSchema.prefault({}),
  })
  .describe("A chain stage: a remote ext_authz PDP, e.g. the central team's OPA.");

const cedarStageSchema = z
  .strictObject({
    name: stageName,
    type: z.literal('cedar').describe('Cedar policies evaluated in-process.'),
    ...cedarFields,
    failureModeAllow: stageFailureModeAllow,
  })
  .describe('A chain stage: Cedar policies.');

const chainPdpSchema = z
  .strictObject({
    type: z
      .literal('chain')
      .describe('PDP kind: "chain" asks several stages (each a PDP of its own) and combines their decisions.'),
    combine: z
      .enum(['deny-overrides', 'first-applicable'])
      .default('deny-overrides')
      .describe(
        '"deny-overrides" (default): all stages are asked at once; any deny wins, and an allow needs at least one stage that allows. "first-applicable": stages are asked in order and the first that applies decides. A stage does not apply when its result says "applicable": false (Cedar: no policy matched); when no stage applies the chain denies.',
      ),
    stages: z
      .array(z.discriminatedUnion('type', [wasmStageSchema, extAuthzStageSchema, cedarStageSchema]))
      .min(1)
      .describe('The stages in order, e.g. [central, local]: each with its own deadline and failure mode.'),
    failureModeAllow: failureModeAllow.describe(
      "Allow the request when the chain as a whole makes no decision (a bug: each stage's own failure mode resolves stage failures). Default: fail closed.",
    ),
    failureModeAllowHosts,
  })
  .describe('Layered policies: a central and a local stage (or more) combined by one declared rule.');

const pdpSchema = z
  .discriminatedUnion('type', [wasmPdpSchema, extAuthzPdpSchema, cedarPdpSchema, chainPdpSchema])
  .describe(
    'The policy decision point: "wasm" (in-process, default), "extauthz" (remote), "cedar" (in-process Cedar) or "chain" (layered stages).',
  );

const extAuthzSchema = z
  .strictObject({
    enabled: z
      .boolean()
      .default(true)
      .describe(
        "Serve Envoy's ext_authz v3 gRPC API (envoy.service.auth.v3.Authorization/Check), with grpc.health.v1 and server reflection, deciding with the same PDP as the proxy.",
      ),
    listen: hostPort
      .default('127.0.0.1:9191')
      .describe('ext_authz gRPC listener (plaintext HTTP/2); 9191 as opa-envoy-plugin.'),
    dryRun: z
      .boolean()
      .default(false)
      .describe("Always answer OK while still evaluating and logging the real decision (opa-envoy-plugin's dry-run)."),
    maxReceiveBytes: z
      .number()
      .int()
      .min(1024)
      .default(4194304)
      .describe(
        "Largest CheckRequest accepted in bytes; larger gets RESOURCE_EXHAUSTED (gRPC's and opa-envoy-plugin's 4 MiB default).",
      ),
  })
  .describe('The Envoy ext_authz gRPC server (Tollgate as the PDP of Envoy or Istio).');

const pathNormalizationSchema = z
  .enum(['strict', 'base', 'merge_slashes', 'decode_and_merge_slashes'])
  .default('strict')
  .describe(
    'How request paths are normalised before the decision; the normalised path is the one decided and forwarded (docs/path-reading.md). ' +
      '"base": RFC 3986 only (decode escaped unreserved characters, uppercase escapes, remove dot segments; Istio BASE, Envoy normalize_path). ' +
      '"merge_slashes": base, then "//" merged (Istio MERGE_SLASHES, Envoy merge_slashes). ' +
      '"decode_and_merge_slashes": merge_slashes, with %2F and %5C decoded to "/" first (Istio DECODE_AND_MERGE_SLASHES, Envoy UNESCAPE_AND_MERGE). ' +
      '"strict" (default): merge_slashes, plus refusing with 400 TG_ERR_AMBIGUOUS_TARGET what servers read differently: path parameters (";", %3B), escaped escapes (%252e), escapes that are not shortest-form UTF-8 (%c0%ae), and Unicode forms that fold into "/", "\\", ".", "%", ";", "?" or "#". ' +
      'Every mode refuses control characters and backslashes; every mode but decode_and_merge_slashes refuses %2F and %5C. There is no "none": Tollgate never decides on an unnormalised path.',
  );

const proxySchema = z
  .strictObject({
    enabled: z
      .boolean()
      .default(true)
      .describe(
        "Serve the outbound proxy (and CONNECT, interception, upgrades, transparent mode). false runs Tollgate as an ext_authz server only, as opa-envoy-plugin is in an Envoy or Istio mesh: the proxy's modules are then never loaded.",
      ),
    listen: hostPort
      .default('127.0.0.1:15001')
      .describe('Outbound listener: explicit proxy (absolute-form) and origin-form (Host) requests.'),
    maxRequestBytes: z
      .number()
      .int()
      .nonnegative()
      .default(65536)
      .describe(
        "Request body bytes buffered for the policy (Envoy's max_request_bytes); beyond it input.truncated_body is true.",
      ),
    maxHeaderBytes: z
      .number()
      .int()
      .min(1024)
      .default(16384)
      .describe('Largest accepted request head; larger gets 431.'),
    resolve: z
      .record(z.string(), hostPort)
      .default({})
      .describe(
        'Static address overrides, like curl --resolve: "name:port" -> "ip:port". The policy and the upstream Host still see the name.',
      ),
    upstreamTimeoutMs: z
      .number()
      .int()
      .positive()
      .default(30000)
      .describe('Time allowed for the upstream to send response headers; past it 504.'),
    upstreamConnectTimeoutMs: z
      .number()
      .int()
      .positive()
      .default(5000)
      .describe('Time allowed to connect to the upstream; past it 502.'),
    denyStatus: z
      .number()
      .int()
      .min(400)
      .max(599)
      .default(403)
      .describe('Status of a deny when the policy sets no http_status.'),
    pathNormalization: pathNormalizationSchema,
    upstreamPoolIdleMs: z
      .number()
      .int()
      .positive()
      .default(60000)
      .describe(
        'A per-origin upstream connection pool with no request in flight for this long is closed (its idle keep-alive sockets too); the next request to that origin opens a new one.',
      ),
    upstreamPoolMax: z
      .number()
      .int()
      .min(1)
      .default(1024)
      .describe(
        'Most per-origin upstream pools kept; past it the least recently used idle pool is closed. Pools with requests in flight are never closed, so the count may exceed this while all are busy.',
      ),
  })
  .describe('The outbound HTTP proxy listener.');

const adminSchema = z
  .strictObject({
    listen: hostPort.default('127.0.0.1:15000').describe('Admin listener: /healthz, /readyz, /version.'),
  })
  .describe('The admin endpoint.');

// --- CONNECT, TLS interception, transparent mode (owned by src/tls, src/pep/connect.ts, src/pep/transparent.ts) ---

const tlsSchema = z
  .strictObject({
    caCertFile: z
      .string()
      .default('')
      .describe(
        "PEM certificate of the local CA that signs intercepted hosts' leaf certificates (`tollgate ca init --out DIR` writes DIR/ca.crt). Empty: no interception; CONNECT is tunnel-only.",
      ),
    caKeyFile: z
      .string()
      .default('')
      .describe('PEM (PKCS#8) ECDSA P-256 key of the local CA (DIR/ca.key, mode 0600). Required with caCertFile.'),
    leafCacheSize: z
      .number()
      .int()
      .min(1)
      .default(1000)
      .describe('Leaf certificates (TLS contexts) kept in the LRU cache; older ones are re-issued on demand.'),
    leafValidDays: z
      .number()
      .int()
      .min(1)
      .max(397)
      .default(30)
      .describe("Validity of issued leaf certificates in days (never past the CA's own expiry)."),
    handshakeTimeoutMs: z
      .number()
      .int()
      .positive()
      .default(10000)
      .describe(
        'Time allowed for an agent to finish the TLS handshake with Tollgate; past it the connection is closed.',
      ),
    upstreamCaFiles: z
      .array(z.string())
      .default([])
      .describe('Extra PEM CA files trusted for upstream TLS, added to the system roots (verification is always on).'),
  })
  .describe('TLS interception: the local CA and upstream trust.');

const destinationMode = z.enum(['tunnel', 'intercept']);

const connectSchema = z
  .strictObject({
    enabled: z
      .boolean()
      .default(true)
      .describe(
        'Serve CONNECT on the outbound listener (decided by the policy with method CONNECT before any byte flows). false: 501.',
      ),
    defaultMode: z
      .enum(['auto', 'tunnel', 'intercept'])
      .default('auto')
      .describe(
        'Mode for destinations not listed in `modes`: "tunnel" relays bytes after the L4 decision; "intercept" terminates TLS with a leaf from the local CA and decides on every request; "auto" = intercept when tls.caCertFile is set, else tunnel.',
      ),
    modes: z
      .record(z.string(), destinationMode)
      .default({})
      .describe('Per-destination mode: host name (or "*.suffix") -> "tunnel" | "intercept".'),
    passThrough: z
      .array(z.string())
      .default([])
      .describe(
        'Hosts (or "*.suffix") that are always tunnelled, never intercepted: certificate-pinned or mutual-TLS destinations.',
      ),
    peekTimeoutMs: z
      .number()
      .int()
      .positive()
      .default(1000)
      .describe(
        "How long to wait for the agent's first bytes (the ClientHello) after the tunnel opens; a tunnel whose client stays silent (server-speaks-first protocol) is relayed without SNI, an intercepted one is closed.",
      ),
  })
  .describe('CONNECT tunnels on the outbound listener.');

const transparentSchema = z
  .strictObject({
    enabled: z
      .boolean()
      .default(false)
      .describe('Serve the transparent listener for iptables-redirected traffic (scripts/iptables-redirect.sh).'),
    listen: hostPort
      .default('127.0.0.1:15002')
      .describe(
        'Transparent listener: nat OUTPUT REDIRECT target. The original destination comes from SO_ORIGINAL_DST.',
      ),
  })
  .describe('Transparent mode: outbound TCP redirected by iptables reaches Tollgate without proxy settings.');

// ─── Policy lifecycle: bundle sources, signatures, shadow mode, live data ───
const bundleVerificationSchema = z
  .strictObject({
    keyId: z
      .string()
      .min(1)
      .default('default')
      .describe(
        'Key id the bundle signature must name (JWT header kid, or the payload keyid); `opa sign`/`opa build --signing-key` write "default" unless --signing-key-id is given.',
      ),
    publicKey: z
      .string()
      .default('')
      .describe('PEM public key (or certificate) of the signer. Either this or publicKeyFile.'),
    publicKeyFile: z.string().default('').describe('Path to the PEM public key of the signer (read at start).'),
    algorithm: z
      .enum(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512'])
      .default('RS256')
      .describe('JWS algorithm of the signature (opa --signing-alg).'),
    scope: z
      .string()
      .default('')
      .describe('Scope the signature must carry (opa --scope); empty when the signer set none.'),
    excludeFiles: z
      .array(z.string())
      .default([])
      .describe("Bundle paths (glob) excluded from digest checks, as OPA's verification.exclude_files."),
  })
  .describe(
    'Signature verification of bundles (.signatures.json as `opa sign` writes it). When set, unsigned or tampered bundles are rejected and the previous revision stays active.',
  );

const bundleSchema = z
  .strictObject({
    source: z
      .string()
      .default('')
      .describe(
        'Where the policy bundle comes from: an http(s):// URL of an OPA bundle server (bundle protocol: ETag/If-None-Match polling), a .tar.gz file or a directory (re-read when it changes). Empty: the static pdp.bundle (or the embedded default).',
      ),
    token: z.string().default('').describe('Bearer token sent to the bundle server (Authorization: Bearer ...).'),
    minDelayMs: z
      .number()
      .int()
      .positive()
      .default(60000)
      .describe(
        'Shortest wait between two polls (a random delay between minDelayMs and maxDelayMs is drawn each time: jitter).',
      ),
    maxDelayMs: z.number().int().positive().default(120000).describe('Longest wait between two polls.'),
    longPollSeconds: z
      .number()
      .int()
      .nonnegative()
      .default(0)
      .describe(
        'Long polling: ask the server to hold each request up to this many seconds (Prefer: wait=N); 0 disables.',
      ),
    timeoutMs: z
      .number()
      .int()
      .positive()
      .default(10000)
      .describe(
        'Time allowed for one bundle download (on top of the long-poll wait); past it the poll fails and the active revision stays.',
      ),
    maxBytes: z.number().int().positive().default(104857600).describe('Largest bundle download accepted, in bytes.'),
    verification: bundleVerificationSchema.optional(),
    smoke: z
      .strictObject({
        input: z
          .record(z.string(), z.unknown())
          .describe('A policy input document every new bundle must evaluate without error before it is activated.'),
        expectAllowed: z
          .boolean()
          .optional()
          .describe('When set, the smoke decision must be allowed (true) or denied (false).'),
      })
      .optional()
      .describe('Smoke check of a new bundle before the swap.'),
    persistenceDir: z
      .string()
      .default('')
      .describe(
        'Directory where the last activated bundle is persisted (atomic write + rename) and loaded from at start when the source is unreachable. Empty: no persistence.',
      ),
  })
  .describe('Policy bundle lifecycle: source, polling, signature verification, smoke check, last-known-good.');

const shadowSchema = z
  .strictObject({
    bundle: z
      .string()
      .default('')
      .describe(
        'Candidate bundle evaluated beside the active one on live traffic (URL, .tar.gz or directory, polled like bundle.source). Only the active bundle enforces; disagreements are counted and logged with both results. Empty: shadow mode off.',
      ),
  })
  .describe('Shadow mode: try a candidate policy on production traffic without enforcing it.');

const liveDataSchema = z
  .strictObject({
    token: z
      .string()
      .default('')
      .describe(
        'Bearer token for the policy admin endpoints (PATCH /v1/data with an RFC 6902 JSON Patch, POST /v1/bundle/rollback). Empty: those endpoints are disabled.',
      ),
    allowRemote: z
      .boolean()
      .default(false)
      .describe(
        'Accept policy admin requests from non-loopback peers (default: loopback only, even with a valid token).',
      ),
    watchFile: z
      .string()
      .default('')
      .describe(
        'A file holding an RFC 6902 JSON Patch applied over the bundle data; re-applied when its content changes. Empty: no watched file.',
      ),
    watchIntervalMs: z
      .number()
      .int()
      .positive()
      .default(1000)
      .describe('How often the watched data file is checked for changes.'),
  })
  .describe('Live policy data: changes without a new bundle, each recorded in the decision log.');
// ─── end of policy lifecycle ───

// ─── Observability: tracing, metrics, decision log ───
const tracingSchema = z
  .strictObject({
    enabled: z
      .boolean()
      .default(false)
      .describe(
        'Export spans over OTLP. An OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT in the environment also turns it on; OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none turn it off.',
      ),
    serviceName: z.string().default('tollgate').describe('service.name (OTEL_SERVICE_NAME wins).'),
    protocol: z
      .enum(['grpc', 'http/protobuf', 'http/json'])
      .default('grpc')
      .describe('OTLP protocol (OTEL_EXPORTER_OTLP_PROTOCOL wins).'),
    endpoint: z
      .string()
      .default('')
      .describe(
        'Collector base URL, e.g. http://127.0.0.1:4317 (gRPC) or http://127.0.0.1:4318 (HTTP; /v1/traces is appended). Empty: the OTEL_* environment or the SDK default.',
      ),
    headers: z
      .record(z.string(), z.string())
      .default({})
      .describe('Headers (gRPC metadata) sent with every export, e.g. an API key.'),
    samplerRatio: z
      .number()
      .min(0)
      .max(1)
      .default(0.1)
      .describe(
        'Parent-based sampler: ratio of new root traces (calls that carry no trace context) sampled; children follow the incoming traceparent flag; denied decisions are always sampled unless alwaysSampleDenied is false.',
      ),
    alwaysSampleDenied: z
      .boolean()
      .default(true)
      .describe('Export the spans of denied decisions even when head sampling dropped the trace.'),
    propagators: z
      .array(z.enum(['tracecontext', 'baggage', 'b3', 'b3multi']))
      .default(['tracecontext', 'baggage'])
      .describe('Context propagation formats (OTEL_PROPAGATORS wins).'),
    attributeValueLengthLimit: z
      .number()
      .int()
      .positive()
      .default(4096)
      .describe('Longest span attribute value; longer ones are truncated.'),
    attributeCountLimit: z.number().int().positive().default(128).describe('Most attributes per span.'),
    recordRequestHeaders: z
      .array(z.string())
      .default([])
      .describe('Request headers recorded as http.request.header.<name>; credential headers are never recorded.'),
    recordInput: z
      .boolean()
      .default(false)
      .describe(
        'Attach the masked policy input to the span that records the decision (off by default: inputs can hold bodies).',
      ),
  })
  .describe('OpenTelemetry tracing: one trace agent → Tollgate → tool, one span per call carrying its decision.');

const decisionLogSchema = z
  .strictObject({
    file: z
      .string()
      .default('')
      .describe(
        'Path of the hash-chained JSON-lines decision log (OPA decision-log fields plus prev_hash/hash). Empty: no file.',
      ),
    maxBytes: z
      .number()
      .int()
      .positive()
      .default(104857600)
      .describe(
        "Rotate the file when it would pass this size; the new file's genesis links to the old file's last hash.",
      ),
    maxFiles: z.number().int().nonnegative().default(10).describe('Rotated files kept (0 keeps all).'),
    url: z
      .string()
      .default('')
      .describe(
        'OPA decision-log upload endpoint (gzip JSON array POSTs), e.g. http://collector:8181/logs. Empty: no upload.',
      ),
    headers: z
      .record(z.string(), z.string())
      .default({})
      .describe('Headers sent with every upload (e.g. Authorization).'),
    mask: z
      .array(z.string())
      .optional()
      .describe(
        "JSON pointers erased from every record (like OPA's system.log.mask); default: authorization, cookie and agent-token headers.",
      ),
    maxQueue: z
      .number()
      .int()
      .positive()
      .default(10000)
      .describe(
        'Records waiting to be written; beyond it they are dropped, counted in tollgate_decision_log_dropped_total and noted in the chain as a gap.',
      ),
    fileFlushMs: z
      .number()
      .int()
      .min(0)
      .max(60000)
      .default(200)
      .describe(
        "Longest time a sealed record waits before the file write; records reach the file together, in one write per interval or per 64 KiB (like Envoy's access-log file flush interval), not one write per decision. close and shutdown write everything.",
      ),
  })
  .describe('The decision log: every decision as an OPA-format JSON line in a tamper-evident hash chain.');
const metricsSchema = z
  .strictObject({
    maxLabelValues: z
      .number()
      .int()
      .min(1)
      .max(100000)
      .default(100)
      .describe(
        'Distinct values each agent-influenced label of /metrics (agent, destination, tool) keeps as its own series; later values are counted under "__other__" and in tollgate_metric_label_overflow_total, so an agent calling many hosts or tools cannot grow the scrape without bound. 100 covers the destinations and tools one agent legitimately uses while keeping each histogram under a few thousand lines.',
      ),
    maxLabelValueLength: z
      .number()
      .int()
      .min(16)
      .max(4096)
      .default(128)
      .describe(
        'Longest label value kept, in characters (longer ones are cut); control characters are replaced by U+FFFD.',
      ),
    maxSeriesPerMetric: z
      .number()
      .int()
      .min(1)
      .max(1000000)
      .default(2000)
      .describe(
        'Label combinations tollgate_decisions_total keeps (agent x destination x tool can multiply past each label\'s cap); a new combination past it is counted with those labels set to "__other__" (OpenTelemetry\'s default cardinality limit).',
      ),
  })
  .describe("Prometheus metrics on the admin listener's /metrics: cardinality bounds.");
// ─── end of observability ───

// ─── behaviour signals ───
const behaviourValueSchema = z
  .strictObject({
    name: z
      .string()
      .regex(/^[a-z][a-z0-9_]{0,62}$/, 'expected a lowercase identifier (letters, digits, _)')
      .describe(
        'Signal name: input.behaviour.values.<name> for the policy, signal="<name>" on tollgate_behaviour_* metrics.',
      ),
    from: z
      .union([z.string().min(1), z.array(z.string().min(1)).min(1).max(4)])
      .describe(
        'Where the number is in the policy input: body.<path> (parsed_body), arguments.<path> (MCP tools/call arguments), headers.<name>, query.<name>, or a dotted path from the input root. A list multiplies its values (e.g. [body.quantity, body.price] for a notional); the absolute value is counted. Numbers and numeric strings count; a request without a usable number is not counted.',
      ),
    when: z
      .strictObject({
        method: z.string().optional().describe('HTTP method the request must have (e.g. POST).'),
        host: z.string().optional().describe('Destination host (with or without port); a trailing * matches a prefix.'),
        path: z.string().optional().describe('Request path without query; a trailing * matches a prefix.'),
        tool: z.string().optional().describe('MCP tools/call tool name; a trailing * matches a prefix.'),
      })
      .prefault({})
      .describe('Which requests the signal measures (all conditions must hold; none given: every request).'),
  })
  .describe('A value-weighted behaviour signal, e.g. refund amounts or order notionals.');

const behaviourSchema = z
  .strictObject({
    enabled: z
      .boolean()
      .default(false)
      .describe(
        'Keep per-agent rolling statistics (calls, denials, destinations, tools, values) and give them to the policy as input.behaviour and to /metrics as tollgate_behaviour_*. Off by default: it costs memory per agent (see maxAgents) and a few microseconds per decision.',
      ),
    maxAgents: z
      .number()
      .int()
      .min(1)
      .max(100000)
      .default(100)
      .describe(
        'Agents tracked at once; past it the least recently seen agent is forgotten (its baseline starts over). Memory per agent: (2 + values) x (baselineHours + 1) x 8 bytes plus the remembered destination and tool names.',
      ),
    baselineHours: z
      .number()
      .int()
      .min(1)
      .max(24 * 31)
      .default(168)
      .describe('Complete hours the baseline averages over (default 168: 7 days of hourly buckets).'),
    maxDestinationsPerAgent: z
      .number()
      .int()
      .min(1)
      .max(100000)
      .default(256)
      .describe(
        'Destinations remembered per agent for input.behaviour.destination.new; past it, unremembered ones stay "new".',
      ),
    maxToolsPerAgent: z
      .number()
      .int()
      .min(1)
      .max(100000)
      .default(256)
      .describe('MCP tools remembered per agent for input.behaviour.tool.new; past it, unremembered ones stay "new".'),
    values: z
      .array(behaviourValueSchema)
      .max(16)
      .default([])
      .refine(
        (values) => new Set(values.map((v) => v.name)).size === values.length,
        'value signal names must be unique',
      )
      .describe(
        'Value-weighted signals (at most 16), e.g. {name: refund_amount, from: body.amount, when: {path: /v1/refunds}}.',
      ),
  })
  .describe("Behaviour signals: each agent's activity compared with its own baseline, for policies and alerts.");
// ─── end of behaviour signals ───
// ─── state: budgets, rate limits and human approvals (src/state) ───
const stateSchema = z
  .strictObject({
    redis: z
      .string()
      .regex(/^(rediss?:\/\/.+)?$/, 'expected redis://host:port[/db] or rediss://…')
      .default('')
      .describe(
        'Redis or Valkey URL (redis://[user:password@]host:port[/db], rediss:// for TLS) shared by every replica. Empty: the in-memory store (one process).',
      ),
    keyPrefix: z.string().default('tollgate:').describe('Prefix of every Redis key Tollgate writes.'),
    connections: z
      .number()
      .int()
      .min(1)
      .max(16)
      .default(2)
      .describe('Redis connections per replica (commands are pipelined over them round robin).'),
    timeoutMs: z
      .number()
      .int()
      .positive()
      .default(50)
      .describe(
        'Deadline of each store call in milliseconds; past it the call fails and state.failureModeAllow decides.',
      ),
    circuitBreaker: circuitBreakerSchema
      .prefault({ failureThreshold: 5, openMs: 1000 })
      .describe(
        'Circuit breaker in front of Redis: after failureThreshold consecutive failures calls fail at once for openMs, then one probe.',
      ),
    failureModeAllow: z
      .boolean()
      .default(false)
      .describe(
        'Allow a call whose budgets, rates or approval cannot be checked because the store failed (nothing is charged). Default: fail closed with 503.',
      ),
    failureModeAllowHosts: z
      .array(z.string())
      .default([])
      .describe('Destination hosts (no port) for which a store failure allows the call; all others fail closed.'),
    approvals: z
      .strictObject({
        token: z
          .string()
          .default('')
          .describe(
            'Bearer token of the approvals admin API (/v1/approvals) and `tollgate approvals`. Empty: the routes are not mounted.',
          ),
        allowRemote: z
          .boolean()
          .default(false)
          .describe('Accept approvals API calls from non-loopback peers (default: loopback only).'),
        statusUrl: z
          .string()
          .default('')
          .describe(
            'Base URL the agent is told to check an approval at (the id is appended). Default: http://<admin.listen>/v1/approvals.',
          ),
        webhook: z
          .string()
          .default('')
          .describe(
            'URL POSTed a JSON event ({event: "approval.requested" | ".approved" | ".rejected" | ".expired", approval, status_url}) for every approval event. Empty: none.',
          ),
        webhookHeaders: z
          .record(z.string(), z.string())
          .default({})
          .describe('Headers sent with every webhook POST (e.g. Authorization).'),
        webhookTimeoutMs: z.number().int().positive().default(2000).describe('Deadline of one webhook POST.'),
      })
      .prefault({})
      .describe('Human approval: the admin API, where agents check, and the notification webhook.'),
  })
  .describe(
    'Budgets, rate limits and human approvals the policy asks for: in memory (default) or shared through Redis by every replica.',
  );
// ─── end of state ───

// ─── MCP responses and tool pins ───
const mcpResponseSchema = z
  .strictObject({
    decisionPath: z
      .string()
      .default('')
      .describe(
        'Entrypoint of the same policy bundle that decides on each JSON-RPC message an MCP server answers (e.g. "tollgate/authz/response"): filter tools/list, redact or block a tool result. Empty: response decisions are off and answers are relayed untouched. Needs a wasm bundle: the wasm PDP, or in a chain the first wasm stage that has this entrypoint.',
      ),
    maxMessageBytes: z
      .number()
      .int()
      .min(1024)
      .max(64 * 1024 * 1024)
      .default(1024 * 1024)
      .describe(
        'Most bytes buffered to decide on one answer: a whole application/json body, or one text/event-stream event (SSE streams are decided event by event, never buffered whole).',
      ),
    onUninspectable: z
      .enum(['block', 'pass'])
      .default('block')
      .describe(
        'An answer that cannot be inspected (larger than maxMessageBytes, compressed, not valid JSON): "block" replaces it with a JSON-RPC error (for SSE: one error event, then the stream ends); "pass" relays it untouched (for SSE: the rest of the stream).',
      ),
    failureModeAllow: z
      .boolean()
      .default(false)
      .describe(
        'Relay the message untouched when no response decision could be made. Default: block it (fail closed).',
      ),
  })
  .describe(
    'Response decisions: a second policy decision on what an MCP server answers, off unless decisionPath is set.',
  );

const mcpPinsSchema = z
  .strictObject({
    enabled: z
      .boolean()
      .default(false)
      .describe(
        "Fingerprint every server's tool definitions (name, description, inputSchema: SHA-256 of canonical JSON) in the tools/list answers Tollgate relays; input.mcp.tool.pinned / changed tell the policy whether a called tool still matches its pin.",
      ),
    file: z
      .string()
      .default('')
      .describe(
        'JSON or YAML file of accepted pins (kept in Git), loaded at start: {servers: {"<authority>": {tools: {"<name>": {sha256, definition?}}}}}. Empty: pins start empty and the first definition seen is pinned (trust on first use).',
      ),
    writeBack: z
      .boolean()
      .default(false)
      .describe(
        'Rewrite the pins file (atomically) when an operator accepts a definition. Default: the file is read-only and `tollgate mcp tools accept` prints the entry to commit.',
      ),
    maxServers: z
      .number()
      .int()
      .min(1)
      .max(100000)
      .default(1000)
      .describe('Most servers pinned; later ones are not pinned.'),
    maxToolsPerServer: z
      .number()
      .int()
      .min(1)
      .max(100000)
      .default(1000)
      .describe('Most tools pinned per server; later ones are not pinned.'),
  })
  .describe(
    'Tool pinning against rug pulls: a changed tool definition is visible to the policy until an operator accepts it.',
  );

const mcpSchema = z
  .strictObject({
    response: mcpResponseSchema.prefault({}),
    pins: mcpPinsSchema.prefault({}),
  })
  .describe('MCP governance beyond the request: response decisions and tool pinning.');
// ─── end of MCP responses and tool pins ───

const memorySchema = z
  .strictObject({
    idleCollectSeconds: z
      .number()
      .int()
      .min(0)
      .max(3600)
      .default(10)
      .describe(
        'Once started, and after this many seconds without a decision following traffic, one memory-reducing garbage collection returns the heap a burst grew to the operating system (tens of milliseconds of main-thread time, at most once per quiet period, never while decisions are being made). 0 never collects: the process keeps the footprint of its busiest moment.',
      ),
  })
  .describe("The sidecar's own memory: what it gives back when it goes quiet.");

const runtimeSchema = z
  .strictObject({
    backgroundThreadNice: z
      .number()
      .int()
      .min(0)
      .max(19)
      .default(10)
      .describe(
        "How much nicer than request handling V8's worker threads (concurrent GC marking and sweeping, optimising compilation) run, on Linux. They then use the CPU the main thread leaves idle instead of sharing it with requests: a burst of background work no longer queues requests for tens of milliseconds. 0 keeps them at the main thread's priority.",
      ),
  })
  .describe("How the sidecar shares its CPU between request handling and V8's background work.");

/** The whole tollgate.yaml document. */
export const configSchema = z
  .strictObject({
    agent: agentSchema.prefault({}),
    pdp: pdpSchema.prefault({}),
    proxy: proxySchema.prefault({}),
    admin: adminSchema.prefault({}),
    extAuthz: extAuthzSchema.prefault({}),
    tls: tlsSchema.prefault({}),
    connect: connectSchema.prefault({}),
    transparent: transparentSchema.prefault({}),
    bundle: bundleSchema.prefault({}),
    shadow: shadowSchema.prefault({}),
    data: liveDataSchema.prefault({}),
    tracing: tracingSchema.prefault({}),
    decisionLog: decisionLogSchema.prefault({}),
    metrics: metricsSchema.prefault({}),
    behaviour: behaviourSchema.prefault({}),
    state: stateSchema.prefault({}),
    mcp: mcpSchema.prefault({}),
    memory: memorySchema.prefault({}),
    runtime: runtimeSchema.prefault({}),
    logLevel: z
      .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
      .default('info')
      .describe('Log level of the structured (pino) log.'),
  })
  .describe('Tollgate sidecar configuration (tollgate.yaml).');

/** The validated configuration, as the rest of the code sees it (deep-frozen). */
export type Config = z.infer<typeof configSchema>;

/** proxy.pathNormalization: how request paths are normalised before the decision. */
export type PathNormalization = z.infer<typeof pathNormalizationSchema>;

/** The in-process (WASM) PDP settings. */
export type WasmPdpConfig = z.infer<typeof wasmPdpSchema>;

/** The remote (ext_authz client) PDP settings. */
export type ExtAuthzPdpConfig = z.infer<typeof extAuthzPdpSchema>;

/** The Cedar PDP settings. */
export type CedarPdpConfig = z.infer<typeof cedarPdpSchema>;

/** The PDP chain settings. */
export type ChainPdpConfig = z.infer<typeof chainPdpSchema>;

/** One stage of a PDP chain. */
export type ChainStageConfig = ChainPdpConfig['stages'][number];

/** Policy bundle lifecycle settings. */
export type BundleConfig = z.infer<typeof bundleSchema>;

/** Shadow-mode settings. */
export type ShadowConfig = z.infer<typeof shadowSchema>;

/** Budgets, rates and approvals settings. */
export type StateConfig = z.infer<typeof stateSchema>;

/** Live-data settings. */
export type LiveDataConfig = z.infer<typeof liveDataSchema>;

/** The configuration as JSON Schema (draft 2020-12). */
export function configJsonSchema(): unknown {
  return z.toJSONSchema(configSchema, { io: 'input' });
}

/** agent.identity: verified agent identity sources. */
export type IdentityConfig = z.infer<typeof identitySchema>;

/** agent.identity.jwt.issuers[n]: one trusted JWT issuer. */
export type JwtIssuerConfig = z.infer<typeof jwtIssuerSchema>;

/** agent.identity.spiffe: how a SPIFFE ID becomes input.agent. */
export type SpiffeConfig = z.infer<typeof spiffeSchema>;

/** agent.identity.mtls: the proxy listener's TLS with SVID verification. */
export type MtlsConfig = z.infer<typeof mtlsSchema>;
/** The behaviour section of the configuration. */
export type BehaviourConfig = z.infer<typeof behaviourSchema>;

/** MCP response-decision and tool-pinning settings. */
export type McpConfig = z.infer<typeof mcpSchema>;
