/**
 * Protocol upgrades (WebSocket, RFC 6455 §4.1) through the proxy: the upgrade
 * request is normalised and decided like any request (its path, headers and agent);
 * an allowed one is sent to the upstream with its Upgrade/Connection headers
 * restored, and once the upstream answers 101 the bytes are relayed both ways.
 * Anything but 101 is passed back as an ordinary answer and the connection closed.
 */
import { newUuid } from '../runtime/uuid.ts';
import { request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { TollgateError, wrapError } from '../errors.ts';
import type { Config } from '../config/schema.ts';
import { splitHostPort } from '../config/load.ts';
import { normalizeRequest, type CanonicalRequest } from '../http/normalize.ts';
import type { BufferedBody } from '../input/build.ts';
import { errorReply, DECISION_ID_HEADER } from '../enforce/reply.ts';
import { applyQueryChanges } from '../enforce/mutate.ts';
import { verdictReply, type DecisionStep } from '../enforce/decide.ts';
import { rawRequestOf, type RequestContext } from './proxy.ts';
import { peerSpiffeId } from '../identity/mtls.ts';
import { writeReply } from './tunnel.ts';
import { relayMessages } from './ws-messages.ts';
import { appendVia, guardedLookup, ownLiteralTarget, viaLoopError } from '../upstream/loop-guard.ts';

/** Options of createUpgradeHandler. */
export interface UpgradeOptions {
  readonly config: Config;
  /** The one decision step every door calls. */
  readonly step: DecisionStep;
  readonly logger: Logger;
}

const NO_BODY: BufferedBody = Object.freeze({ bytes: Buffer.alloc(0), truncated: false });

/**
 * Why an upgrade request is refused before any decision, or undefined. Only a
 * WebSocket handshake is relayed (RFC 6455 §4.1: `Upgrade: websocket`, one token,
 * compared case-insensitively): h2c (RFC 9113 §3.1 removed it), TLS/1.0 (RFC 2817)
 * or any other protocol would carry bytes no policy decided on. A handshake with a
 * body is refused too: the body is not part of the upgrade, and forwarding its
 * length without its bytes would desynchronise the upstream connection (smuggling).
 */
export function upgradeRefusal(req: IncomingMessage): TollgateError | undefined {
  const upgrade = req.headers.upgrade;
  if (upgrade === undefined || /[\r\n]/.test(upgrade))
    return new TollgateError('TG_ERR_BAD_REQUEST', 'upgrade request without a valid Upgrade header');
  if (upgrade.trim().toLowerCase() !== 'websocket') {
    return new TollgateError(
      'TG_ERR_PROTOCOL_REFUSED',
      `upgrade to ${JSON.stringify(upgrade.slice(0, 64))} is refused: only a single "websocket" token is relayed`,
    );
  }
  const length = req.headers['content-length'];
  if (req.headers['transfer-encoding'] !== undefined || (length !== undefined && length.trim() !== '0')) {
    return new TollgateError(
      'TG_ERR_PROTOCOL_REFUSED',
      'upgrade request carries a body (content-length or transfer-encoding): a WebSocket handshake has none',
    );
  }
  return undefined;
}

/** Handles one upgrade request arriving on a listener (plain, or inside an intercepted tunnel). */
export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer, context?: RequestContext) => void;

