/**
 * Message-by-message decisions on an allowed WebSocket (MCP's JSON-RPC over WebSocket, and
 * any other text protocol an agent speaks on one). The agent's frames are read (RFC 6455:
 * masking, fragmentation, control frames, a size limit); each complete data message is
 * decided through the one decision step like an HTTP request to the upgrade's URL whose
 * body is the message, so the rules written for MCP over HTTP (input.mcp) hold here too.
 * An allowed message is forwarded as the very frames that carried it; a denied JSON-RPC
 * request is answered with a JSON-RPC error frame and not forwarded; a denied
 * notification is dropped; any other denied or unreadable message closes the connection
 * (1008 policy violation, 1007 invalid UTF-8, 1002 protocol error, 1009 too big). The
 * tool's frames flow back untouched; Tollgate's own frames are written only between them.
 */
import { randomUUID } from 'node:crypto';
import { newUuid } from '../runtime/uuid.ts';
import { isUtf8 } from 'node:buffer';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { CanonicalRequest } from '../http/normalize.ts';
import type { DecisionStep, Verdict } from '../enforce/decide.ts';
import { denyReply, jsonRpcErrorBody } from '../enforce/reply.ts';
import { mcpRequestIds } from '../input/mcp.ts';
import {
  closePayload,
  createFrameReader,
  encodeFrame,
  encodeMaskedFrame,
  FrameError,
  isControl,
  OPCODE,
  type Frame,
} from './ws-frames.ts';

/** The largest message (all its fragments) a WebSocket agent may send: 16 MiB. */
export const MAX_WS_MESSAGE_BYTES = 16 * 1024 * 1024;

/** input.websocket: which message of the connection is being decided. */
export interface WebSocketInput {
  /** "text" or "binary". A binary message is decided on its size alone: its bytes are not read. */
  readonly opcode: 'text' | 'binary';
  /** 0 for the first data message the agent sends on the connection. */
  readonly message_index: number;
  readonly bytes: number;
}

/** Options of relayMessages. */
export interface MessageRelayOptions {
  readonly step: DecisionStep;
  /** The upgrade request as normalised, with the headers the agent sent (agent token included). */
  readonly request: CanonicalRequest;
  readonly headers: Readonly<Record<string, string>>;
  readonly connect?: object | undefined;
  /** The SPIFFE ID the agent's connection presented (mTLS listener): every message is decided as that agent. */
  readonly peerSpiffeId?: string | undefined;
  /** Bytes of a message the policy reads (proxy.maxRequestBytes); past it the strict reading's rules apply. */
  readonly bodyLimit: number;
  readonly denyStatus: number;
  readonly logger: Logger;
}

/**
 * Tracks frame boundaries in the tool's byte stream so Tollgate's own frames (JSON-RPC
 * errors, a close) are written between frames, never inside one or inside a fragmented
 * message.
 */
