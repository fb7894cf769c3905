import t from 'tap';
import { normalizePath } from '../../src/http/path.ts';
import { normalizeRequest, type RawRequest } from '../../src/http/normalize.ts';
import { TollgateError } from '../../src/errors.ts';
import type { PathNormalization } from '../../src/config/schema.ts';

const MODES: readonly PathNormalization[] = ['strict', 'base', 'merge_slashes', 'decode_and_merge_slashes'];

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof TollgateError ? err.code : 'not a TollgateError';
  }
  return undefined;
}

function message(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return (err as Error).message;
  }
  return '';
}

t.test('leaves an already canonical path untouched in every mode', async (t) => {
  for (const mode of MODES) {
    t.equal(normalizePath('/v1/refunds/r-1', mode), '/v1/refunds/r-1', mode);
    t.equal(normalizePath('/', mode), '/', mode);
    t.equal(normalizePath('/a/b/', mode), '/a/b/', mode);
    t.equal(normalizePath('/file.json', mode), '/file.json', mode);
    t.equal(normalizePath("/a:b@c!$&'()*+,=", mode), "/a:b@c!$&'()*+,=", mode);
  }
});

t.test('defaults to strict', async (t) => {
  t.equal(
    code(() => normalizePath('/a;b')),
    'TG_ERR_AMBIGUOUS_TARGET',
  );
  t.equal(normalizePath('/a;b', 'base'), '/a;b');
});

t.test('removes dot segments, trailing ones included, in every mode', async (t) => {
  for (const mode of MODES) {
    t.equal(normalizePath('/a/.', mode), '/a/', mode);
    t.equal(normalizePath('/a/..', mode), '/', mode);
    t.equal(normalizePath('/a/b/..', mode), '/a/', mode);
    t.equal(normalizePath('/./a', mode), '/a', mode);
    t.equal(normalizePath('/.well-known/x', mode), '/.well-known/x', mode);
    t.equal(normalizePath('/a/..b/c', mode), '/a/..b/c', mode);
  }
});

t.test('decodes escaped dots before removing dot segments, whatever their case or mix', async (t) => {
  for (const mode of MODES) {
    t.equal(normalizePath('/v1/%2e%2e/admin', mode), '/admin', mode);
    t.equal(normalizePath('/v1/%2E%2E/admin', mode), '/admin', mode);
    t.equal(normalizePath('/v1/.%2e/admin', mode), '/admin', mode);
    t.equal(normalizePath('/v1/%2e./admin', mode), '/admin', mode);
    t.equal(normalizePath('/v1/%2e/admin', mode), '/v1/admin', mode);
    t.equal(normalizePath('/v1/x/%2e%2e', mode), '/v1/', mode);
  }
  // "%2e%2e%2f": the dots decode, the slash stays an ambiguity except where decoded.
  t.equal(
    code(() => normalizePath('/v1/%2e%2e%2fadmin')),
    'TG_ERR_AMBIGUOUS_TARGET',
  );
  t.equal(normalizePath('/v1/x/%2e%2e%2fadmin', 'decode_and_merge_slashes'), '/v1/admin');
});

t.test('merges empty segments before dot segments except in base mode', async (t) => {
  for (const mode of ['strict', 'merge_slashes', 'decode_and_merge_slashes'] as const) {
    t.equal(normalizePath('//a//b///', mode), '/a/b/', mode);
    // As Go's path.Clean and Python's posixpath.normpath: "//" is one separator, so ".." removes "a".
    t.equal(normalizePath('/a//../b', mode), '/b', mode);
    t.equal(normalizePath('//evil.test/x', mode), '/evil.test/x', mode);
  }
  t.equal(normalizePath('//a//b', 'base'), '//a//b');
  t.equal(normalizePath('/a//../b', 'base'), '/a/b');
});

t.test('refuses raw path parameters in strict mode because servlet containers strip them', async (t) => {
  for (const p of [
    '/api/..;/admin',
    '/..;jsessionid=x/admin',
    '/.;/admin',
    '/admin;',
    '/admin;x=1',
    '/a/b;c/d',
    '/;/admin',
  ]) {
    t.equal(
      code(() => normalizePath(p)),
      'TG_ERR_AMBIGUOUS_TARGET',
      p,
    );
  }
  t.match(
    message(() => normalizePath('/api/..;/admin')),
    /path parameter/,
  );
  // An encoded ";" is refused too: Spring Security's StrictHttpFirewall does the same.
  t.equal(
    code(() => normalizePath('/..%3b/admin')),
    'TG_ERR_AMBIGUOUS_TARGET',
  );
  t.equal(
    code(() => normalizePath('/a%3Bb')),
    'TG_ERR_AMBIGUOUS_TARGET',
  );
  // base keeps RFC 3986's reading: ";" is an ordinary sub-delim and "..;" an ordinary segment.
  t.equal(normalizePath('/api/..;/admin', 'base'), '/api/..;/admin');
  t.equal(normalizePath('/a%3bb', 'base'), '/a%3Bb');
});