/** Creates the upgrade handler (ProxyHooks.onUpgrade, and the interceptor's inner server). */
export function createUpgradeHandler(options: UpgradeOptions): UpgradeHandler {
  const { config } = options;
  const log = options.logger.child({ component: 'upgrade' });
  const pathOptions = { pathNormalization: config.proxy.pathNormalization } as const;
  const step = options.step;

  async function handle(req: IncomingMessage, socket: Duplex, head: Buffer, context: RequestContext): Promise<void> {
    socket.on('error', () => socket.destroy());
    const refused = upgradeRefusal(req);
    if (refused !== undefined) {
      log.debug({ code: refused.code, upgrade: req.headers.upgrade }, 'upgrade refused');
      writeReply(socket, errorReply(refused));
      return;
    }
    const upgrade = req.headers.upgrade!;
    let request: CanonicalRequest;
    try {
      request = normalizeRequest(rawRequestOf(req, context, newUuid()), pathOptions);
    } catch (err) {
      writeReply(socket, errorReply(wrapError('TG_ERR_BAD_REQUEST', 'bad upgrade request', err)));
      return;
    }
    const loop = viaLoopError(request.headers.via);
    if (loop !== undefined) {
      writeReply(socket, errorReply(loop));
      return;
    }
    // The policy sees the upgrade it is deciding on, though Upgrade is hop-by-hop.
    (request.headers as Record<string, string>).upgrade = upgrade;
    // Every message is decided with the headers the agent sent (the step strips the agent
    // token from the copy it is given, so keep one before it does).
    const agentHeaders = { ...request.headers };
    const peer = context.peerSpiffeId ?? peerSpiffeId(req.socket);
    const verdict = await step.decide(
      { request, body: NO_BODY, connect: context.connect, peerSpiffeId: peer },
      'upgrade',
    );
    if (verdict.kind !== 'allow') {
      writeReply(socket, verdictReply(verdict, config.proxy.denyStatus));
      return;
    }
    const { decision, decisionId } = verdict;

    const headers: OutgoingHttpHeaders = { ...request.headers };
    if (decision !== undefined) {
      for (const name of decision.requestHeadersToRemove) delete headers[name.toLowerCase()];
      for (const [name, value] of decision.headers) headers[name.toLowerCase()] = value;
    }
    headers.via = appendVia(request.headers.via);
    // No extension (permessage-deflate) is negotiated: messages stay readable by the policy.
    delete headers['sec-websocket-extensions'];
    headers.connection = 'Upgrade';
    headers.upgrade = upgrade!;
    const path =
      decision === undefined
        ? request.path
        : applyQueryChanges(request.path, decision.queryParametersToSet, decision.queryParametersToRemove);
    const override = config.proxy.resolve[`${request.host}:${request.port}`];
    const target =
      override === undefined
        ? { host: request.host.replace(/^\[(.*)\]$/, '$1'), port: request.port }
        : splitHostPort(override);
    const own = ownLiteralTarget(target.host, target.port);
    if (own !== undefined) {
      writeReply(socket, errorReply(own, decisionId));
      return;
    }
    const https = request.scheme === 'https';
    const servername = /^[\d.]+$|:/.test(request.host) ? undefined : request.host;
    const upstreamReq = (https ? httpsRequest : httpRequest)({
      host: target.host,
      port: target.port,
      method: request.method,
      path,
      headers,
      agent: false,
      lookup: guardedLookup(target.port),
      timeout: config.proxy.upstreamConnectTimeoutMs,
      ...(https && servername !== undefined ? { servername } : {}),
    });
    socket.on('close', () => upstreamReq.destroy());
    upstreamReq.on('timeout', () =>
      upstreamReq.destroy(
        new TollgateError(
          'TG_ERR_UPSTREAM_TIMEOUT',
          `upstream ${request.authority} did not answer the upgrade in time`,
        ),
      ),
    );
    upstreamReq.on('error', (err) => {
      const error = err instanceof TollgateError ? err : wrapError('TG_ERR_UPSTREAM', 'upstream upgrade failed', err);
      log.debug({ err: error, host: request.host }, 'upstream upgrade failed');
      writeReply(socket, errorReply(error, decisionId));
    });
    upstreamReq.on('upgrade', (res: IncomingMessage, upstreamSocket: Socket, upstreamHead: Buffer) => {
      upstreamReq.setTimeout(0);
      if (res.headers['sec-websocket-extensions'] !== undefined) {
        // RFC 6455 §9.1: a server may not answer with an extension the client did not offer.
        upstreamSocket.destroy();
        writeReply(
          socket,
          errorReply(
            new TollgateError('TG_ERR_UPSTREAM', 'upstream negotiated a WebSocket extension that was not offered'),
            decisionId,
          ),
        );
        return;
      }
      let reply = `HTTP/1.1 101 ${res.statusMessage ?? 'Switching Protocols'}\r\n`;
      for (let i = 0; i < res.rawHeaders.length; i += 2) reply += `${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}\r\n`;
      reply += `${DECISION_ID_HEADER}: ${decisionId}\r\n\r\n`;
      socket.write(reply);
      relayMessages(socket, upstreamSocket, head, upstreamHead, {
        step,
        request,
        headers: agentHeaders,
        connect: context.connect,
        peerSpiffeId: peer,
        bodyLimit: config.proxy.maxRequestBytes,
        denyStatus: config.proxy.denyStatus,
        logger: log,
      });
    });
    upstreamReq.on('response', (res: IncomingMessage) => {
      // The upstream refused the upgrade: pass its answer on, then close.
      let reply = `HTTP/1.1 ${res.statusCode} ${res.statusMessage ?? ''}\r\n`;
      for (let i = 0; i < res.rawHeaders.length; i += 2) {
        const name = res.rawHeaders[i]!.toLowerCase();
        if (name === 'connection' || name === 'transfer-encoding' || name === 'keep-alive') continue;
        reply += `${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}\r\n`;
      }
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        const hasLength = res.headers['content-length'] !== undefined;
        socket.end(
          Buffer.concat([
            Buffer.from(
              `${reply}${hasLength ? '' : `content-length: ${body.length}\r\n`}${DECISION_ID_HEADER}: ${decisionId}\r\nconnection: close\r\n\r\n`,
            ),
            body,
          ]),
        );
      });
    });
    upstreamReq.end();
  }

  return (req, socket, head, context = { scheme: 'http' }) => {
    handle(req, socket, head, context).catch((err: unknown) => {
      log.error({ err }, 'unexpected error while handling an upgrade');
      socket.destroy();
    });
  };
}
