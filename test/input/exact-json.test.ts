// Member names read from the text: V8's JSON.parse can take an escaped name for the name of
// an earlier object's shape (exact-json.ts); the policy must read every body the way Go,
// Python and the tool do, whatever the process parsed before.
import t from 'tap';
import { buildJson, parseJson } from '../../src/input/exact-json.ts';
import { parseStrictJson } from '../../src/input/strict-json.ts';
import { envoyBody, parseBody } from '../../src/input/parse.ts';

const PRIMED = String.raw`{"p":{"p":1,"zq7":1,"amoun\\":0},"zq7":1,"amoun\u0074":900}`;

t.test("control: this runtime's JSON.parse misreads an escaped name after a shape with a backslash", async (t) => {
  JSON.parse(String.raw`{"ctl":1,"b\\":0}`);
  const misread = Object.keys(JSON.parse(String.raw`{"ctl":1,"b\u0041":0}`) as object);
  t.same(
    misread,
    ['ctl', 'b\\'],
    'when this fails, JSON.parse reads escaped names right again and exact-json.ts is no longer needed',
  );
});

t.test('one body can hide a member from JSON.parse; every reading here sees it', async (t) => {
  t.same(Object.keys(JSON.parse(PRIMED) as object), ['p', 'zq7', 'amoun\\'], 'JSON.parse loses "amount"');
  const want = { p: { p: 1, zq7: 1, 'amoun\\': 0 }, zq7: 1, amount: 900 };
  t.same(buildJson(PRIMED), want);
  t.same(parseJson(PRIMED), want);
  t.same(parseStrictJson(PRIMED), want, 'strict reading');
  t.same(envoyBody({ 'content-type': 'application/json' }, PRIMED, false).parsed, want, 'opa-envoy-plugin reading');
  const strict = parseBody({ 'content-type': 'application/json' }, PRIMED, false, undefined, { reading: 'strict' });
  t.same(strict.parsed, want, 'the strict body reading of the proxy');
});

t.test('an MCP tool argument hidden the same way reaches the policy', async (t) => {
  const body = String.raw`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"lookup_order","arguments":{"q":{"q":1,"i\\":0},"q2":1,"i\u0064":"c-1"}}}`;
  JSON.parse(String.raw`{"q":1,"q2":1,"i\\":0}`);
  const read = parseBody({ 'content-type': 'application/json' }, body, false, undefined, { reading: 'strict' });
  t.same((read.parsed as any).params.arguments, { q: { q: 1, 'i\\': 0 }, q2: 1, id: 'c-1' });
  t.same((read.mcp as { tool?: { arguments?: unknown } } | undefined)?.tool?.arguments, {
    q: { q: 1, 'i\\': 0 },
    q2: 1,
    id: 'c-1',
  });
});

t.test('built values equal the JSON they were written from, for any JSON value and spacing', async (t) => {
  const fc = (await import('fast-check')).default;
  let runs = 0;
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 5, stringUnit: 'binary' }), fc.boolean(), (value, spaced) => {
      runs++;
      const text = spaced ? JSON.stringify(value, null, '\t ') : JSON.stringify(value);
      const built = buildJson(`\r\n ${text} \n`);
      return (
        JSON.stringify(built) === JSON.stringify(value) && JSON.stringify(buildJson(text)) === JSON.stringify(value)
      );
    }),
    { numRuns: 1000 },
  );
  t.equal(runs, 1000);
});

t.test('members are created as JSON.parse creates them; errors and depth', async (t) => {
  const dup = buildJson('{"a":1,"b":2,"a":3}') as Record<string, unknown>;
  t.same(Object.keys(dup), ['a', 'b'], 'a repeated name keeps its first position');
  t.equal(dup.a, 3, 'and its last value');
  const proto = buildJson('{"__proto__":{"x":1}}') as Record<string, unknown>;
  t.ok(Object.hasOwn(proto, '__proto__'), '"__proto__" is an own member');
  t.equal(Object.getPrototypeOf(proto), Object.prototype, 'not the prototype');
  t.same(buildJson('[1,-0,2.5e3,true,false,null,"\\u00e9"]'), [1, -0, 2500, true, false, null, 'é']);
  t.ok(Object.is((buildJson('[-0]') as number[])[0], -0));
  t.same(buildJson(' {} '), {});
  t.same(buildJson('[[],{}]'), [[], {}]);
  for (const bad of ['', '{', '{"a"}', '{"a":1,}', '[1 2]', '{"a":1} x', '"open'])
    t.throws(() => buildJson(bad), SyntaxError, `refuses ${JSON.stringify(bad)}`);
  const depth = 100_000;
  const deep = buildJson(`${'[{"k":'.repeat(depth)}0${'}]'.repeat(depth)}`);
  let level: unknown = deep;
  let n = 0;
  while (Array.isArray(level)) {
    level = (level[0] as { k: unknown }).k;
    n++;
  }
  t.equal(n, depth, 'every level built, no stack overflow');
});
