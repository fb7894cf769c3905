/**
 * The response stage: where the PEP relays an MCP server's answer, each JSON-RPC
 * response message in it gets a decision of its own (input = the request's input plus
 * input.response), and the message is relayed as decided: unchanged, with tools/list
 * entries removed, redacted, or replaced by a JSON-RPC error (blocked). The same stage
 * feeds tools/list answers to the pin registry.
 *
 * application/json: the body is buffered (at most maxMessageBytes), decided, and sent
 * with its new Content-Length. text/event-stream: the stream keeps flowing; each event is
 * buffered until its blank line (at most maxMessageBytes), decided, and written on, so
 * only one event is ever held. What cannot be inspected (too large, compressed, not
 * JSON) is blocked with a JSON-RPC error for each unanswered request id (for SSE, as one
 * last event before the stream ends), or relayed untouched when onUninspectable is
 * "pass". Only answers to requests with an id are decided: server-to-client requests
 * and notifications in a stream are relayed as they are.
 */
import { randomUUID } from 'node:crypto';
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Writable } from 'node:stream';
import type { Logger } from 'pino';
import { wrapError, type TollgateError } from '../errors.ts';
import type { McpConfig } from '../config/schema.ts';
import type { PolicyInput } from '../input/build.ts';
import type { McpMessage } from '../input/mcp.ts';
import type { Decision, Pdp } from '../pdp/types.ts';
import {
  createNoopObserver,
  decisionMeta,
  recordResponseDecision,
  recordResponseFailure,
  type Observer,
} from '../telemetry/observer.ts';
import type { CallTrace } from '../telemetry/spans.ts';
import type { PinStore } from './pins.ts';
import {
  applyResponseResult,
  blockedMessage,
  requestsById,
  responseInput,
  responseResult,
  type ResponseInput,
} from './response-policy.ts';
import { discard, jsonSink, replyBlocked, sseSink, type Answer } from './relay-sinks.ts';

/** Options of createResponseStage. */
export interface ResponseStageOptions {
  readonly pdp: Pdp;
  readonly config: McpConfig;
  /** The pin registry (mcp.pins.enabled). */
  readonly pins?: PinStore;
  readonly observer?: Observer;
  readonly logger: Logger;
}

/** One forwarded call whose answer may be decided. */
export interface ResponseCall {
  /** The request's policy input (its input.mcp names the ids the answer carries). */
  readonly input: PolicyInput;
  /** The request's decision id (response decisions link to it). */
  readonly decisionId: string;
  /** The destination authority: the server whose tools are pinned. */
  readonly server: string;
  readonly trace: CallTrace;
  readonly requestedBy?: string;
}

/** The relay of one call's answer. */
export interface ResponseRelay {
  /**
   * Takes over the answer once its head arrived: writes the head to `res` itself (now, or
   * once the body is decided) and returns where undici writes the body. `abort` stops the
   * upstream exchange after Tollgate answered on its own.
   */
  start(status: number, headers: OutgoingHttpHeaders, res: ServerResponse, abort: () => void): Writable;
}

/** The response stage. */
export interface ResponseStage {
  /** The relay for a call's answer, or undefined when the answer is relayed untouched. */
  relay(call: ResponseCall): ResponseRelay | undefined;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Headers as the policy sees them: lowercase names, string values; never Set-Cookie (a credential the decision log would keep). */
function inputHeaders(headers: OutgoingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || name.toLowerCase() === 'set-cookie') continue;
    out[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : String(value);
  }
  return out;
}

