/**
 * The remote PDP: sends an Envoy v3 CheckRequest per decision to an ext_authz server
 * (opa-envoy-plugin, another Tollgate) and turns its CheckResponse into a Decision —
 * the centralised and hybrid architectures. Like Envoy's ext_authz filter: one
 * long-lived HTTP/2 channel, a deadline per call, and "no answer" rejects (the
 * caller's failure mode decides, fail closed by default). A circuit breaker makes a
 * dead or hung PDP cost `failureThreshold` timeouts, not one per request: while open,
 * decide() rejects at once; after `openMs` one probe goes through (half-open).
 */
import * as grpc from '@grpc/grpc-js';
import { TollgateError } from '../errors.ts';
import type { CheckRequestDocument, PolicyInput } from '../input/build.ts';
import {
  AUTHORIZATION_SERVICE,
  checkMethod,
  encodeCheckRequest,
  structToJson,
  type Message,
} from '../proto/ext-authz.ts';
import type { Decision, HeaderPair, Pdp, PolicyInfo } from './types.ts';

/** Options of createExtAuthzPdp. */
export interface ExtAuthzPdpOptions {
  /** host:port of the ext_authz server. */
  readonly target: string;
  readonly timeoutMs: number;
  readonly circuitBreaker: { readonly failureThreshold: number; readonly openMs: number };
  /** Clock of the circuit breaker (not of the gRPC deadline), for tests. */
  readonly now?: () => number;
}

/** Circuit states (as in Envoy / resilience libraries). */
export type CircuitState = 'closed' | 'open' | 'half-open';

/** The gRPC codes that mean "the PDP did not answer" and count against the circuit. */
const TRANSPORT_FAILURES = new Set<number>([grpc.status.DEADLINE_EXCEEDED, grpc.status.UNAVAILABLE]);

function headerPairs(options: unknown): HeaderPair[] {
  if (!Array.isArray(options)) return [];
  return (options as Message[]).flatMap((option) => {
    const header = option.header as Message | undefined;
    if (header === undefined) return [];
    const value =
      typeof header.value === 'string'
        ? header.value
        : typeof header.rawValue === 'string'
          ? Buffer.from(header.rawValue, 'base64').toString('utf8')
          : '';
    return [[String(header.key ?? ''), value] as const];
  });
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.map(String) : [];
}

/** CheckResponse (decoded) -> Decision. */
export function decisionFromCheckResponse(
  response: Message,
  meta: { decisionId: string; revision: string; evalNanos: number },
): Decision {
  const code = ((response.status as Message | undefined)?.code as number | undefined) ?? grpc.status.OK;
  const ok = response.okResponse as Message | undefined;
  const denied = response.deniedResponse as Message | undefined;
  const metadata =
    response.dynamicMetadata === undefined ? undefined : structToJson(response.dynamicMetadata as Message);
  const allowed = code === grpc.status.OK;
  const deniedStatus = ((denied?.status as Message | undefined)?.code as number | undefined) ?? 0;
  const reasons: string[] = [];
  const statusMessage = (response.status as Message | undefined)?.message;
  if (!allowed && typeof statusMessage === 'string' && statusMessage !== '') reasons.push(statusMessage);
  return {
    allowed,
    ...(!allowed && deniedStatus > 0 ? { httpStatus: deniedStatus } : {}),
    headers: headerPairs(allowed ? ok?.headers : denied?.headers),
    requestHeadersToRemove: allowed ? strings(ok?.headersToRemove) : [],
    responseHeadersToAdd: allowed ? headerPairs(ok?.responseHeadersToAdd) : [],
    queryParametersToSet:
      allowed && Array.isArray(ok?.queryParametersToSet)
        ? (ok.queryParametersToSet as Message[]).map((p) => [String(p.key ?? ''), String(p.value ?? '')] as const)
        : [],
    queryParametersToRemove: allowed ? strings(ok?.queryParametersToRemove) : [],
    ...(!allowed && typeof denied?.body === 'string' && denied.body !== '' ? { body: denied.body } : {}),
    ...(metadata === undefined ? {} : { dynamicMetadata: metadata }),
    reasons,
    ...meta,
    result: response,
  };
}

