/**
 * Masking decision-log events with OPA-style JSON pointers: erased values are gone,
 * listed in `erased`, and the caller's objects are untouched.
 */
import t from 'tap';
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
