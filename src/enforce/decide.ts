/**
 * The one decision step every door calls: the explicit proxy, requests inside
 * intercepted or plain tunnels, CONNECT / TLS / transparent / opaque tunnel phases,
 * upgrades and the ext_authz server. It resolves the agent (src/identity: a verified
 * token, whose header is then removed from what the policy and the upstream see, an
 * SVID, Envoy's principal, or the configured agent), builds the policy input, asks the PDP, records span, metric and decision log,
 * applies the failure mode, and returns a verdict each door writes in its own
 * protocol (HTTP response, raw socket reply, CheckResponse). Copied per door, these
 * steps drift; here they are written once.
 */
import { newUuid } from '../runtime/uuid.ts';
import type { Logger } from 'pino';
import { wrapError, type TollgateError } from '../errors.ts';
import type { Config } from '../config/schema.ts';
import type { CanonicalRequest } from '../http/normalize.ts';
import {
  buildInput,
  inputFromCheckRequest,
  type AgentIdentity,
  type BufferedBody,
  type BuildInputOptions,
  type CheckRequestDocument,
  type PolicyInput,
} from '../input/build.ts';
import { createIdentityResolver, type IdentityResolver } from '../identity/resolver.ts';
import { watchBehaviour, type BehaviourTracker } from '../behaviour/tracker.ts';
import type { Decision, Pdp } from '../pdp/types.ts';
import {
  createNoopObserver,
  decisionMeta,
  recordDecision,
  recordFailure,
  type DecisionFacts,
  type Observer,
} from '../telemetry/observer.ts';
import type { CallTrace, DecisionTrace } from '../telemetry/spans.ts';
import type { Governance } from '../state/governance.ts';
import { failureMode } from './failure-mode.ts';
import type { PinStore } from '../mcp/pins.ts';
import { denyReply, errorReply, failureReply, type LocalReply } from './reply.ts';

/**
 * Which door a request came through. "http": a request on the proxy or inside a
 * tunnel (the door owns the call span, it lives until the answer is forwarded);
 * "upgrade": a protocol upgrade; "tunnel": a CONNECT, TLS, transparent or opaque
 * tunnel phase; "extauthz": a CheckRequest from Envoy (no failure mode here: Envoy's
 * failure_mode_allow decides, so "no decision" comes back as a failure).
 */
export type Door = 'http' | 'upgrade' | 'tunnel' | 'extauthz';

/** A canonical HTTP request and its buffered body (doors "http" and "upgrade"). */
export interface HttpDecisionRequest {
  /** Its headers lose the agent token header (mutated in place: it is never forwarded). */
  readonly request: CanonicalRequest;
  readonly body: BufferedBody;
  /** input.connect, for a request inside a tunnel. */
  readonly connect?: object | undefined;
  /** The call span the door started (door "http"); absent: the step starts and ends one. */
  readonly trace?: CallTrace;
  /** input.websocket, for a message sent on an upgraded connection (src/pep/ws-messages.ts). */
  readonly websocket?: object;
  /** The SPIFFE ID of the X.509 SVID the agent's connection presented (mTLS listener). */
  readonly peerSpiffeId?: string | undefined;
}

/** A CheckRequest document (doors "tunnel" and "extauthz"). */
export interface CheckDecisionRequest {
  readonly checkRequest: CheckRequestDocument;
  /** input.connect, for a tunnel phase. */
  readonly connect?: object | undefined;
  /** The destination host the failure mode is chosen by. */
  readonly host: string;
}

/** What a door hands the step. */
export type DecisionRequest = HttpDecisionRequest | CheckDecisionRequest;

/**
 * The verdict. allow: forward (decision absent when the failure mode allowed);
 * deny: the policy said no; refuse: refused before the PDP (bad agent token, an input
 * that does not build); fail: no decision and the failure mode denies (for the
 * ext_authz door: no decision at all).
 */
export type Verdict =
  | {
      readonly kind: 'allow';
      readonly decisionId: string;
      readonly input: PolicyInput;
      readonly decision: Decision | undefined;
      readonly tokenRemoved: boolean;
    }
  | { readonly kind: 'deny'; readonly decisionId: string; readonly input: PolicyInput; readonly decision: Decision }
  | {
      readonly kind: 'refuse';
      readonly decisionId: string;
      readonly error: TollgateError;
      readonly stage: 'identity' | 'input';
    }
  | { readonly kind: 'fail'; readonly decisionId: string; readonly input: PolicyInput; readonly error: TollgateError };

/** The decision step. */
export interface DecisionStep {
  /** Decides one request for a door. Deny and "no decision" are verdicts; it rejects only on a bug (the door's catch-all answers). */
  decide(request: DecisionRequest, door: Door): Promise<Verdict>;
  /** The agent token header (lowercase) when tokens are configured. */
  readonly tokenHeader: string | undefined;
  /** Every header that carries an agent token (lowercase): removed before forwarding. */
  readonly tokenHeaders: readonly string[];
}

