/**
 * RFC 6455 framing, as much as a policy point needs: an incremental reader of the frames
 * one side sends (header, extended length, mask, payload unmasked), and an encoder for
 * the frames Tollgate writes itself (server-to-client frames are unmasked, §5.1). Pure
 * functions and one small state machine: no I/O.
 */

/** Frame opcodes (RFC 6455 §5.2). */
export const OPCODE = { continuation: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const;

/** One frame as read from the wire. */
export interface Frame {
  readonly fin: boolean;
  /** RSV1-3 as a 3-bit number (0 unless an extension was negotiated). */
  readonly rsv: number;
  readonly opcode: number;
  readonly masked: boolean;
  /** The payload, unmasked. */
  readonly payload: Buffer;
  /** The frame's bytes exactly as they arrived (header, mask and masked payload). */
  readonly raw: Buffer;
}

/** Why a stream of frames cannot be read: the close code to answer with (RFC 6455 §7.4.1) and a reason. */
export class FrameError extends Error {
  /** 1002 protocol error, 1009 message too big. */
  readonly closeCode: number;

  constructor(closeCode: number, message: string) {
    super(message);
    this.name = 'FrameError';
    this.closeCode = closeCode;
  }
}

/** Is the opcode a control frame's (close, ping, pong)? */
export function isControl(opcode: number): boolean {
  return (opcode & 0x8) !== 0;
}

/**
 * Reads frames from chunks as they arrive. `push` returns the frames completed by the
 * chunk; bytes of an incomplete frame are kept. Throws FrameError on a frame no endpoint
 * may send: an unknown opcode, a control frame fragmented or longer than 125 bytes, a
 * client frame without a mask (`requireMask`, §5.1), a non-minimal or 2^63+ length, or a
 * frame longer than `maxFrameBytes`.
 */
export function createFrameReader(options: { requireMask: boolean; maxFrameBytes: number }): {
  push(chunk: Buffer): Frame[];
} {
  let pending: Buffer = Buffer.alloc(0);
  return {
    push(chunk) {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      const frames: Frame[] = [];
      for (;;) {
        const frame = readOne(pending, options);
        if (frame === undefined) break;
        frames.push(frame);
        pending = pending.subarray(frame.raw.length);
      }
      return frames;
    },
  };
}

function readOne(buf: Buffer, options: { requireMask: boolean; maxFrameBytes: number }): Frame | undefined {
  if (buf.length < 2) return undefined;
  const b0 = buf[0]!;
  const b1 = buf[1]!;
  const fin = (b0 & 0x80) !== 0;
  const rsv = (b0 >> 4) & 0x7;
  const opcode = b0 & 0x0f;
  const masked = (b1 & 0x80) !== 0;
  if (opcode > 0xa || (opcode > 0x2 && opcode < 0x8)) throw new FrameError(1002, `unknown opcode ${opcode}`);
  if (options.requireMask && !masked) throw new FrameError(1002, 'client frame without a mask (RFC 6455 §5.1)');
  let length = b1 & 0x7f;
  let offset = 2;
  if (length === 126) {
    if (buf.length < 4) return undefined;
    length = buf.readUInt16BE(2);
    if (length < 126) throw new FrameError(1002, 'non-minimal 16-bit payload length');
    offset = 4;
  } else if (length === 127) {
    if (buf.length < 10) return undefined;
    const big = buf.readBigUInt64BE(2);
    if (big >> 63n !== 0n) throw new FrameError(1002, 'payload length with the most significant bit set');
    if (big < 65536n) throw new FrameError(1002, 'non-minimal 64-bit payload length');
    if (big > BigInt(options.maxFrameBytes))
      throw new FrameError(1009, `frame of ${big} bytes is over the ${options.maxFrameBytes}-byte limit`);
    length = Number(big);
    offset = 10;
  }
  if (isControl(opcode) && (!fin || length > 125))
    throw new FrameError(1002, 'control frame fragmented or longer than 125 bytes');
  if (length > options.maxFrameBytes)
    throw new FrameError(1009, `frame of ${length} bytes is over the ${options.maxFrameBytes}-byte limit`);
  const maskAt = offset;
  if (masked) offset += 4;
  if (buf.length < offset + length) return undefined;
  const payload = Buffer.from(buf.subarray(offset, offset + length));
  if (masked) for (let i = 0; i < payload.length; i++) payload[i]! ^= buf[maskAt + (i & 3)]!;
  return { fin, rsv, opcode, masked, payload, raw: buf.subarray(0, offset + length) };
}

/** Encodes one unmasked, final frame (what a server sends). */
export function encodeFrame(opcode: number, payload: Buffer): Buffer {
  const length = payload.length;
  const head =
    length < 126
      ? Buffer.from([0x80 | opcode, length])
      : length < 65536
        ? Buffer.from([0x80 | opcode, 126, length >> 8, length & 0xff])
        : Buffer.concat([Buffer.from([0x80 | opcode, 127]), bigLength(length)]);
  return Buffer.concat([head, payload]);
}

function bigLength(length: number): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigUInt64BE(BigInt(length));
  return out;
}

/** Encodes a masked, final frame (what a client sends), with the given 4-byte mask. */
export function encodeMaskedFrame(opcode: number, payload: Buffer, mask: Buffer): Buffer {
  const plain = encodeFrame(opcode, payload);
  const headLength = plain.length - payload.length;
  const out = Buffer.alloc(plain.length + 4);
  plain.copy(out, 0, 0, headLength);
  out[1] = out[1]! | 0x80;
  mask.copy(out, headLength);
  for (let i = 0; i < payload.length; i++) out[headLength + 4 + i] = payload[i]! ^ mask[i & 3]!;
  return out;
}

/** A close frame's payload: the status code and a UTF-8 reason cut to fit 125 bytes. */
export function closePayload(code: number, reason: string): Buffer {
  let text = Buffer.from(reason, 'utf8');
  if (text.length > 123) text = Buffer.from(new TextDecoder().decode(text.subarray(0, 120)).replace(/\uFFFD$/, ''));
  const out = Buffer.alloc(2 + text.length);
  out.writeUInt16BE(code, 0);
  text.copy(out, 2);
  return out;
}