/** The filter_metadata namespace carrying Tollgate's agent to a remote PDP. */
export const AGENT_METADATA_NAMESPACE = 'tollgate';

/**
 * The principal a remote PDP sees for an agent: a `tollgate://agent/<id>` URI (id
 * percent-encoded). A URI, as Envoy's own principals are (SPIFFE IDs, certificate
 * URI SANs), so a policy can tell at a glance that this identity was asserted by
 * Tollgate and never mistake it for a peer certificate's.
 */
export function agentPrincipal(id: string): string {
  return `tollgate://agent/${encodeURIComponent(id)}`;
}

/**
 * The principal a remote PDP sees for a resolved agent: its verified SPIFFE ID when it
 * has one (the same string Envoy puts there for an mTLS peer), else agentPrincipal(id).
 */
export function principalOf(agent: PolicyInput['agent']): string {
  return agent.spiffe_id ?? agentPrincipal(agent.id);
}

/** The agent as filter_metadata["tollgate"].agent carries it: id, role, labels, and spiffe_id / issuer when verified. */
function agentMetadata(agent: PolicyInput['agent']): Record<string, unknown> {
  return {
    id: agent.id,
    role: agent.role,
    labels: { ...agent.labels },
    ...(agent.spiffe_id === undefined ? {} : { spiffe_id: agent.spiffe_id }),
    ...(agent.issuer === undefined ? {} : { issuer: agent.issuer }),
  };
}

/**
 * The CheckRequest for an input: its attributes, as Envoy would send them, plus the
 * agent Tollgate resolved (configured, a verified token, an SVID), which the attributes
 * alone do not carry: attributes.source.principal = principalOf(agent) (unless the
 * request already names a principal, e.g. an mTLS peer Envoy authenticated) and
 * attributes.metadata_context.filter_metadata["tollgate"] = {agent: {id, role, labels,
 * spiffe_id?, issuer?}}.
 * Like Envoy past max_request_bytes, a body the PEP buffered only in part is flagged
 * with x-envoy-auth-partial-body, so the remote sees truncated_body even without a content-length;
 * on a body read whole, an x-envoy-auth-partial-body the agent sent is left out.
 */
export function checkRequestFor(input: PolicyInput): CheckRequestDocument {
  const attributes = (input.attributes ?? {}) as NonNullable<CheckRequestDocument['attributes']>;
  const agent = input.agent;
  const source = attributes.source ?? {};
  const metadata = (attributes.metadataContext ?? {}) as {
    filterMetadata?: Record<string, unknown>;
    [key: string]: unknown;
  };
  const next: NonNullable<CheckRequestDocument['attributes']> = {
    ...attributes,
    source:
      typeof source.principal === 'string' && source.principal !== ''
        ? source
        : { ...source, principal: principalOf(agent) },
    // Tollgate's own namespace is always Tollgate's: a value arriving from elsewhere is replaced.
    metadataContext: {
      ...metadata,
      filterMetadata: {
        ...metadata.filterMetadata,
        [AGENT_METADATA_NAMESPACE]: { agent: agentMetadata(agent) },
      },
    },
  };
  const http = next.request?.http;
  const flagged = http?.headers?.['x-envoy-auth-partial-body'];
  if (input.truncated_body && http !== undefined && flagged !== 'true') {
    next.request = {
      ...next.request,
      http: { ...http, headers: { ...http.headers, 'x-envoy-auth-partial-body': 'true' } },
    };
  } else if (!input.truncated_body && http !== undefined && flagged !== undefined) {
    // The PEP read the whole body (an agent's own x-envoy-auth-partial-body is ignored
    // there): a remote opa-envoy-plugin must not take it for partial and read nothing.
    const { 'x-envoy-auth-partial-body': _agentFlag, ...headers } = http.headers!;
    next.request = { ...next.request, http: { ...http, headers } };
  }
  return { attributes: next };
}