function createServerSide(client: Duplex) {
  let head: Buffer = Buffer.alloc(0);
  let left = 0;
  let fragmented = false;
  let opcode = 0;
  let fin = true;
  const queue: Buffer[] = [];
  let ending = false;
  const idle = () => head.length === 0 && left === 0 && !fragmented;
  const headerSize = (h: Buffer): number | undefined => {
    if (h.length < 2) return undefined;
    const len7 = h[1]! & 0x7f;
    const extra = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
    const size = 2 + extra + ((h[1]! & 0x80) !== 0 ? 4 : 0);
    if (h.length < size) return undefined;
    const payload = len7 === 126 ? h.readUInt16BE(2) : len7 === 127 ? Number(h.readBigUInt64BE(2)) : len7;
    return size + payload;
  };
  return {
    /** Passes the tool's bytes to the agent, writing queued frames at the boundaries inside them. */
    feed(chunk: Buffer): boolean {
      let from = 0;
      let i = 0;
      let ok = true;
      const endFrame = () => {
        if (!isControl(opcode)) fragmented = !fin;
        if (!fragmented && queue.length > 0) {
          ok = client.write(chunk.subarray(from, i)) && ok;
          from = i;
          for (const frame of queue.splice(0)) ok = client.write(frame) && ok;
          if (ending) client.end();
        }
      };
      while (i < chunk.length) {
        if (left > 0) {
          const n = Math.min(left, chunk.length - i);
          i += n;
          left -= n;
          if (left === 0) endFrame();
          continue;
        }
        head = Buffer.concat([head, chunk.subarray(i, i + 1)]);
        i++;
        const total = headerSize(head);
        if (total === undefined) continue;
        fin = (head[0]! & 0x80) !== 0;
        opcode = head[0]! & 0x0f;
        left = total - head.length;
        head = Buffer.alloc(0);
        if (left === 0) endFrame();
      }
      if (from < chunk.length) ok = client.write(chunk.subarray(from)) && ok;
      return ok;
    },
    /**
     * Writes a frame of Tollgate's own now if the stream is between messages, else at the
     * next boundary; `last` ends the agent's side once it is written (a close frame).
     */
    inject(frame: Buffer, last = false): void {
      if (idle()) {
        if (last) client.end(frame);
        else client.write(frame);
        return;
      }
      queue.push(frame);
      ending ||= last;
    },
  };
}

/** What to do with a message the step did not allow. */
function refusalOf(
  verdict: Exclude<Verdict, { kind: 'allow' }>,
  denyStatus: number,
): { text?: string; close?: string } {
  switch (verdict.kind) {
    case 'deny': {
      const mcp = verdict.input.mcp;
      if (mcp !== undefined) {
        const ids = mcpRequestIds(mcp);
        // Notifications get no answer (JSON-RPC 2.0 §4.1): the denied one is just not delivered.
        if (ids.length === 0) return {};
        const reply = denyReply(verdict.decision, denyStatus, mcp);
        if (reply.status === 200) return { text: reply.body };
      }
      return { close: `denied by policy: ${verdict.decision.reasons.join('; ') || 'no reason given'}` };
    }
    case 'fail': {
      const mcp = verdict.input.mcp;
      const ids = mcp === undefined ? [] : mcpRequestIds(mcp);
      if (mcp !== undefined && ids.length === 0) return {};
      if (ids.length > 0)
        return {
          text: jsonRpcErrorBody(ids, 'batch' in mcp!, `no policy decision (${verdict.error.code}): failing closed`, {
            decision_id: verdict.decisionId,
            error: { code: verdict.error.code, message: verdict.error.message },
          }),
        };
      return { close: `no policy decision (${verdict.error.code})` };
    }
    case 'refuse':
      return { close: `${verdict.error.code}: ${verdict.error.message}` };
    default:
      return verdict satisfies never;
  }
}

/**
 * Relays an upgraded connection, deciding every data message the agent sends. `clientHead`
 * are bytes the agent sent after the handshake, `upstreamHead` the tool's after its 101.
 */
