/**
 * RFC 6455 framing as the WebSocket message relay reads it: frames split across chunks,
 * extended lengths, masking, and every frame no client may send refused with its close code.
 */
import t from 'tap';
import {
  closePayload,
  createFrameReader,
  encodeFrame,
  encodeMaskedFrame,
  FrameError,
  OPCODE,
} from '../../src/pep/ws-frames.ts';

const MASK = Buffer.from([1, 2, 3, 4]);
const reader = (max = 1 << 20) => createFrameReader({ requireMask: true, maxFrameBytes: max });

t.test('reads masked frames of every length class, byte by byte, and unmasks them', async (t) => {
  for (const size of [0, 125, 126, 65535, 65536]) {
    const payload = Buffer.alloc(size, 0x61);
    const wire = encodeMaskedFrame(OPCODE.text, payload, MASK);
    const r = reader();
    const frames = [];
    // Split at the header boundaries too.
    for (let i = 0; i < wire.length; i += i < 16 ? 1 : 4096)
      frames.push(...r.push(wire.subarray(i, i < 16 ? i + 1 : i + 4096)));
    t.equal(frames.length, 1, `${size} bytes`);
    t.ok(frames[0]!.payload.equals(payload));
    t.ok(frames[0]!.raw.equals(wire), 'raw is the frame as it arrived');
    t.equal(frames[0]!.fin, true);
  }
});

t.test('several frames in one chunk come out in order', async (t) => {
  const a = encodeMaskedFrame(OPCODE.text, Buffer.from('a'), MASK);
  const b = encodeMaskedFrame(OPCODE.ping, Buffer.from('p'), MASK);
  const frames = reader().push(Buffer.concat([a, b, a.subarray(0, 3)]));
  t.same(
    frames.map((f) => [f.opcode, f.payload.toString()]),
    [
      [OPCODE.text, 'a'],
      [OPCODE.ping, 'p'],
    ],
  );
});

const refused = (wire: Buffer, max?: number): FrameError => {
  try {
    reader(max).push(wire);
  } catch (err) {
    if (err instanceof FrameError) return err;
    throw err;
  }
  throw new Error('not refused');
};

t.test('frames no client may send are refused with the RFC 6455 close code', async (t) => {
  t.equal(refused(encodeFrame(OPCODE.text, Buffer.from('hi'))).closeCode, 1002, 'unmasked');
  t.equal(refused(Buffer.from([0x83, 0x80, 0, 0, 0, 0])).closeCode, 1002, 'reserved opcode 3');
  t.equal(refused(Buffer.from([0x0b, 0x80])).closeCode, 1002, 'reserved control opcode 0xb');
  t.equal(refused(Buffer.from([0x09, 0x80, 0, 0, 0, 0])).closeCode, 1002, 'fragmented ping');
  t.equal(refused(Buffer.from([0x89, 0xfe, 0, 126])).closeCode, 1002, 'ping longer than 125 bytes');
  t.equal(refused(Buffer.from([0x81, 0xfe, 0, 5])).closeCode, 1002, 'non-minimal 16-bit length');
  const big = Buffer.alloc(10);
  big[0] = 0x81;
  big[1] = 0xff;
  big.writeBigUInt64BE(100n, 2);
  t.equal(refused(big).closeCode, 1002, 'non-minimal 64-bit length');
  big.writeBigUInt64BE(1n << 63n, 2);
  t.equal(refused(big).closeCode, 1002, 'most significant bit set');
  big.writeBigUInt64BE(1n << 40n, 2);
  t.equal(refused(big).closeCode, 1009, 'over the limit, from the header alone');
  t.equal(refused(Buffer.from([0x81, 0xfe, 0x01, 0x00]), 200).closeCode, 1009, '16-bit length over a small limit');
});

t.test('a close payload carries the code and a reason cut to fit a control frame', async (t) => {
  const p = closePayload(1008, 'é'.repeat(100));
  t.equal(p.readUInt16BE(0), 1008);
  t.ok(p.length <= 125);
  t.notMatch(p.subarray(2).toString('utf8'), /\uFFFD/, 'not cut inside a character');
});
