// Request and decision ids: version 4 UUIDs as RFC 9562 writes them, none repeated, across
// the batches the module draws its entropy in.
import t from 'tap';
import { newUuid, randomHex } from '../../src/runtime/uuid.ts';

const V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

t.test('every id is a lowercase version 4, variant 10 UUID, and none repeats', async (t) => {
  const seen = new Set<string>();
  // 40 batches of 256: the refill path is crossed many times.
  for (let i = 0; i < 10_240; i++) {
    const id = newUuid();
    if (!V4.test(id)) t.fail(`not a v4 UUID: ${JSON.stringify(id)}`);
    seen.add(id);
  }
  t.equal(seen.size, 10_240);
});

t.test('the random nibbles are spread over all sixteen values', async (t) => {
  // 30 random hex digits per id: each digit value appears about 1/16 of the time.
  const counts = new Array<number>(16).fill(0);
  const ids = 4_096;
  for (let i = 0; i < ids; i++) {
    const hex = newUuid().replaceAll('-', '');
    for (let k = 0; k < 32; k++) if (k !== 12 && k !== 16) counts[parseInt(hex[k]!, 16)]! += 1;
  }
  const expected = (ids * 30) / 16;
  for (const [digit, count] of counts.entries()) {
    t.ok(Math.abs(count - expected) < expected * 0.1, `digit ${digit.toString(16)}: ${count} of ~${expected}`);
  }
});

t.test('random hex ids: lowercase digits of the asked length, none repeated, digits spread evenly', async (t) => {
  const seen = new Set<string>();
  const counts = new Array<number>(16).fill(0);
  // 16- and 32-digit ids in turn, 40,000 digits in all: the 4,096-digit batch is refilled
  // about ten times, at boundaries an id does not fit before.
  for (let i = 0; i < 1_666; i++) {
    for (const length of [16, 32]) {
      const id = randomHex(length);
      if (!new RegExp(`^[0-9a-f]{${length}}$`).test(id)) t.fail(`not ${length} hex digits: ${JSON.stringify(id)}`);
      seen.add(id);
      for (const c of id) counts[parseInt(c, 16)]! += 1;
    }
  }
  t.equal(seen.size, 3_332);
  const expected = (1_666 * 48) / 16;
  for (const [digit, count] of counts.entries())
    t.ok(Math.abs(count - expected) < expected * 0.1, `digit ${digit.toString(16)}: ${count} of ~${expected}`);
});
