/**
 * The ext_authz gRPC server: Tollgate as a drop-in PDP for Envoy's ext_authz filter
 * and Istio's CUSTOM action (envoy.service.auth.v3.Authorization/Check). It builds the
 * same policy input as the HTTP PEP (inputFromCheckRequest), asks the same Pdp, and
 * answers what opa-envoy-plugin answers (internal/internal.go):
 *   - decision            -> OK / PERMISSION_DENIED CheckResponse (./response.ts)
 *   - unparseable request -> PERMISSION_DENIED + DeniedHttpResponse 400 "request_parse_error: ..."
 *   - no decision (policy error, undefined, timeout) -> a gRPC error (UNKNOWN, or
 *     DEADLINE_EXCEEDED / UNAVAILABLE for a remote PDP), so Envoy's own
 *     failure_mode_allow decides, as with opa-envoy-plugin
 *   - undecodable message, invalid UTF-8 in a string field -> INTERNAL (grpc-js, as grpc-go)
 *   - message over maxReceiveBytes -> RESOURCE_EXHAUSTED
 * Also serves grpc.health.v1.Health and server reflection (v1 and v1alpha).
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import type { PackageDefinition } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import type { Logger } from 'pino';
import { TollgateError, wrapError, type ErrorCode } from '../errors.ts';
import { splitHostPort } from '../config/load.ts';
import { inputFromCheckRequest, type AgentIdentity, type CheckRequestDocument } from '../input/build.ts';
import type { Pdp } from '../pdp/types.ts';
import { AUTHORIZATION_SERVICE, checkMethod, decodeCheckRequest, reflectionDescriptors, type Message } from '../proto/ext-authz.ts';
import { verifyAgentToken } from '../input/identity.ts';
import { createNoopObserver, decisionMeta, recordDecision, recordFailure, type Observer } from '../telemetry/observer.ts';
import { checkResponseFromDecision, GRPC, requestParseErrorResponse, unauthenticatedResponse } from './response.ts';

/** Options of createExtAuthzServer. */
export interface ExtAuthzServerOptions {
  /** host:port to listen on (port 0: any free port). */
  readonly listen: string;
  readonly pdp: Pdp;
  readonly agent: AgentIdentity;
  /** When set, a verified HS256 token in this header overrides the agent (as on the HTTP PEP). */
  readonly agentToken?: { readonly header: string; readonly secret: string };
  /** Always allow; the real decision is still made and logged (opa-envoy-plugin's dry-run). */
  readonly dryRun: boolean;
  /** Largest CheckRequest accepted, in bytes (grpc max receive message length). */
  readonly maxReceiveBytes: number;
  readonly logger: Logger;
  /** Spans, metrics and the decision log (default: records nothing). */
  readonly observer?: Observer;
}

/** The running ext_authz server. */
export interface ExtAuthzServer {
  listen(): Promise<AddressInfo>;
  close(): Promise<void>;
}

/** gRPC status for a failure to decide — one exhaustive mapping. */
const GRPC_STATUS_FOR: Record<ErrorCode, number> = {
  TG_ERR_CONFIG_INVALID: GRPC.UNKNOWN,
  TG_ERR_BUNDLE_INVALID: GRPC.UNKNOWN,
  TG_ERR_POLICY_EVAL: GRPC.UNKNOWN,
  TG_ERR_POLICY_RESULT: GRPC.UNKNOWN,
  TG_ERR_POLICY_UNDEFINED: GRPC.UNKNOWN,
  TG_ERR_PDP_TIMEOUT: GRPC.DEADLINE_EXCEEDED,
  TG_ERR_PDP_UNAVAILABLE: GRPC.UNAVAILABLE,
  TG_ERR_BAD_REQUEST: GRPC.INVALID_ARGUMENT,
  TG_ERR_AMBIGUOUS_TARGET: GRPC.INVALID_ARGUMENT,
  TG_ERR_AMBIGUOUS_BODY: GRPC.INVALID_ARGUMENT,
  TG_ERR_UNSUPPORTED_MEDIA: GRPC.INVALID_ARGUMENT,
  TG_ERR_PROTOCOL_REFUSED: GRPC.INVALID_ARGUMENT,
  TG_ERR_BODY_TOO_LARGE: GRPC.INVALID_ARGUMENT,
  TG_ERR_HEADERS_TOO_LARGE: GRPC.INVALID_ARGUMENT,
  TG_ERR_IDENTITY: GRPC.UNAUTHENTICATED,
  TG_ERR_UNSUPPORTED: GRPC.UNKNOWN,
  TG_ERR_UPSTREAM: GRPC.UNKNOWN,
  TG_ERR_UPSTREAM_TIMEOUT: GRPC.UNKNOWN,
  TG_ERR_INPUT_INVALID: GRPC.INVALID_ARGUMENT,
};

/** Maps a failure to decide to a gRPC status code. */
export function grpcStatusFor(error: TollgateError): number {
  return GRPC_STATUS_FOR[error.code] ?? GRPC.UNKNOWN;
}

