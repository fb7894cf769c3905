/**
 * Random (version 4) UUIDs for request and decision ids, as node:crypto's randomUUID() makes
 * them (CSPRNG bytes, entropy drawn in batches), but written as text 256 at a time and handed
 * out as flat one-byte strings: randomUUID() builds each of its 36 characters by concatenation,
 * and every JSON.stringify, header write or log line of the id flattens it again. Trace and
 * span ids (randomHex) the same way.
 */
import { randomFillSync } from 'node:crypto';

const BATCH = 256;
const random = Buffer.allocUnsafe(16 * BATCH);
const text = Buffer.allocUnsafe(36 * BATCH);
const HEX = Buffer.from('0123456789abcdef', 'latin1');
let next = BATCH;
// Buffer's own latin1 slicer, which toString('latin1', …) calls after checking its arguments
// (about half the cost of an id). Node.js has it on every Buffer; it is not in its typings.
type Latin1Buffer = Buffer & { latin1Slice(start: number, end: number): string };
const latin1 = text as Latin1Buffer;

function refill(): void {
  randomFillSync(random);
  let t = 0;
  for (let u = 0; u < BATCH; u++) {
    const r = u * 16;
    // RFC 9562 §5.4: version 4 in the high nibble of octet 6, variant 10 in the top bits of octet 8.
    random[r + 6] = (random[r + 6]! & 0x0f) | 0x40;
    random[r + 8] = (random[r + 8]! & 0x3f) | 0x80;
    for (let i = 0; i < 16; i++) {
      if (i === 4 || i === 6 || i === 8 || i === 10) text[t++] = 0x2d;
      const byte = random[r + i]!;
      text[t++] = HEX[byte >> 4]!;
      text[t++] = HEX[byte & 15]!;
    }
  }
  // The random bytes are no longer needed once written out as text.
  random.fill(0);
  next = 0;
}

/** A new random UUID, lowercase, in its 8-4-4-4-12 form. */
export function newUuid(): string {
  if (next === BATCH) refill();
  const at = next++ * 36;
  return latin1.latin1Slice(at, at + 36);
}

// Random hex digits for trace and span ids, written 4096 at a time.
const HEX_CHARS = 4096;
const hexRandom = Buffer.allocUnsafe(HEX_CHARS / 2);
const hexText = Buffer.allocUnsafe(HEX_CHARS) as Latin1Buffer;
let hexNext = HEX_CHARS;

function refillHex(): void {
  randomFillSync(hexRandom);
  for (let i = 0; i < hexRandom.length; i++) {
    const byte = hexRandom[i]!;
    hexText[2 * i] = HEX[byte >> 4]!;
    hexText[2 * i + 1] = HEX[byte & 15]!;
  }
  hexRandom.fill(0);
  hexNext = 0;
}

/** `chars` (at most 4096) random lowercase hex digits from the CSPRNG, as a flat string. */
export function randomHex(chars: number): string {
  if (hexNext + chars > HEX_CHARS) refillHex();
  const at = hexNext;
  hexNext += chars;
  return hexText.latin1Slice(at, at + chars);
}