/** Options of createDecisionStep. */
export interface DecisionStepOptions {
  readonly pdp: Pdp;
  /** The configured agent, used when no token overrides it. */
  readonly agent: AgentIdentity;
  /** When set, a verified HS256 token in this header overrides the agent. */
  readonly agentToken?: { readonly header: string; readonly secret: string };
  /** Who is calling (tokens, SVIDs, Envoy's principal); default: agentToken alone. */
  readonly identity?: IdentityResolver;
  /** failureModeAllow and its per-host list (absent: fail closed). */
  readonly failure?: Pick<Config['pdp'], 'failureModeAllow' | 'failureModeAllowHosts'>;
  /** Status a deny gets when the policy names none (the tunnel span's status). */
  readonly denyStatus?: number;
  /** The body buffer limit (proxy.maxRequestBytes), named when a JSON-RPC body is past it. */
  readonly bodyLimit?: number;
  readonly logger: Logger;
  /** Spans, metrics and the decision log (default: records nothing). */
  readonly observer?: Observer;
  /** Behaviour signals: input.behaviour before the PDP, the call recorded after its answer (default: none). */
  readonly behaviour?: BehaviourTracker;
  /** Budgets, rates and approvals (src/state), asked in place of the PDP; absent: the PDP alone. */
  readonly governance?: Governance;
  /** Tool pins: each tools/call in input.mcp gets pinned / changed and the fingerprints (mcp.pins.enabled). */
  readonly pins?: Pick<PinStore, 'annotate'>;
  /** Called once per decision (the idle memory collector's activity count). */
  readonly activity?: () => void;
}

const FAIL_CLOSED = { failureModeAllow: false, failureModeAllowHosts: [] as string[] };

/** The step's options from a validated config. */
export function decisionStepOptionsFrom(
  config: Config,
): Pick<DecisionStepOptions, 'agent' | 'identity' | 'failure' | 'denyStatus' | 'bodyLimit'> {
  return {
    agent: { id: config.agent.id, role: config.agent.role, labels: config.agent.labels },
    identity: createIdentityResolver(config.agent),
    failure: config.pdp,
    denyStatus: config.proxy.denyStatus,
    bodyLimit: config.proxy.maxRequestBytes,
  };
}

function isHttp(request: DecisionRequest): request is HttpDecisionRequest {
  return 'request' in request;
}

