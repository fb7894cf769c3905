/**
 * Masking decision-log events with OPA-style JSON pointers: erased values are gone,
 * listed in `erased`, and the caller's objects are untouched.
 */
import t from 'tap';
import fc from 'fast-check';
import { DEFAULT_MASK, maskEvent, maskInput, maskedHeaderNames, parsePointer } from '../../src/audit/mask.ts';

const input = () => ({
  attributes: {
    request: {
      http: {
        method: 'POST',
        headers: {
          authorization: 'Bearer s3cret',
          cookie: 'sid=1',
          'x-tollgate-agent-token': 'eyJ...',
          'content-type': 'application/json',
        },
      },
    },
  },
  parsed_body: { amount: 900, card: { number: '4111111111111111', cvc: '123' }, items: ['a', 'b'] },
  agent: { id: 'support-bot' },
});

t.test('the default mask erases credential headers and the agent token and lists them', async (t) => {
  const original = input();
  const { event, erased } = maskEvent({ input: original, result: { allowed: true } }, DEFAULT_MASK);
  const headers = (event.input as ReturnType<typeof input>).attributes.request.http.headers;
  t.same(Object.keys(headers), ['content-type']);
  t.same(erased, [
    '/input/attributes/request/http/headers/authorization',
    '/input/attributes/request/http/headers/cookie',
    '/input/attributes/request/http/headers/x-tollgate-agent-token',
  ]);
  t.notMatch(JSON.stringify(event), /s3cret|sid=1|eyJ/);
  t.equal(original.attributes.request.http.headers.authorization, 'Bearer s3cret', 'the caller input is not modified');
  t.equal(
    (event.input as ReturnType<typeof input>).parsed_body,
    original.parsed_body,
    'untouched branches are shared, not copied',
  );
});

t.test('pointers reach into bodies, arrays and results; absent paths are not listed', async (t) => {
  const { event, erased } = maskEvent({ input: input(), result: { allowed: false, headers: { 'x-secret': 'v' } } }, [
    '/input/parsed_body/card/number',
    '/input/parsed_body/items/1',
    '/result/headers/x-secret',
    '/input/nope/deeper',
    '/input/parsed_body/items/7',
    'bad-pointer',
  ]);
  const body = (event.input as ReturnType<typeof input>).parsed_body;
  t.same(body.card, { cvc: '123' });
  t.same(body.items, ['a', null], 'an erased array element keeps the other indexes');
  t.same(event.result, { allowed: false, headers: {} });
  t.same(erased, ['/input/parsed_body/card/number', '/input/parsed_body/items/1', '/result/headers/x-secret']);
});

t.test('pointer tokens unescape ~1 and ~0 (RFC 6901)', async (t) => {
  t.same(parsePointer('/input/a~1b/c~0d'), ['input', 'a/b', 'c~d']);
  t.same(parsePointer(''), []);
  t.throws(() => parsePointer('input'));
});

t.test('the mask list also names the headers kept off spans', async (t) => {
  t.same(
    maskedHeaderNames([...DEFAULT_MASK, '/input/parsed_body/x', '/input/attributes/request/http/headers/X-Custom']),
    ['authorization', 'proxy-authorization', 'cookie', 'x-tollgate-agent-token', 'x-api-key', 'x-custom'],
  );
  t.notMatch(JSON.stringify(maskInput(input(), DEFAULT_MASK)), /s3cret/);
});

/**
 * What a mask list means, written the plain way: each pointer in turn, on a deep copy, removes
 * an object member or nulls an array element when its whole path is there.
 */
function referenceMask(event: unknown, mask: readonly string[]): { event: unknown; erased: string[] } {
  let current: unknown = structuredClone(event);
  const erased: string[] = [];
  for (const pointer of mask) {
    let tokens: string[];
    try {
      tokens = parsePointer(pointer);
    } catch {
      continue;
    }
    if (tokens.length === 0 || (tokens[0] !== 'input' && tokens[0] !== 'result')) continue;
    let at: unknown = current;
    let found = true;
    for (const [i, token] of tokens.entries()) {
      const last = i === tokens.length - 1;
      if (typeof at !== 'object' || at === null) {
        found = false;
        break;
      }
      if (Array.isArray(at)) {
        if (!/^(0|[1-9]\d*)$/.test(token) || Number(token) >= at.length) {
          found = false;
          break;
        }
        if (last) {
          at[Number(token)] = null;
          break;
        }
        at = at[Number(token)];
      } else {
        if (!Object.hasOwn(at, token)) {
          found = false;
          break;
        }
        if (last) {
          delete (at as Record<string, unknown>)[token];
          break;
        }
        at = (at as Record<string, unknown>)[token];
      }
    }
    if (found) erased.push(pointer);
  }
  return { event: current, erased };
}

t.test('any mask list on any event erases what the plain reading does, in mask order', async (t) => {
  const key = fc.constantFrom('input', 'result', 'headers', 'a', 'b', '0', '1', 'x/y', 'x~y');
  const json = fc.letrec((tie) => ({
    value: fc.oneof(
      { depthSize: 'small' },
      fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.constant(null)),
      fc.array(tie('value'), { maxLength: 3 }),
      fc.dictionary(key, tie('value'), { maxKeys: 4 }),
    ),
  })).value;
  const pointer = fc.oneof(
    fc
      .array(key, { minLength: 1, maxLength: 4 })
      .map((tokens) => `/${tokens.map((k) => k.replace(/~/g, '~0').replace(/\//g, '~1')).join('/')}`),
    fc.constantFrom(...DEFAULT_MASK, 'bad-pointer', ''),
  );
  fc.assert(
    fc.property(json, json, fc.array(pointer, { maxLength: 8 }), (inputValue, resultValue, mask) => {
      const event = { input: inputValue, result: resultValue };
      const before = JSON.stringify(event);
      const got = maskEvent(event, mask);
      const want = referenceMask(event, mask);
      t.strictSame(got.erased, want.erased);
      // As text: the generated objects have no prototype, the reference's copies do.
      t.equal(JSON.stringify(got.event), JSON.stringify(want.event));
      t.equal(JSON.stringify(event), before, 'the caller event is not modified');
    }),
    { numRuns: 1000 },
  );
});