/** Creates the ext_authz client PDP; its one channel starts connecting at once. */
export function createExtAuthzPdp(options: ExtAuthzPdpOptions): Pdp & { circuit(): CircuitState } {
  const now = options.now ?? Date.now;
  const method = checkMethod();
  const Client = grpc.makeGenericClientConstructor({ Check: method } as grpc.ServiceDefinition, AUTHORIZATION_SERVICE);
  const client = new Client(options.target, grpc.credentials.createInsecure(), {
    // Reconnect fast once the PDP is back (grpc's default backoff grows to 120 s).
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 1000,
    // Keep the one channel warm without tripping grpc-go's ping policing (5 min minimum).
    'grpc.keepalive_time_ms': 300_000,
    'grpc.keepalive_timeout_ms': 20_000,
  });
  // Connect now, so the first request does not pay for the handshake.
  client.getChannel().getConnectivityState(true);
  const info: PolicyInfo = { kind: 'extauthz', decisionPath: `extauthz://${options.target}`, revision: 'remote' };
  const { failureThreshold, openMs } = options.circuitBreaker;
  let state: CircuitState = 'closed';
  let failures = 0;
  let openedAt = 0;
  let probing = false;

  function onTransportFailure(): void {
    failures++;
    if (state === 'half-open' || failures >= failureThreshold) {
      state = 'open';
      openedAt = now();
    }
  }

  function onAnswer(): void {
    failures = 0;
    state = 'closed';
  }

  function call(document: CheckRequestDocument): Promise<Message> {
    return new Promise((resolve, reject) => {
      const deadline = new Date(Date.now() + options.timeoutMs);
      // The input's attributes are the CheckRequest: encode them once, send bytes.
      client.makeUnaryRequest<Buffer, Message>(
        `/${AUTHORIZATION_SERVICE}/Check`,
        (wire) => wire,
        method.responseDeserialize,
        encodeCheckRequest(document),
        { deadline },
        (err, response) => (err ? reject(err) : resolve(response!)),
      );
    });
  }

  return {
    async decide(input: PolicyInput, decisionId: string, path?: string): Promise<Decision> {
      if (path !== undefined)
        throw new TollgateError(
          'TG_ERR_PDP_UNAVAILABLE',
          `an ext_authz PDP has one decision; it cannot decide "${path}"`,
        );
      if (state === 'open') {
        if (now() - openedAt < openMs || probing) {
          throw new TollgateError(
            'TG_ERR_PDP_UNAVAILABLE',
            `ext_authz PDP ${options.target} circuit is open after ${failures} consecutive failures`,
          );
        }
        state = 'half-open';
      }
      const isProbe = state === 'half-open';
      if (isProbe) {
        if (probing)
          throw new TollgateError(
            'TG_ERR_PDP_UNAVAILABLE',
            `ext_authz PDP ${options.target} circuit is half-open; a probe is in flight`,
          );
        probing = true;
      }
      const started = process.hrtime.bigint();
      try {
        const response = await call(checkRequestFor(input));
        onAnswer();
        return decisionFromCheckResponse(response, {
          decisionId,
          revision: info.revision,
          evalNanos: Number(process.hrtime.bigint() - started),
        });
      } catch (err) {
        if (err instanceof TollgateError) throw err;
        const e = err as grpc.ServiceError;
        if (TRANSPORT_FAILURES.has(e.code)) {
          onTransportFailure();
          if (e.code === grpc.status.DEADLINE_EXCEEDED) {
            throw new TollgateError(
              'TG_ERR_PDP_TIMEOUT',
              `ext_authz PDP ${options.target} did not answer within ${options.timeoutMs} ms`,
              { cause: err },
            );
          }
          throw new TollgateError(
            'TG_ERR_PDP_UNAVAILABLE',
            `ext_authz PDP ${options.target} is unavailable: ${e.details}`,
            { cause: err },
          );
        }
        // The PDP answered with an error (policy error, bad request): it is alive.
        onAnswer();
        throw new TollgateError(
          'TG_ERR_POLICY_EVAL',
          `ext_authz PDP ${options.target} failed: ${grpc.status[e.code] ?? e.code} ${e.details}`,
          { cause: err },
        );
      } finally {
        if (isProbe) probing = false;
      }
    },
    info: () => info,
    circuit: () => (state === 'open' && now() - openedAt >= openMs ? 'half-open' : state),
    close() {
      client.close();
      return Promise.resolve();
    },
  };
}
