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
 *   - undecodable message, invalid UTF-8 in a string field -> INTERNAL (as grpc-go)
 *   - message over maxReceiveBytes -> RESOURCE_EXHAUSTED
 * Also serves grpc.health.v1.Health and server reflection (v1 and v1alpha). gRPC itself is
 * ./grpc.ts on node:http2; the messages are encoded and decoded from Envoy's .proto files.
 */
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { TollgateError, wrapError, type ErrorCode } from '../errors.ts';
import { splitHostPort } from '../config/load.ts';
import type { CheckRequestDocument } from '../input/build.ts';
import type { DecisionStep } from '../enforce/decide.ts';
import {
  AUTHORIZATION_SERVICE,
  checkMethod,
  decodeCheckRequest,
  reflectionDescriptors,
  type Message,
} from '../proto/ext-authz.ts';
import { GrpcServer, GrpcStatusError } from './grpc.ts';
import { addReflection, Health, indexDescriptors } from './services.ts';
import { checkResponseFromDecision, GRPC, requestParseErrorResponse, unauthenticatedResponse } from './response.ts';

/** Options of createExtAuthzServer. */
export interface ExtAuthzServerOptions {
  /** host:port to listen on (port 0: any free port). */
  readonly listen: string;
  /** The one decision step every door calls (agent, token, PDP, recording). */
  readonly step: DecisionStep;
  /** Always allow; the real decision is still made and logged (opa-envoy-plugin's dry-run). */
  readonly dryRun: boolean;
  /** Largest CheckRequest accepted, in bytes (grpc max receive message length). */
  readonly maxReceiveBytes: number;
  readonly logger: Logger;
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
  TG_ERR_STATE_UNAVAILABLE: GRPC.UNAVAILABLE,
};

/** Maps a failure to decide to a gRPC status code. */
export function grpcStatusFor(error: TollgateError): number {
  return GRPC_STATUS_FOR[error.code] ?? GRPC.UNKNOWN;
}

/** Creates the ext_authz server (not yet listening). */
export function createExtAuthzServer(options: ExtAuthzServerOptions): ExtAuthzServer {
  const log = options.logger.child({ component: 'extauthz' });
  const debug = log.isLevelEnabled('debug');
  const method = checkMethod();

  async function check(request: CheckRequestDocument): Promise<Message> {
    const http = request.attributes?.request?.http;
    const host = typeof http?.host === 'string' ? http.host : '';
    const verdict = await options.step.decide({ checkRequest: request, host }, 'extauthz');
    switch (verdict.kind) {
      case 'refuse':
        if (verdict.stage === 'identity') return unauthenticatedResponse(verdict.error, verdict.decisionId);
        log.debug({ err: verdict.error, decisionId: verdict.decisionId }, 'check request does not parse');
        return requestParseErrorResponse(verdict.error);
      case 'fail':
        // No decision: a gRPC error, so Envoy's own failure_mode_allow decides.
        throw verdict.error;
      case 'allow':
      case 'deny':
        break;
      default:
        return verdict satisfies never;
    }
    // A failure-mode allow never happens on this door: the decision is always there.
    const decision = verdict.decision!;
    const response = checkResponseFromDecision(decision, options.dryRun);
    // Never forward the agent token upstream: Envoy removes it when told to.
    if (verdict.kind === 'allow' && verdict.tokenRemoved && response.okResponse !== undefined) {
      const ok = response.okResponse as Message;
      ok.headersToRemove = [...((ok.headersToRemove as string[] | undefined) ?? []), ...options.step.tokenHeaders];
    }
    // Hot path: build the log record only when it will be written.
    if (debug)
      log.debug(
        {
          decisionId: verdict.decisionId,
          allowed: decision.allowed,
          dryRun: options.dryRun,
          reasons: decision.reasons,
        },
        'ext_authz decision',
      );
    return response;
  }

  const server = new GrpcServer({
    maxReceiveBytes: options.maxReceiveBytes,
    onError: (err) => log.debug({ err }, 'ext_authz connection error'),
  });
  server.unary(AUTHORIZATION_SERVICE, 'Check', (wire) => {
    let request: CheckRequestDocument;
    try {
      request = decodeCheckRequest(wire);
    } catch (err) {
      throw new GrpcStatusError(GRPC.INTERNAL, `cannot decode the CheckRequest: ${(err as Error).message}`);
    }
    return check(request).then(
      (response) => method.responseSerialize(response),
      (err: unknown) => {
        const error = wrapError('TG_ERR_POLICY_EVAL', 'policy decision failed', err);
        log.warn({ err: error, code: error.code }, 'no policy decision for a check request');
        throw new GrpcStatusError(grpcStatusFor(error), `${error.code}: ${error.message}`);
      },
    );
  });
  const health = new Health({ '': 'SERVING', [AUTHORIZATION_SERVICE]: 'SERVING' });
  health.addTo(server);
  addReflection(server, indexDescriptors(reflectionDescriptors()), [AUTHORIZATION_SERVICE, 'grpc.health.v1.Health']);

  return {
    async listen() {
      const { host, port } = splitHostPort(options.listen);
      try {
        return await server.listen(host, Number(port));
      } catch (err) {
        throw wrapError('TG_ERR_CONFIG_INVALID', `ext_authz cannot listen on ${options.listen}`, err);
      }
    },
    close() {
      health.setAll('NOT_SERVING');
      health.endWatches();
      return server.close(2000);
    },
  };
}
