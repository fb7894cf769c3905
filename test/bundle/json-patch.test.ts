// RFC 6902 JSON Patch over policy data: the operations, RFC 6901 pointers, and
// all-or-nothing application (RFC 6902 §5).
import t from 'tap';
import { applyPatch, parsePatch, validatePatch } from '../../src/bundle/json-patch.ts';

const doc = { tollgate: { threat: { level: 'normal' }, hosts: ['a', 'b'], 'a/b': 1, 'm~n': 2 } };

t.test('add, remove, replace, move, copy and test, as in RFC 6902 §4', async (t) => {
  const out = applyPatch(doc, [
    { op: 'test', path: '/tollgate/threat/level', value: 'normal' },
    { op: 'replace', path: '/tollgate/threat/level', value: 'elevated' },
    { op: 'add', path: '/tollgate/hosts/-', value: 'c' },
    { op: 'add', path: '/tollgate/hosts/0', value: 'z' },
    { op: 'remove', path: '/tollgate/hosts/1' },
    { op: 'copy', from: '/tollgate/hosts', path: '/tollgate/copied' },
    { op: 'move', from: '/tollgate/a~1b', path: '/tollgate/moved' },
    { op: 'remove', path: '/tollgate/m~0n' },
  ]);
  t.same(out, {
    tollgate: { threat: { level: 'elevated' }, hosts: ['z', 'b', 'c'], copied: ['z', 'b', 'c'], moved: 1 },
  });
  t.same(doc.tollgate.hosts, ['a', 'b'], 'the input document is untouched');
});

t.test('replacing the whole document and adding at the root', async (t) => {
  t.same(applyPatch(doc, [{ op: 'replace', path: '', value: { x: 1 } }]), { x: 1 });
  t.same(applyPatch({}, [{ op: 'add', path: '/k', value: [1] }]), { k: [1] });
});

t.test('a failing operation aborts the whole patch', async (t) => {
  for (const patch of [
    [
      { op: 'replace', path: '/tollgate/threat/level', value: 'x' },
      { op: 'remove', path: '/nope' },
    ],
    [{ op: 'test', path: '/tollgate/threat/level', value: 'elevated' }],
    [{ op: 'add', path: '/tollgate/hosts/9', value: 'x' }],
    [{ op: 'add', path: '/tollgate/hosts/01', value: 'x' }],
    [{ op: 'remove', path: '/tollgate/hosts/2' }],
    [{ op: 'add', path: '/missing/child', value: 1 }],
    [{ op: 'move', from: '/tollgate', path: '/tollgate/inside' }],
    [{ op: 'remove', path: '' }],
    [{ op: 'replace', path: '/tollgate/nothing', value: 1 }],
    [{ op: 'add', path: '/tollgate/threat/level/deeper', value: 1 }],
  ] as const) {
    t.throws(() => applyPatch(doc, patch as never), { code: 'TG_ERR_BAD_REQUEST' }, JSON.stringify(patch));
  }
});

t.test('parsePatch refuses what is not an RFC 6902 document, naming the problem', async (t) => {
  t.throws(() => parsePatch('threat=elevated'), { code: 'TG_ERR_BAD_REQUEST', message: /not valid JSON/ });
  t.throws(() => parsePatch('{"op":"add"}'), { message: /must be an array of operations/ });
  t.throws(() => parsePatch('[1]'), { message: /\/0: expected an operation object/ });
  t.throws(() => parsePatch('[{"op":"merge","path":"/a"}]'), { message: /\/0\/op: expected one of/ });
  t.throws(() => parsePatch('[{"op":"add","path":"a","value":1}]'), { message: /must start with "\/"/ });
  t.throws(() => parsePatch('[{"op":"add","path":"/a"}]'), { message: /\/0\/value: missing/ });
  t.throws(() => parsePatch('[{"op":"copy","path":"/a"}]'), { message: /\/0\/from: expected a JSON pointer/ });
  t.throws(() => validatePatch([{ op: 'remove' }]), { message: /\/0\/path/ });
  t.same(parsePatch('[{"op":"remove","path":"/a"}]'), [{ op: 'remove', path: '/a' }]);
});