/** Creates the ext_authz server (not yet listening). */
export function createExtAuthzServer(options: ExtAuthzServerOptions): ExtAuthzServer {
  const log = options.logger.child({ component: 'extauthz' });
  const tokenHeader = options.agentToken?.header.toLowerCase();
  const debug = log.isLevelEnabled('debug');
  const observer = options.observer ?? createNoopObserver();
  const method = checkMethod();
  const definition: grpc.ServiceDefinition = {
    Check: { ...method, requestDeserialize: (wire: Buffer) => decodeCheckRequest(wire) } as grpc.MethodDefinition<CheckRequestDocument, Message>,
  };

  async function check(request: CheckRequestDocument): Promise<Message> {
    const decisionId = randomUUID();
    let agent = options.agent;
    let tokenPresent = false;
    if (tokenHeader !== undefined) {
      const token = request.attributes?.request?.http?.headers?.[tokenHeader];
      if (token !== undefined) {
        tokenPresent = true;
        try {
          agent = verifyAgentToken(token, options.agentToken!.secret);
        } catch (err) {
          return unauthenticatedResponse(wrapError('TG_ERR_IDENTITY', 'agent identity', err), decisionId);
        }
        // The policy sees the request as the upstream will: without the token.
        const headers = { ...request.attributes!.request!.http!.headers! };
        delete headers[tokenHeader];
        request = { ...request, attributes: { ...request.attributes, request: { ...request.attributes!.request, http: { ...request.attributes!.request!.http, headers } } } };
      }
    }
    let input;
    try {
      input = inputFromCheckRequest(request, agent);
    } catch (err) {
      const error = wrapError('TG_ERR_BAD_REQUEST', 'bad request', err);
      log.debug({ err: error, decisionId }, 'check request does not parse');
      return requestParseErrorResponse(error);
    }
    const http = request.attributes?.request?.http;
    const destination = typeof http?.host === 'string' ? http.host : '';
    const info = options.pdp.info();
    const policyPath = info?.decisionPath ?? '';
    // SERVER span continuing the context Envoy put in the checked request's headers.
    const span = observer.tracing.startExtAuthzDecision(http?.headers ?? {}, decisionMeta(decisionId, policyPath, input, destination));
    const started = process.hrtime.bigint();
    const facts = () => ({ decisionId, policyPath, input, destination, span, seconds: Number(process.hrtime.bigint() - started) / 1e9 });
    let decision;
    try {
      decision = await options.pdp.decide(input, decisionId);
    } catch (err) {
      // No decision: Envoy's own failure_mode_allow decides, so the mode recorded is deny.
      recordFailure(observer, facts(), wrapError('TG_ERR_POLICY_EVAL', 'policy decision failed', err), 'deny', info?.revision ?? '');
      throw err;
    }
    recordDecision(observer, facts(), decision);
    const response = checkResponseFromDecision(decision, options.dryRun);
    // Never forward the agent token upstream: Envoy removes it when told to.
    if (tokenPresent && response.okResponse !== undefined) {
      const ok = response.okResponse as Message;
      ok.headersToRemove = [...((ok.headersToRemove as string[] | undefined) ?? []), tokenHeader!];
    }
    // Hot path: build the log record only when it will be written.
    if (debug) log.debug({ decisionId, allowed: decision.allowed, dryRun: options.dryRun, reasons: decision.reasons }, 'ext_authz decision');
    return response;
  }

  const server = new grpc.Server({ 'grpc.max_receive_message_length': options.maxReceiveBytes });
  server.addService(definition, {
    Check(call: grpc.ServerUnaryCall<CheckRequestDocument, Message>, callback: grpc.sendUnaryData<Message>) {
      check(call.request).then(
        (response) => callback(null, response),
        (err: unknown) => {
          const error = wrapError('TG_ERR_POLICY_EVAL', 'policy decision failed', err);
          log.warn({ err: error, code: error.code }, 'no policy decision for a check request');
          callback({ code: grpcStatusFor(error), details: `${error.code}: ${error.message}` });
        },
      );
    },
  });
  const health = new HealthImplementation({ '': 'SERVING', [AUTHORIZATION_SERVICE]: 'SERVING' });
  health.addToServer(server);
  // The reflection service indexes whatever fileDescriptorProtos it is given: hand it the real files.
  const descriptors = { files: { format: 'Protocol Buffer 3 FileDescriptorProto', fileDescriptorProtos: reflectionDescriptors() } };
  new ReflectionService(descriptors as unknown as PackageDefinition).addToServer(server);

  return {
    listen() {
      const { host, port } = splitHostPort(options.listen);
      const target = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
      return new Promise((resolve, reject) => {
        server.bindAsync(target, grpc.ServerCredentials.createInsecure(), (err, boundPort) => {
          if (err) {
            reject(wrapError('TG_ERR_CONFIG_INVALID', `ext_authz cannot listen on ${options.listen}`, err));
            return;
          }
          resolve({ address: host, family: host.includes(':') ? 'IPv6' : 'IPv4', port: boundPort });
        });
      });
    },
    close() {
      health.setStatus('', 'NOT_SERVING');
      return new Promise((resolve) => {
        const timer = setTimeout(() => server.forceShutdown(), 2000);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}