export function relayMessages(
  client: Duplex,
  upstream: Duplex,
  clientHead: Buffer,
  upstreamHead: Buffer,
  options: MessageRelayOptions,
): void {
  const log = options.logger.child({ component: 'websocket' });
  const reader = createFrameReader({ requireMask: true, maxFrameBytes: MAX_WS_MESSAGE_BYTES });
  const toClient = createServerSide(client);
  let message: { opcode: number; raws: Buffer[]; parts: Buffer[]; size: number } | undefined;
  let index = 0;
  let closed = false;

  const end = () => {
    closed = true;
    client.destroy();
    upstream.destroy();
  };
  /** Closes both sides: a close frame to the agent (between the tool's frames) and to the tool. */
  const close = (code: number, reason: string) => {
    if (closed) return;
    closed = true;
    log.debug({ code, reason }, 'websocket closed by tollgate');
    toClient.inject(encodeFrame(OPCODE.close, closePayload(code, reason)), true);
    upstream.end(encodeMaskedFrame(OPCODE.close, closePayload(1001, 'going away'), randomMask()));
  };

  async function decide(opcode: number, raws: Buffer[], payload: Buffer): Promise<void> {
    const text = opcode === OPCODE.text;
    if (text && !isUtf8(payload)) return close(1007, 'text message is not valid UTF-8');
    const websocket: WebSocketInput = {
      opcode: text ? 'text' : 'binary',
      message_index: index++,
      bytes: payload.length,
    };
    const body = text
      ? { bytes: payload.subarray(0, options.bodyLimit), truncated: payload.length > options.bodyLimit }
      : { bytes: Buffer.alloc(0), truncated: false };
    // A fresh copy per message: the step strips the agent token from the headers it is given.
    const request = { ...options.request, id: newUuid(), headers: { ...options.headers } };
    const verdict = await options.step.decide(
      {
        request,
        body,
        connect: options.connect,
        peerSpiffeId: options.peerSpiffeId,
        websocket: websocket as unknown as object,
      },
      'upgrade',
    );
    if (closed) return;
    if (verdict.kind === 'allow') {
      for (const raw of raws) upstream.write(raw);
      return;
    }
    const refusal = refusalOf(verdict, options.denyStatus);
    if (refusal.text !== undefined) toClient.inject(encodeFrame(OPCODE.text, Buffer.from(refusal.text)));
    if (refusal.close !== undefined) close(1008, refusal.close);
  }

  async function onFrame(frame: Frame): Promise<void> {
    // No extension is negotiated (Sec-WebSocket-Extensions is not forwarded): a set RSV
    // bit would be a compressed message the policy cannot read.
    if (frame.rsv !== 0) return close(1002, 'RSV bits set without a negotiated extension');
    if (isControl(frame.opcode)) {
      upstream.write(frame.raw);
      return;
    }
    if (frame.opcode === OPCODE.continuation) {
      if (message === undefined) return close(1002, 'continuation frame outside a fragmented message');
    } else {
      if (message !== undefined) return close(1002, 'new data frame inside a fragmented message');
      message = { opcode: frame.opcode, raws: [], parts: [], size: 0 };
    }
    message.raws.push(frame.raw);
    message.parts.push(frame.payload);
    message.size += frame.payload.length;
    if (message.size > MAX_WS_MESSAGE_BYTES) return close(1009, `message over the ${MAX_WS_MESSAGE_BYTES}-byte limit`);
    if (!frame.fin) return;
    const done = message;
    message = undefined;
    await decide(done.opcode, done.raws, Buffer.concat(done.parts));
  }

  // Messages are decided one at a time, in order: the agent is paused while one is decided.
  let chain: Promise<void> = Promise.resolve();
  const onData = (chunk: Buffer) => {
    let frames: Frame[];
    try {
      frames = reader.push(chunk);
    } catch (err) {
      if (err instanceof FrameError) return close(err.closeCode, err.message);
      throw err;
    }
    if (frames.length === 0) return;
    client.pause();
    chain = chain
      .then(async () => {
        for (const frame of frames) if (!closed) await onFrame(frame);
      })
      .then(
        () => {
          if (!closed) client.resume();
        },
        (err: unknown) => {
          log.error({ err }, 'websocket message relay failed');
          end();
        },
      );
  };

  client.on('error', end);
  upstream.on('error', end);
  client.on('close', () => {
    if (!upstream.destroyed) upstream.destroy();
  });
  upstream.on('close', () => {
    if (!client.writableEnded) client.destroy();
  });
  client.on('end', () => upstream.end());
  upstream.on('end', () => client.end());
  upstream.on('data', (chunk: Buffer) => {
    if (!toClient.feed(chunk)) {
      upstream.pause();
      client.once('drain', () => upstream.resume());
    }
  });
  if (upstreamHead.length > 0) toClient.feed(upstreamHead);
  client.on('data', onData);
  if (clientHead.length > 0) onData(clientHead);
  client.resume();
}

function randomMask(): Buffer {
  return Buffer.from(randomUUID().replaceAll('-', '').slice(0, 8), 'hex');
}