/** Creates the response stage. */
export function createResponseStage(options: ResponseStageOptions): ResponseStage {
  const { pdp, pins } = options;
  const settings = options.config.response;
  const path = settings.decisionPath;
  const deciding = path !== '';
  const max = settings.maxMessageBytes;
  const observer = options.observer ?? createNoopObserver();
  const log = options.logger.child({ component: 'mcp-response' });

  function relay(call: ResponseCall): ResponseRelay | undefined {
    const requests = requestsById(call.input.mcp);
    // Notifications and responses get no answer messages to decide.
    if (requests.size === 0) return undefined;
    const listing = pins !== undefined && [...requests.values()].some((m) => m.method === 'tools/list');
    if (!deciding && !listing) return undefined;
    return { start: (status, headers, res, abort) => start(call, requests, status, headers, res, abort) };
  }

  /** Decides one parsed message; `changed` says whether it must be re-serialised. */
  async function decideMessage(
    call: ResponseCall,
    requests: Map<string | number, McpMessage>,
    message: unknown,
    http: { status: number; headers: Record<string, string>; transport: 'json' | 'sse' },
  ): Promise<{ out: unknown; changed: boolean }> {
    // Only responses (an id, and no method) answer the request; anything else goes on as it is.
    if (!isObject(message) || message.jsonrpc !== '2.0' || 'method' in message || !('id' in message))
      return { out: message, changed: false };
    const id = message.id;
    const request = typeof id === 'string' || typeof id === 'number' ? requests.get(id) : undefined;
    let tools: ResponseInput['tools'];
    if (request?.method === 'tools/list' && pins !== undefined && isObject(message.result)) {
      const listed = message.result.tools;
      if (Array.isArray(listed)) {
        const statuses = pins.observe(call.server, listed);
        tools = listed.map((t, i) => ({
          name: isObject(t) && typeof t.name === 'string' ? t.name : '',
          ...statuses[i],
        }));
      }
    }
    if (!deciding) return { out: message, changed: false };
    const decisionId = randomUUID();
    const response: ResponseInput & { request_decision_id: string } = {
      status: http.status,
      headers: http.headers,
      transport: http.transport,
      method: request?.method ?? '',
      ...(request === undefined ? {} : { request }),
      message,
      ...(tools === undefined ? {} : { tools }),
      request_decision_id: call.decisionId,
    };
    const input = responseInput(call.input, response);
    const span = call.trace.startResponseDecision(decisionMeta(decisionId, path, input, call.server), call.decisionId);
    const started = process.hrtime.bigint();
    const facts = () => ({
      decisionId,
      requestDecisionId: call.decisionId,
      policyPath: path,
      input,
      destination: call.server,
      span,
      seconds: Number(process.hrtime.bigint() - started) / 1e9,
      ...(call.requestedBy === undefined ? {} : { requestedBy: call.requestedBy }),
    });
    let decision: Decision;
    let result;
    try {
      decision = await pdp.decide(input, decisionId, path);
      result = responseResult(decision);
    } catch (err) {
      const error: TollgateError = wrapError('TG_ERR_POLICY_EVAL', 'response decision failed', err);
      const mode = settings.failureModeAllow ? 'allow' : 'deny';
      recordResponseFailure(observer, facts(), error, mode, pdp.info()?.revision ?? '');
      log.warn({ err: error, code: error.code, decisionId, failureMode: mode }, 'no response decision');
      if (mode === 'allow') return { out: message, changed: false };
      return {
        out: blockedMessage(id, [`no response decision (${error.code}): failing closed`], decisionId, ''),
        changed: true,
      };
    }
    // The decision log keeps the message the policy saw: changes are made to a copy.
    const edits = result.allowed && (result.removeTools.length > 0 || result.redact.length > 0);
    const applied = applyResponseResult(
      edits ? structuredClone(message) : message,
      result,
      decisionId,
      decision.revision,
    );
    recordResponseDecision(observer, facts(), decision, applied.action);
    // Decided: what is relayed is the reading the policy decided on, re-serialised.
    return { out: applied.message, changed: true };
  }

  function start(
    call: ResponseCall,
    requests: Map<string | number, McpMessage>,
    status: number,
    headers: OutgoingHttpHeaders,
    res: ServerResponse,
    abort: () => void,
  ): Writable {
    const type = String(headers['content-type'] ?? '').toLowerCase();
    const sse = type.startsWith('text/event-stream');
    const json = /^application\/([a-z0-9.+-]*\+)?json\s*(;|$)/.test(type);
    const passThrough = (): Writable => {
      res.writeHead(status, headers);
      if (sse || headers['content-length'] === undefined) res.flushHeaders();
      return res;
    };
    // Not a JSON-RPC answer (202 Accepted, an HTML error page): nothing to decide.
    if (!sse && !json) return passThrough();
    const http = { status, headers: inputHeaders(headers), transport: sse ? ('sse' as const) : ('json' as const) };
    const answered = new Set<unknown>();
    const unanswered = (): unknown[] => [...requests.keys()].filter((id) => !answered.has(id));
    const blockedFor = (reason: string): unknown[] =>
      unanswered().map((id) => blockedMessage(id, [reason], call.decisionId, '', 'blocked by tollgate'));

    const encoding = String(headers['content-encoding'] ?? 'identity').toLowerCase();
    if (encoding !== 'identity') {
      const reason = `the response is ${encoding}-encoded, so its messages cannot be inspected`;
      if (settings.onUninspectable === 'pass') {
        observer.metrics.recordResponseDecision('uninspectable_passed');
        return passThrough();
      }
      observer.metrics.recordResponseDecision('uninspectable_blocked');
      replyBlocked(res, status, headers, blockedFor(reason), sse);
      abort();
      return discard();
    }
    const answer: Answer = {
      status,
      headers,
      res,
      abort,
      maxBytes: max,
      onUninspectable: settings.onUninspectable,
      metrics: observer.metrics,
      log,
      decisionId: call.decisionId,
      decide: (message) => decideMessage(call, requests, message, http),
      blockedFor,
      answered: (id) => answered.add(id),
    };
    return sse ? sseSink(answer) : jsonSink(answer);
  }

  return { relay };
}