/** Creates the decision step. */
export function createDecisionStep(options: DecisionStepOptions): DecisionStep {
  const { agent: configuredAgent } = options;
  // The PDP as this step asks it: with behaviour signals, input.behaviour is set before and the call recorded after.
  const pdp = watchBehaviour(options.pdp, options.behaviour);
  const observer = options.observer ?? createNoopObserver();
  const log = options.logger.child({ component: 'decide' });
  const identity = options.identity ?? createIdentityResolver({ token: options.agentToken });
  const failure = options.failure ?? FAIL_CLOSED;
  const denyStatus = options.denyStatus ?? 403;
  // One options object for every request (the strict body reading is buildInput's default).
  const buildOptions: BuildInputOptions = options.bodyLimit === undefined ? {} : { limit: options.bodyLimit };

  const activity = options.activity;

  async function decide(request: DecisionRequest, door: Door): Promise<Verdict> {
    activity?.();
    const decisionId = newUuid();
    let agent = configuredAgent;
    let tokenRemoved = false;
    let input: PolicyInput;
    let host: string;
    let destination: string;
    let requestedBy: string | undefined;
    let carrier: Record<string, string> | undefined;
    if (isHttp(request)) {
      const canonical = request.request;
      const resolved = identity.resolve({ door, headers: canonical.headers, peerSpiffeId: request.peerSpiffeId });
      // Most identities resolve without I/O: no await, no microtask hop.
      const who = resolved instanceof Promise ? await resolved : resolved;
      // The policy and the upstream see the request without the token.
      if (who.tokenHeader !== undefined) delete (canonical.headers as Record<string, string>)[who.tokenHeader];
      if (who.kind === 'refused') return { kind: 'refuse', decisionId, error: who.error, stage: 'identity' };
      if (who.kind === 'verified') [agent, tokenRemoved] = [who.agent, who.tokenHeader !== undefined];
      try {
        input = buildInput(canonical, request.body, agent, Date.now(), buildOptions);
      } catch (err) {
        return {
          kind: 'refuse',
          decisionId,
          error: wrapError('TG_ERR_BAD_REQUEST', 'bad request', err),
          stage: 'input',
        };
      }
      host = canonical.host;
      destination = canonical.authority;
      requestedBy = canonical.source.address;
    } else {
      let document = request.checkRequest;
      const http = document.attributes?.request?.http;
      const who = await identity.resolve({
        door,
        headers: http?.headers,
        principal: document.attributes?.source?.principal,
      });
      if (who.kind === 'refused') return { kind: 'refuse', decisionId, error: who.error, stage: 'identity' };
      if (who.kind === 'verified') [agent, tokenRemoved] = [who.agent, who.tokenHeader !== undefined];
      if (who.tokenHeader !== undefined && http !== undefined) {
        const headers = { ...http.headers };
        delete headers[who.tokenHeader];
        document = {
          ...document,
          attributes: {
            ...document.attributes,
            request: { ...document.attributes!.request, http: { ...http, headers } },
          },
        };
      }
      try {
        input = inputFromCheckRequest(document, agent);
      } catch (err) {
        return {
          kind: 'refuse',
          decisionId,
          error: wrapError('TG_ERR_BAD_REQUEST', 'bad request', err),
          stage: 'input',
        };
      }
      host = request.host;
      destination = typeof http?.host === 'string' ? http.host : '';
      if (door !== 'extauthz') {
        const source = (input.attributes as Partial<PolicyInput['attributes']> | undefined)?.source?.address
          ?.socketAddress?.address;
        if (typeof source === 'string') requestedBy = source;
      }
      carrier = document.attributes?.request?.http?.headers ?? {};
    }
    if (request.connect !== undefined) (input as PolicyInput & { connect?: unknown }).connect = request.connect;
    if (isHttp(request) && request.websocket !== undefined)
      (input as PolicyInput & { websocket?: unknown }).websocket = request.websocket;
    // Enrichment before the PDP: whether each called tool still matches its pinned definition.
    options.pins?.annotate(input, destination);

    const info = pdp.info();
    const policyPath = info?.decisionPath ?? '';
    const meta = decisionMeta(decisionId, policyPath, input, destination);
    // The span: the door's call span, Envoy's context (ext_authz), or a call span of its own.
    let ownTrace: CallTrace | undefined;
    let span: DecisionTrace;
    if (door === 'extauthz') {
      span = observer.tracing.startExtAuthzDecision(carrier ?? {}, meta);
    } else if (isHttp(request) && request.trace !== undefined) {
      span = request.trace.startDecision(meta);
    } else {
      const http = input.attributes.request.http;
      ownTrace = observer.tracing.startCall({
        method: http.method,
        scheme: http.scheme === 'https' ? 'https' : 'http',
        authority: http.host,
        ...(http.path === undefined ? {} : { target: http.path }),
        headers: http.headers,
      });
      span = ownTrace.startDecision(meta);
    }
    const started = process.hrtime.bigint();
    // The facts every record of this decision carries, timed when the PDP has answered.
    const facts = (): DecisionFacts => ({
      decisionId,
      policyPath,
      input,
      destination,
      span,
      seconds: Number(process.hrtime.bigint() - started) / 1e9,
      requestedBy,
    });
    let decision: Decision;
    try {
      // Budgets, rates and approvals wrap the PDP: input.usage/approval in, consumption out.
      const answer =
        options.governance === undefined
          ? pdp.decideNow === undefined
            ? pdp.decide(input, decisionId)
            : pdp.decideNow(input, decisionId)
          : options.governance.decide(pdp, input, decisionId, host);
      decision = answer instanceof Promise ? await answer : answer;
    } catch (err) {
      const error = wrapError('TG_ERR_POLICY_EVAL', 'policy decision failed', err);
      // ext_authz: Envoy's failure_mode_allow decides, so the mode recorded here is deny.
      const mode = door === 'extauthz' ? 'deny' : failureMode(failure as Config['pdp'], host);
      recordFailure(observer, facts(), error, mode, info?.revision ?? '');
      ownTrace?.end({ statusCode: mode === 'allow' ? 200 : 403, errorType: error.code });
      log.warn(
        { err: error, code: error.code, decisionId, door, host, failureMode: mode, trace_id: span.traceId },
        'no policy decision',
      );
      if (mode === 'allow') return { kind: 'allow', decisionId, input, decision: undefined, tokenRemoved };
      return { kind: 'fail', decisionId, input, error };
    }
    recordDecision(observer, facts(), decision);
    ownTrace?.end({ statusCode: decision.allowed ? 200 : (decision.httpStatus ?? denyStatus) });
    if (decision.allowed) return { kind: 'allow', decisionId, input, decision, tokenRemoved };
    return { kind: 'deny', decisionId, input, decision };
  }

  return {
    tokenHeader: identity.tokenHeaders[0],
    tokenHeaders: identity.tokenHeaders,
    decide,
  };
}

/** The HTTP reply for a verdict that does not forward (HTTP doors, raw socket replies). */
export function verdictReply(verdict: Exclude<Verdict, { kind: 'allow' }>, denyStatus: number): LocalReply {
  switch (verdict.kind) {
    case 'deny':
      return denyReply(verdict.decision, denyStatus, verdict.input.mcp);
    case 'fail':
      return failureReply(verdict.error, verdict.decisionId, 403);
    case 'refuse':
      return errorReply(verdict.error, verdict.stage === 'identity' ? undefined : verdict.decisionId);
    default:
      return verdict satisfies never;
  }
}
