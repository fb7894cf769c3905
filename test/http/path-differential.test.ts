/**
 * Property and differential tests of path normalisation: for generated hostile paths,
 * the canonical path Tollgate decides on and forwards must mean the same thing to the
 * readers behind it — Node's WHATWG URL, Go's net/http (a real Go program), Python's
 * urllib.parse.unquote + posixpath.normpath (a real Python process), a Java servlet
 * style reading and a server that decodes twice.
 */
import t from 'tap';
import fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { normalizePath, STRUCTURE_FOLDING_CODE_POINTS } from '../../src/http/path.ts';
import { TollgateError } from '../../src/errors.ts';
import type { PathNormalization } from '../../src/config/schema.ts';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '../fixtures');
const MODES: readonly PathNormalization[] = ['strict', 'base', 'merge_slashes', 'decode_and_merge_slashes'];
const SEED = Number(process.env.TOLLGATE_FC_SEED ?? Date.now() % 2 ** 31);
const RUNS = 3000;

// Pieces servers are known to read differently, plus ordinary text around them.
const TOKENS = [
  'a',
  'b',
  'admin',
  'v1',
  'x.json',
  '.',
  '..',
  '...',
  '%2e',
  '%2E',
  '%2e%2e',
  '.%2e',
  '%2e.',
  '%2f',
  '%2F',
  '%5c',
  '%5C',
  '\\',
  ';',
  '..;',
  ';x=1',
  ';jsessionid=1',
  '%3b',
  '%3B',
  '%25',
  '%252e',
  '%252f',
  '%25%32%65',
  '%25%34%31',
  '%2541',
  '%25zz',
  '%c0%ae',
  '%c0%af',
  '%e0%80%ae',
  '%ed%a0%80',
  '%80',
  '%c3',
  '%c3%a9',
  '%C3%A9',
  '%f0%9f%98%80',
  '%ef%bc%8f',
  '%ef%bc%8e',
  '%ef%bc%bc',
  '%e2%80%a5',
  '%e2%88%95',
  '%ef%b9%92',
  '%ef%bc%85',
  '%41',
  '%7e',
  '~',
  '-',
  '_',
  ':',
  '@',
  '!',
  '$',
  '&',
  "'",
  '(',
  ')',
  '*',
  '+',
  ',',
  '=',
  '%3A',
  '%3a',
  '%20',
  '%00',
  '%',
  '%4',
  '%zz',
  '"',
  '<',
  '>',
  '{',
  '}',
  '|',
  '^',
  '`',
  '[',
  ']',
];
const segment = fc
  .array(fc.oneof(fc.constantFrom(...TOKENS), fc.stringMatching(/^[A-Za-z0-9._~-]{1,6}$/)), { maxLength: 4 })
  .map((parts) => parts.join(''));
const hostilePath = fc.array(segment, { minLength: 1, maxLength: 7 }).map((segments) => `/${segments.join('/')}`);
const anyPath = fc.oneof(
  hostilePath,
  fc.webPath().filter((p) => p.startsWith('/')),
);

/** The canonical path, or the refusal code. */
function outcome(path: string, mode: PathNormalization): { path: string } | { refused: string } {
  try {
    return { path: normalizePath(path, mode) };
  } catch (err) {
    if (err instanceof TollgateError) return { refused: err.code };
    throw err;
  }
}

