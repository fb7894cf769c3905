// The decision log's seal: a record's line hashes to its `hash` (sha256-line) for any JSON
// content, at any depth a request body may have (a stack overflow there would leave a decision
// unrecorded), and any change to the line breaks it. Canonical JSON (RFC 8785): what files
// of the earlier scheme (sha256-jcs), approvals' call digests and tool pins are hashed over.
import t from 'tap';
import { ZERO_HASH, lineHashMatches, recomputeHash, sealRecord } from '../../src/audit/chain.ts';
import { canonicalJson } from '../../src/json/canonical.ts';
// Read back without JSON.parse's object names, which this runtime can misread (exact-json.ts).
import { buildJson } from '../../src/input/exact-json.ts';

t.test('keys are sorted, undefined members omitted, toJSON honoured, scalars as JSON writes them', async (t) => {
  const value = {
    b: 1,
    a: [1, 'x', null, { d: undefined, c: true, f: () => 1 }, undefined],
    e: { toJSON: () => 'z' },
    é: 1e21,
  };
  t.equal(canonicalJson(value), '{"a":[1,"x",null,{"c":true},null],"b":1,"e":"z","é":1e+21}');
  t.equal(canonicalJson(undefined), 'null');
  t.equal(canonicalJson([]), '[]');
  t.equal(canonicalJson({}), '{}');
});

t.test('a record nested 20,000 deep is sealed and its hash recomputes', async (t) => {
  let nested: unknown = [];
  for (let i = 0; i < 20_000; i++) nested = i % 2 === 0 ? [nested] : { k: nested };
  const text = canonicalJson(nested);
  t.equal(text.length, 10_000 * 2 + 10_000 * 6 + 2, 'every level written');
  t.ok(text.startsWith('{"k":[{"k":['));
  const { hash, line } = sealRecord({ seq: 1, input: { parsed_body: nested } });
  t.ok(lineHashMatches(line, hash));
  t.equal(
    canonicalJson((buildJson(line) as { input: unknown }).input),
    canonicalJson({ parsed_body: nested }),
    'every level in the line',
  );
});

t.test('a line sealed in one scheme does not pass for the other', async (t) => {
  const record = { type: 'genesis', chain_id: 'c', seq: 0, prev_hash: ZERO_HASH };
  const line = sealRecord(record);
  t.ok(lineHashMatches(line.line, line.hash));
  t.not(recomputeHash(JSON.parse(line.line) as Record<string, unknown>), line.hash);
  const jcs = recomputeHash(record);
  t.notOk(lineHashMatches(JSON.stringify({ ...record, hash: jcs }), jcs));
});

t.test('a sealed line holds the record and its hash; any change to the line breaks the seal', async (t) => {
  const fc = (await import('fast-check')).default;
  const record = fc.dictionary(fc.string({ unit: 'binary', maxLength: 6 }), fc.jsonValue({ maxDepth: 4 }), {
    minKeys: 1,
    maxKeys: 8,
  });
  let runs = 0;
  fc.assert(
    fc.property(record, fc.nat(), fc.string({ unit: 'binary', minLength: 1, maxLength: 2 }), (r, at, text) => {
      runs++;
      const { hash, line } = sealRecord(r);
      const { hash: member, ...rest } = buildJson(line) as Record<string, unknown>;
      if (member !== hash || JSON.stringify(rest) !== JSON.stringify(buildJson(JSON.stringify(r)))) return false;
      if (!lineHashMatches(line, hash)) return false;
      // Replace one or two code units anywhere in the line (hash member included).
      const i = at % line.length;
      const changed = line.slice(0, i) + text + line.slice(i + text.length);
      return changed === line || !lineHashMatches(changed, hash);
    }),
    { numRuns: 500 },
  );
  t.equal(runs, 500);
});

// The reference, written plainly: keys sorted by UTF-16 code units (RFC 8785 §3.2.3; a JS
// object cannot hold that order when keys look like integers), scalars as JSON writes them.
function reference(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(reference).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    const keys = Object.keys(record).sort();
    return `{${keys.map((key) => `${JSON.stringify(key)}:${reference(record[key])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

t.test('canonical JSON is the sorted-key serialisation of any JSON value, at any depth', async (t) => {
  const fc = (await import('fast-check')).default;
  let runs = 0;
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 6 }), fc.integer({ min: 0, max: 260 }), (value, depth) => {
      runs++;
      // Wrapped `depth` levels deep, so the switch to the iterative writer is crossed too.
      let nested: unknown = value;
      for (let i = 0; i < depth; i++) nested = i % 2 === 0 ? [nested] : { z: nested, a: i };
      const text = canonicalJson(nested);
      return text === reference(nested) && reference(JSON.parse(text)) === text;
    }),
    { numRuns: 300 },
  );
  t.equal(runs, 300);
});

t.test('strings and member names of any UTF-16 content are written as JSON.stringify writes them', async (t) => {
  const fc = (await import('fast-check')).default;
  // Any code unit, lone surrogates and control characters included; keys that look like integers.
  const text = fc.string({ unit: 'binary', maxLength: 12 });
  const key = fc.oneof(text, fc.nat({ max: 100 }).map(String), fc.constantFrom('__proto__', 'toString', '"', '\\'));
  const value = fc.letrec((tie) => ({
    node: fc.oneof(
      { depthSize: 'small' },
      text,
      fc.double(),
      fc.boolean(),
      fc.constant(null),
      fc.array(tie('node'), { maxLength: 4 }),
      fc.dictionary(key, tie('node'), { maxKeys: 5 }),
    ),
  })).node;
  let runs = 0;
  fc.assert(
    fc.property(value, (v) => {
      runs++;
      const out = canonicalJson(v);
      return out === reference(v) && reference(buildJson(out)) === out;
    }),
    { numRuns: 2000 },
  );
  t.equal(runs, 2000);
  t.equal(canonicalJson({ a: '\ud800', b: '😀', c: '\u0007"\\' }), '{"a":"\\ud800","b":"😀","c":"\\u0007\\"\\\\"}');
});

t.test('objects of any size are written in key order, on both sides of the in-place sort', async (t) => {
  const fc = (await import('fast-check')).default;
  // 0–40 members: up to 16 keys are sorted in place, more by the built-in sort.
  const key = fc.oneof(fc.string({ unit: 'binary', maxLength: 6 }), fc.nat({ max: 50 }).map(String));
  const sizes = new Set<number>();
  fc.assert(
    fc.property(fc.dictionary(key, fc.nat(), { minKeys: 0, maxKeys: 40, size: 'max' }), (record) => {
      sizes.add(Object.keys(record).length);
      const out = canonicalJson(record);
      return out === reference(record) && reference(buildJson(out)) === out;
    }),
    { numRuns: 1000 },
  );
  t.ok(
    [...sizes].some((n) => n > 16) && [...sizes].some((n) => n > 1 && n <= 16),
    `sizes seen: ${[...sizes].sort((a, b) => a - b).join(',')}`,
  );
});