t.test('refuses escaped escapes in strict mode because a second decoding reads another path', async (t) => {
  for (const p of [
    '/%252e%252e/admin',
    '/a%252fb',
    '/a%255cb',
    '/%25%32%65%25%32%65/admin',
    '/%25%32e',
    '/a%2541',
    '/%25%34%31',
  ]) {
    t.equal(
      code(() => normalizePath(p)),
      'TG_ERR_AMBIGUOUS_TARGET',
      p,
    );
  }
  t.match(
    message(() => normalizePath('/%252e')),
    /second decoding/,
  );
  // A percent sign that cannot start an escape is fine: decoding twice changes nothing.
  t.equal(normalizePath('/100%25'), '/100%25');
  t.equal(normalizePath('/100%25off'), '/100%25off');
  t.equal(normalizePath('/a%25zz'), '/a%25zz');
  t.equal(normalizePath('/a%25g1'), '/a%25g1');
  t.equal(normalizePath('/%252e', 'base'), '/%252e');
});

t.test('refuses escapes that are not shortest-form utf-8 in strict mode', async (t) => {
  const cases = {
    'overlong "."': '/%c0%ae%c0%ae/admin',
    'overlong "/"': '/a%c0%afb',
    'three-byte overlong "."': '/%e0%80%ae',
    'lone continuation byte': '/a%80b',
    'truncated sequence': '/caf%c3',
    'truncated before a literal': '/caf%c3e',
    'utf-8 encoded surrogate': '/%ed%a0%80',
    'past U+10FFFF': '/%f4%90%80%80',
    'latin-1 byte': '/caf%e9',
  };
  for (const [name, p] of Object.entries(cases))
    t.equal(
      code(() => normalizePath(p)),
      'TG_ERR_AMBIGUOUS_TARGET',
      name,
    );
  t.match(
    message(() => normalizePath('/%c0%ae')),
    /utf-8/,
  );
  t.equal(normalizePath('/caf%c3%a9'), '/caf%C3%A9');
  t.equal(normalizePath('/%f0%9f%98%80'), '/%F0%9F%98%80');
  t.equal(normalizePath('/%c0%ae', 'base'), '/%C0%AE');
});

t.test('escapes raw non-ascii as utf-8 and refuses lone surrogates', async (t) => {
  t.equal(normalizePath('/café'), '/caf%C3%A9');
  t.equal(normalizePath('/😀/x'), '/%F0%9F%98%80/x');
  t.equal(
    code(() => normalizePath('/a\ud800b')),
    'TG_ERR_AMBIGUOUS_TARGET',
  );
  t.equal(
    code(() => normalizePath('/a\udc00')),
    'TG_ERR_AMBIGUOUS_TARGET',
  );
});

t.test('decodes encoded slashes and backslashes to "/" only in decode_and_merge_slashes', async (t) => {
  t.equal(normalizePath('/a%2Fb', 'decode_and_merge_slashes'), '/a/b');
  t.equal(normalizePath('/a%5cb', 'decode_and_merge_slashes'), '/a/b');
  t.equal(normalizePath('/a%2F%2F..%2Fb', 'decode_and_merge_slashes'), '/b');
  for (const mode of ['strict', 'base', 'merge_slashes'] as const) {
    t.equal(
      code(() => normalizePath('/a%2Fb', mode)),
      'TG_ERR_AMBIGUOUS_TARGET',
      mode,
    );
    t.equal(
      code(() => normalizePath('/a%5Cb', mode)),
      'TG_ERR_AMBIGUOUS_TARGET',
      mode,
    );
  }
  // A raw backslash is refused everywhere: WHATWG readers turn it into "/", others do not.
  for (const mode of MODES)
    t.equal(
      code(() => normalizePath('/a\\b', mode)),
      'TG_ERR_AMBIGUOUS_TARGET',
      mode,
    );
});

t.test('refuses control characters and broken escapes as malformed in every mode', async (t) => {
  for (const mode of MODES) {
    for (const p of ['/a b', '/a\tb', '/a\x7fb', '/a%00b', '/a%0ab', '/a%7F', '/a%zz', '/a%4', '/%', 'relative', '']) {
      t.equal(
        code(() => normalizePath(p, mode)),
        'TG_ERR_BAD_REQUEST',
        `${mode} ${JSON.stringify(p)}`,
      );
    }
  }
});

t.test('decodes escaped unreserved characters and uppercases the rest', async (t) => {
  t.equal(normalizePath('/%7euser/%41%2d%5F'), '/~user/A-_');
  t.equal(normalizePath('/a%3ab%3f%23'), '/a%3Ab%3F%23');
});

function raw(target: string, headers: string[]): RawRequest {
  return {
    id: 'r1',
    method: 'GET',
    target,
    rawHeaders: headers,
    httpVersion: '1.1',
    scheme: 'http',
    source: { address: '127.0.0.1', port: 40000 },
    destination: { address: '127.0.0.1', port: 15001 },
  };
}

t.test('normalizeRequest applies the configured path normalisation and keeps the query', async (t) => {
  const strict = normalizeRequest(raw('/a//b/%2e%2e/c?x=%2e%2e&y=;', ['Host', 'a.test']));
  t.equal(strict.path, '/a/c?x=%2e%2e&y=;');
  t.equal(
    code(() => normalizeRequest(raw('/api/..;/admin', ['Host', 'a.test']))),
    'TG_ERR_AMBIGUOUS_TARGET',
  );
  t.equal(
    normalizeRequest(raw('/api/..;/admin', ['Host', 'a.test']), { pathNormalization: 'base' }).path,
    '/api/..;/admin',
  );
  t.equal(
    normalizeRequest(raw('http://a.test/a%2Fb?q', []), { pathNormalization: 'decode_and_merge_slashes' }).path,
    '/a/b?q',
  );
  t.equal(normalizeRequest(raw('/a//b', ['Host', 'a.test']), { pathNormalization: 'base' }).path, '/a//b');
});