/** Percent-decodes once into bytes (what a single-decoding server reads), as a latin-1 string. */
function decodeOnce(s: string): string {
  return Buffer.from(
    s.replace(/%([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(Number.parseInt(h, 16))),
    'latin1',
  ).toString('latin1');
}

/** Bytes of a canonical path's meaning: its one percent-decoding (canonical paths are ASCII). */
function meaning(canonical: string): string {
  return decodeOnce(canonical);
}

function removeDots(p: string): string {
  const out: string[] = [];
  const segs = p.split('/');
  for (let i = 1; i < segs.length; i++) {
    const s = segs[i]!;
    const last = i === segs.length - 1;
    if (s === '.') {
      if (last) out.push('');
    } else if (s === '..') {
      out.pop();
      if (last) out.push('');
    } else if (s !== '' || last) out.push(s);
  }
  return `/${out.join('/')}`;
}

// No JVM servlet container runs here, so this is a reference of the reading Tomcat's
// CoyoteAdapter and Spring's UrlPathHelper apply: strip ";params" from every segment,
// percent-decode, then merge "//" and remove dot segments.
function javaReading(p: string): string {
  const stripped = p
    .split('/')
    .map((s) => s.replace(/;.*$/s, ''))
    .join('/');
  return removeDots(decodeOnce(stripped));
}

/** A server that percent-decodes twice (a proxy and then the application, or a framework bug). */
function doubleDecodingReading(p: string): string {
  return removeDots(decodeOnce(decodeOnce(p)));
}

function nodeReading(p: string): string {
  return decodeOnce(new URL(p, 'http://tool.test').pathname);
}

function withoutTrailingSlash(p: string): string {
  return p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p;
}

/** Runs one reader process over all paths at once; its lines are hex bytes or "error". */
function readAll(command: string, args: string[], paths: readonly string[]): (string | undefined)[] {
  const stdout = execFileSync(command, args, {
    input: `${paths.join('\n')}\n`,
    maxBuffer: 64 * 1024 * 1024,
    encoding: 'utf8',
  });
  const lines = stdout.split('\n').slice(0, paths.length);
  if (lines.length !== paths.length)
    throw new Error(`${command} answered ${lines.length} lines for ${paths.length} paths`);
  return lines.map((l) => (l === 'error' ? undefined : Buffer.from(l, 'hex').toString('latin1')));
}

t.test('normalisation is idempotent in every mode', async (t) => {
  for (const mode of MODES) {
    fc.assert(
      fc.property(anyPath, (p) => {
        const first = outcome(p, mode);
        if ('refused' in first) return true;
        const again = outcome(first.path, mode);
        return 'path' in again && again.path === first.path;
      }),
      { seed: SEED, numRuns: RUNS },
    );
  }
  t.pass(`idempotent over ${RUNS} paths per mode (seed ${SEED})`);
});

t.test('refusals are 400s with a code, never a crash', async (t) => {
  for (const mode of MODES) {
    fc.assert(
      fc.property(
        fc.oneof(
          anyPath,
          fc.string({ unit: 'binary', maxLength: 40 }).map((s) => `/${s}`),
        ),
        (p) => {
          const r = outcome(p, mode);
          return 'path' in r || r.refused === 'TG_ERR_BAD_REQUEST' || r.refused === 'TG_ERR_AMBIGUOUS_TARGET';
        },
      ),
      { seed: SEED, numRuns: RUNS },
    );
  }
  t.pass(`no path throws anything but a TollgateError (seed ${SEED})`);
});

t.test('a path accepted in strict mode has one structure for every reader', async (t) => {
  fc.assert(
    fc.property(anyPath, (p) => {
      const r = outcome(p, 'strict');
      if ('refused' in r) return true;
      const c = r.path;
      const segs = c.split('/').slice(1);
      const decoded = Buffer.from(meaning(c), 'latin1').toString('utf8');
      const nfkc = decoded.normalize('NFKC');
      const count = (s: string, ch: string) => s.split(ch).length - 1;
      return (
        /^[\x21-\x7e]*$/.test(c) &&
        !segs.slice(0, -1).includes('') &&
        !segs.some((s) => s === '.' || s === '..' || meaning(s) === '.' || meaning(s) === '..') &&
        !/%25[0-9A-Fa-f]{2}/.test(c) &&
        !c.includes(';') &&
        !/%3b/i.test(c) &&
        !/%2f|%5c/i.test(c) &&
        !decoded.includes('\ufffd') &&
        [...decoded].every((ch) => !STRUCTURE_FOLDING_CODE_POINTS.has(ch.codePointAt(0)!)) &&
        ['/', '\\', '.', '%', ';', '?', '#'].every((ch) => count(nfkc, ch) === count(decoded, ch))
      );
    }),
    { seed: SEED, numRuns: RUNS },
  );
  t.pass(`structure holds over ${RUNS} paths (seed ${SEED})`);
});

t.test(
  'real Go, Python and Node readers, a servlet-style and a double-decoding reader agree with the canonical path',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-path-reader-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const goReader = join(dir, 'path-reader');
    // Go and Python are part of the test toolchain (scripts/test.sh); a missing one fails here.
    execFileSync('go', ['build', '-o', goReader, '.'], {
      cwd: join(FIXTURES, 'path-reader'),
      env: { ...process.env, GOFLAGS: '-mod=readonly' },
    });

    const raws = [...new Set(fc.sample(anyPath, { seed: SEED, numRuns: RUNS }))];
    const accepted: { raw: string; canonical: string }[] = [];
    for (const raw of raws) {
      const r = outcome(raw, 'strict');
      if ('path' in r) accepted.push({ raw, canonical: r.path });
    }
    t.ok(
      accepted.length > RUNS / 10,
      `enough generated paths are accepted to compare (${accepted.length} of ${raws.length})`,
    );
    t.ok(
      raws.length - accepted.length > RUNS / 10,
      `enough are refused to mean the generator is hostile (${raws.length - accepted.length})`,
    );

    const canonicals = accepted.map((a) => a.canonical);
    const goOnCanonical = readAll(goReader, [], canonicals);
    const pyOnCanonical = readAll('python3', [join(FIXTURES, 'path-reader.py')], canonicals);
    const goOnRaw = readAll(
      goReader,
      [],
      accepted.map((a) => a.raw),
    );
    const pyOnRaw = readAll(
      'python3',
      [join(FIXTURES, 'path-reader.py')],
      accepted.map((a) => a.raw),
    );

    const disagreements: string[] = [];
    accepted.forEach(({ raw, canonical }, i) => {
      const m = meaning(canonical);
      const readings: [string, string | undefined, string][] = [
        // What the tool receives is the canonical path: every reader must read exactly its meaning.
        ['go net/http on the forwarded path', goOnCanonical[i], m],
        ['python unquote+normpath on the forwarded path', pyOnCanonical[i], withoutTrailingSlash(m)],
        ['node WHATWG URL on the forwarded path', nodeReading(canonical), m],
        ['servlet-style reading of the forwarded path', javaReading(canonical), m],
        ['double-decoding reading of the forwarded path', doubleDecodingReading(canonical), m],
        // And normalising did not change what the agent's own path means to a cleaning reader.
        [
          'go net/http on the agent path',
          goOnRaw[i] === undefined ? undefined : withoutTrailingSlash(goOnRaw[i]!),
          withoutTrailingSlash(m),
        ],
      ];
      // POSIX keeps a leading "//" (normpath("//a") is "//a"); Tollgate forwards "/a", so only the raw reading differs.
      if (!/^\/\/(?!\/)/.test(decodeOnce(raw)))
        readings.push(['python unquote+normpath on the agent path', pyOnRaw[i], withoutTrailingSlash(m)]);
      for (const [reader, got, want] of readings) {
        if (got !== want)
          disagreements.push(
            `${reader}: ${JSON.stringify(raw)} -> ${JSON.stringify(canonical)} read as ${JSON.stringify(got)}, policy saw ${JSON.stringify(want)}`,
          );
      }
    });
    t.same(
      disagreements.slice(0, 10),
      [],
      `no reader disagrees with the policy's reading (seed ${SEED}, ${accepted.length} paths)`,
    );
  },
);

t.test('the listed hostile paths are refused in strict mode and each reader confirms why', async (t) => {
  // Each of these means something else to at least one reader than to another: the
  // reason strict mode refuses them.
  const cases: [string, (p: string) => boolean][] = [
    ['/api/..;/admin', (p) => javaReading(p) !== removeDots(decodeOnce(p))],
    ['/%252e%252e/admin', (p) => doubleDecodingReading(p) !== removeDots(decodeOnce(p))],
    [
      '/a/%ef%bc%8f/..',
      (p) =>
        removeDots(Buffer.from(decodeOnce(p), 'latin1').toString('utf8').normalize('NFKC')) !==
        removeDots(Buffer.from(decodeOnce(p), 'latin1').toString('utf8')),
    ],
  ];
  for (const [p, differs] of cases) {
    t.ok(differs(p), `${p} is read two ways`);
    t.same(outcome(p, 'strict'), { refused: 'TG_ERR_AMBIGUOUS_TARGET' }, p);
  }
});

// The plain RFC 3986 §6.2.2 algorithm, one character at a time (Tollgate's reading
// before the strict mode): base mode must stay exactly this, whatever the fast paths do.
function rfc3986Reference(p: string): string | undefined {
  if (!p.startsWith('/')) return undefined;
  let out = '';
  for (let i = 0; i < p.length; i++) {
    const ch = p[i]!;
    const c = ch.charCodeAt(0);
    if (c <= 0x20 || c === 0x7f || ch === '\\') return undefined;
    if (ch === '%') {
      const hex = p.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return undefined;
      const byte = Number.parseInt(hex, 16);
      const decoded = String.fromCharCode(byte);
      if (byte < 0x20 || byte === 0x7f || decoded === '/' || decoded === '\\') return undefined;
      out += /[A-Za-z0-9\-._~]/.test(decoded) ? decoded : `%${hex.toUpperCase()}`;
      i += 2;
    } else if (c > 0x7e) {
      const cp = p.codePointAt(i)!;
      if (cp >= 0xd800 && cp <= 0xdfff) return undefined;
      out += encodeURIComponent(String.fromCodePoint(cp));
      if (cp > 0xffff) i++;
    } else {
      out += ch;
    }
  }
  const segs: string[] = [];
  const parts = out.split('/');
  for (let i = 1; i < parts.length; i++) {
    const s = parts[i]!;
    const last = i === parts.length - 1;
    if (s === '.') {
      if (last) segs.push('');
    } else if (s === '..') {
      segs.pop();
      if (last) segs.push('');
    } else segs.push(s);
  }
  return `/${segs.join('/')}`;
}

t.test('base mode is RFC 3986 normalisation and nothing else', async (t) => {
  const raw = fc.oneof(
    anyPath,
    fc.string({ unit: 'grapheme', maxLength: 12 }).map((s) => `/${s}`),
  );
  fc.assert(
    fc.property(raw, (p) => {
      const r = outcome(p, 'base');
      const want = rfc3986Reference(p);
      return 'path' in r ? r.path === want : want === undefined;
    }),
    { seed: SEED, numRuns: RUNS },
  );
  t.pass(`base mode equals the reference over ${RUNS} paths (seed ${SEED})`);
});
