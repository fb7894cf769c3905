// Canonical JSON (RFC 8785) of decision-log records: the shape the hash chain seals, and
// records as deeply nested as a request body may be (a stack overflow there would leave a
// decision unrecorded).
import t from 'tap';
import { canonicalJson, recomputeHash, sealRecord } from '../../src/audit/chain.ts';

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
  const record = JSON.parse(line) as Record<string, unknown>;
  t.equal(recomputeHash(record), hash);
});
