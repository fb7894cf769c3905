import t from 'tap';
import { normalizePath, STRUCTURE_FOLDING_CODE_POINTS } from '../../src/http/path.ts';
import { TollgateError } from '../../src/errors.ts';

const STRUCTURE = /[/\\.%;?#]/;
const CONFUSABLES = [0x2044, 0x2215, 0x2216, 0x29f5, 0x29f8, 0x29f9];

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof TollgateError ? err.code : 'not a TollgateError';
  }
  return undefined;
}

function nfkcFolds(): number[] {
  const out: number[] = [];
  for (let cp = 0x80; cp <= 0x10ffff; cp++) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue;
    const s = String.fromCodePoint(cp);
    const n = s.normalize('NFKC');
    if (n !== s && STRUCTURE.test(n)) out.push(cp);
  }
  return out;
}

// The list in src/http/path.ts is written out (scanning 1.1M code points costs ~100 ms at
// start); this keeps it equal to what this runtime's ICU actually folds.
t.test(
  'refuses exactly the code points NFKC folds into "/", "\\", ".", "%", ";", "?" or "#", plus the slash confusables',
  async (t) => {
    const expected = [...nfkcFolds(), ...CONFUSABLES].sort((a, b) => a - b);
    t.same(
      [...STRUCTURE_FOLDING_CODE_POINTS].sort((a, b) => a - b),
      expected,
    );
    // The ones people name: fullwidth and small forms of "/", "\" and ".", the two-dot leader.
    for (const cp of [0xff0f, 0xff3c, 0xff0e, 0xfe52, 0x2024, 0x2025, 0xfe68, 0xff05, 0x037e])
      t.ok(expected.includes(cp), cp.toString(16));
  },
);

t.test('refuses each folding code point raw and percent-encoded in strict mode', async (t) => {
  for (const cp of STRUCTURE_FOLDING_CODE_POINTS) {
    const ch = String.fromCodePoint(cp);
    const escaped = encodeURIComponent(ch);
    t.equal(
      code(() => normalizePath(`/a/${ch}/b`)),
      'TG_ERR_AMBIGUOUS_TARGET',
      `raw U+${cp.toString(16)}`,
    );
    t.equal(
      code(() => normalizePath(`/a/${escaped}/b`)),
      'TG_ERR_AMBIGUOUS_TARGET',
      `escaped U+${cp.toString(16)}`,
    );
    t.equal(
      code(() => normalizePath(`/a/${escaped.toLowerCase()}`)),
      'TG_ERR_AMBIGUOUS_TARGET',
      `lowercase escape U+${cp.toString(16)}`,
    );
  }
});

t.test('names the folded character in the refusal', async (t) => {
  try {
    normalizePath('/api/%EF%BC%8E%EF%BC%8E/admin');
    t.fail('accepted');
  } catch (err) {
    t.match((err as Error).message, /U\+FF0E.*"\."/);
  }
  try {
    normalizePath('/a%E2%88%95b');
    t.fail('accepted');
  } catch (err) {
    t.match((err as Error).message, /U\+2215.*look-alike/);
  }
});

t.test('keeps other non-ascii text, fullwidth letters included, as utf-8 escapes', async (t) => {
  t.equal(normalizePath('/検索/ＡＢＣ'), '/%E6%A4%9C%E7%B4%A2/%EF%BC%A1%EF%BC%A2%EF%BC%A3');
  t.equal(normalizePath('/%c3%a9t%c3%a9'), '/%C3%A9t%C3%A9');
});

t.test('leaves folding code points to the tool outside strict mode', async (t) => {
  for (const mode of ['base', 'merge_slashes', 'decode_and_merge_slashes'] as const) {
    t.equal(normalizePath('/a/%EF%BC%8F/b', mode), '/a/%EF%BC%8F/b', mode);
  }
});
