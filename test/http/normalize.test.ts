import t from 'tap';
import {
  normalizePath,
  normalizeHost,
  normalizeRequest,
  parseAuthority,
  type RawRequest,
} from '../../src/http/normalize.ts';
import { TollgateError } from '../../src/errors.ts';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from '../helpers/processes.ts';

function raw(target: string, headers: string[], extra: Partial<RawRequest> = {}): RawRequest {
  return {
    id: 'r1',
    method: 'GET',
    target,
    rawHeaders: headers,
    httpVersion: '1.1',
    scheme: 'http',
    source: { address: '127.0.0.1', port: 40000 },
    destination: { address: '127.0.0.1', port: 15001 },
    ...extra,
  };
}

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof TollgateError ? err.code : 'not a TollgateError';
  }
  return undefined;
}

t.test('removes dot segments as RFC 3986 §5.2.4 says', async (t) => {
  t.equal(normalizePath('/a/b/../c/./d'), '/a/c/d');
  t.equal(normalizePath('/a/b/..'), '/a/');
  t.equal(normalizePath('/../../etc'), '/etc');
  t.equal(normalizePath('/a/.'), '/a/');
});

t.test('decodes percent-encoded unreserved characters before removing dot segments', async (t) => {
  // The classic bypass: /v1/%2e%2e/admin must be decided (and forwarded) as /admin.
  t.equal(normalizePath('/v1/%2e%2e/admin'), '/admin');
  t.equal(normalizePath('/v1/%2E./x'), '/x');
  t.equal(normalizePath('/%7euser/%41'), '/~user/A');
});

t.test('keeps reserved escapes but uppercases them', async (t) => {
  t.equal(normalizePath('/a%3ab'), '/a%3Ab');
  t.equal(normalizePath('/caf%c3%a9'), '/caf%C3%A9');
  t.equal(normalizePath('/café'), '/caf%C3%A9');
});

t.test(
  'refuses encoded slashes and backslashes as ambiguous, control characters and broken escapes as malformed',
  async (t) => {
    t.equal(
      code(() => normalizePath('/a%2Fb')),
      'TG_ERR_AMBIGUOUS_TARGET',
    );
    t.equal(
      code(() => normalizePath('/a%2fb')),
      'TG_ERR_AMBIGUOUS_TARGET',
    );
    t.equal(
      code(() => normalizePath('/a%5Cb')),
      'TG_ERR_AMBIGUOUS_TARGET',
    );
    t.equal(
      code(() => normalizePath('/a\\b')),
      'TG_ERR_AMBIGUOUS_TARGET',
    );
    t.equal(
      code(() => normalizePath('/a%00b')),
      'TG_ERR_BAD_REQUEST',
    );
    t.equal(
      code(() => normalizePath('/a%zz')),
      'TG_ERR_BAD_REQUEST',
    );
    t.equal(
      code(() => normalizePath('/a%4')),
      'TG_ERR_BAD_REQUEST',
    );
    t.equal(
      code(() => normalizePath('relative')),
      'TG_ERR_BAD_REQUEST',
    );
  },
);

t.test('canonicalises hosts the way a resolver would read them', async (t) => {
  t.equal(normalizeHost('Payments.Internal'), 'payments.internal');
  t.equal(normalizeHost('payments.internal.'), 'payments.internal');
  // Alternative IPv4 spellings resolve to the same address, so they must decide the same.
  t.equal(normalizeHost('0x7f.1'), '127.0.0.1');
  t.equal(normalizeHost('2130706433'), '127.0.0.1');
  t.equal(normalizeHost('[::FFFF:127.0.0.1]'), '127.0.0.1');
  t.equal(
    code(() => normalizeHost('a b')),
    'TG_ERR_BAD_REQUEST',
  );
  t.equal(
    code(() => normalizeHost('evil.com%2f@good')),
    'TG_ERR_AMBIGUOUS_TARGET',
  );
  t.equal(
    code(() => normalizeHost('')),
    'TG_ERR_BAD_REQUEST',
  );
});

t.test('parses authorities with default and explicit ports', async (t) => {
  t.same(parseAuthority('api.test', 'http'), { host: 'api.test', port: 80 });
  t.same(parseAuthority('api.test:8080', 'http'), { host: 'api.test', port: 8080 });
  t.same(parseAuthority('api.test', 'https'), { host: 'api.test', port: 443 });
  t.same(parseAuthority('[::1]:9', 'http'), { host: '[::1]', port: 9 });
  t.equal(
    code(() => parseAuthority('api.test:0', 'http')),
    'TG_ERR_BAD_REQUEST',
  );
  t.equal(
    code(() => parseAuthority('api.test:99999', 'http')),
    'TG_ERR_BAD_REQUEST',
  );
  t.equal(
    code(() => parseAuthority('a:b:c', 'http')),
    'TG_ERR_BAD_REQUEST',
  );
});

t.test('takes the destination of an origin-form request from Host', async (t) => {
  const r = normalizeRequest(raw('/v1/x?a=1#frag', ['Host', 'API.test:80', 'X-Thing', 'v']));
  t.equal(r.host, 'api.test');
  t.equal(r.port, 80);
  t.equal(r.authority, 'api.test');
  t.equal(r.path, '/v1/x?a=1');
  t.equal(r.headers.host, 'api.test');
  t.equal(r.headers['x-thing'], 'v');
  t.equal(r.protocol, 'HTTP/1.1');
});

t.test('takes the destination of an absolute-form request from the request-target', async (t) => {
  const r = normalizeRequest(raw('http://api.test:8080/a/../b', ['Host', 'api.test:8080']));
  t.equal(r.authority, 'api.test:8080');
  t.equal(r.path, '/b');
  const bare = normalizeRequest(raw('http://api.test', []));
  t.equal(bare.path, '/');
  const q = normalizeRequest(raw('http://api.test?x=1', []));
  t.equal(q.path, '/?x=1');
});

t.test('rejects an absolute-form authority that differs from Host', async (t) => {
  t.equal(
    code(() => normalizeRequest(raw('http://good.test/', ['Host', 'evil.test']))),
    'TG_ERR_BAD_REQUEST',
  );
  t.equal(
    code(() => normalizeRequest(raw('http://good.test/', ['Host', 'good.test:81']))),
    'TG_ERR_BAD_REQUEST',
  );
  // Same authority spelled differently is not a conflict.
  t.equal(normalizeRequest(raw('http://Good.test:80/', ['Host', 'good.test'])).authority, 'good.test');
});

t.test('rejects duplicate Host and other singleton headers', async (t) => {
  t.equal(
    code(() => normalizeRequest(raw('/', ['Host', 'a.test', 'Host', 'b.test']))),
    'TG_ERR_BAD_REQUEST',
  );
  t.equal(
    code(() => normalizeRequest(raw('/', ['Host', 'a.test', 'Authorization', 'x', 'authorization', 'y']))),
    'TG_ERR_BAD_REQUEST',
  );
  t.equal(
    code(() =>
      normalizeRequest(raw('/', ['Host', 'a.test', 'Content-Type', 'application/json', 'content-type', 'text/plain'])),
    ),
    'TG_ERR_BAD_REQUEST',
  );
  t.equal(
    code(() => normalizeRequest(raw('/', []))),
    'TG_ERR_BAD_REQUEST',
  );
});

t.test('joins repeated list headers as Envoy does', async (t) => {
  const r = normalizeRequest(
    raw('/', ['Host', 'a.test', 'Accept', 'a', 'accept', 'b', 'Cookie', 'x=1', 'Cookie', 'y=2']),
  );
  t.equal(r.headers.accept, 'a,b');
  t.equal(r.headers.cookie, 'x=1; y=2');
});

t.test('drops hop-by-hop headers and those named in Connection', async (t) => {
  const r = normalizeRequest(
    raw('/', [
      'Host',
      'a.test',
      'Connection',
      'keep-alive, X-Secret',
      'Keep-Alive',
      '5',
      'Proxy-Authorization',
      'Basic x',
      'TE',
      'trailers',
      'X-Secret',
      's',
      'Upgrade',
      'h2c',
      'X-Kept',
      'k',
    ]),
  );
  t.same(Object.keys(r.headers).sort(), ['host', 'x-kept']);
});

t.test('records the body framing as sent; refuses repeated hop-by-hop singletons', async (t) => {
  const chunked = normalizeRequest(raw('/', ['Host', 'a.test', 'Transfer-Encoding', 'chunked']));
  t.equal(chunked.hasBody, true);
  t.equal(chunked.headers['transfer-encoding'], undefined, 'Transfer-Encoding is hop-by-hop');
  t.equal(normalizeRequest(raw('/', ['Host', 'a.test', 'Content-Length', '3'])).hasBody, true);
  t.equal(normalizeRequest(raw('/', ['Host', 'a.test', 'Content-Length', '0'])).hasBody, false);
  t.equal(normalizeRequest(raw('/', ['Host', 'a.test'])).hasBody, false);
  // Connection may name Content-Length: the header is not forwarded, the body it frames still is.
  const named = normalizeRequest(raw('/', ['Host', 'a.test', 'Connection', 'content-length', 'Content-Length', '3']));
  t.equal(named.hasBody, true);
  t.equal(named.headers['content-length'], undefined);
  t.equal(
    code(() =>
      normalizeRequest(raw('/', ['Host', 'a.test', 'Transfer-Encoding', 'chunked', 'Transfer-Encoding', 'chunked'])),
    ),
    'TG_ERR_BAD_REQUEST',
  );
  t.equal(
    code(() =>
      normalizeRequest(
        raw('/', ['Host', 'a.test', 'Proxy-Authorization', 'Basic a', 'Proxy-Authorization', 'Basic b']),
      ),
    ),
    'TG_ERR_BAD_REQUEST',
  );
  t.equal(
    code(() => normalizeRequest(raw('/', ['Host', 'a.test', 'Transfer-Encoding', 'gzip']))),
    'TG_ERR_UNSUPPORTED',
  );
});

t.test('a header named like a member of Object.prototype keeps the value sent', async (t) => {
  // "constructor" is the one lowercase name Object.prototype has besides __proto__.
  const once = normalizeRequest(raw('/', ['Host', 'a.test', 'Constructor', 'c']));
  t.equal(Object.hasOwn(once.headers, 'constructor'), true);
  t.equal(once.headers.constructor, 'c');
  const twice = normalizeRequest(raw('/', ['Host', 'a.test', 'constructor', 'c1', 'Constructor', 'c2']));
  t.equal(twice.headers.constructor, 'c1,c2', 'repeated: joined as any other header');
});

t.test('Connection naming a header that is not hop-by-hop by definition drops it, keeping Host', async (t) => {
  const r = normalizeRequest(raw('/', ['Host', 'a.test', 'X-A', 'a', 'Connection', 'x-a, host', 'X-B', 'b']));
  t.same(r.headers, { host: 'a.test', 'x-b': 'b' });
});

t.test('the header map of a request with hop-by-hop headers keeps fast properties', async (t) => {
  // A `delete` would have made it a dictionary: every later read, copy and JSON.stringify slower.
  // V8's own view, read with its natives syntax in a child process.
  const script = `
    import { normalizeRequest } from ${JSON.stringify(join(ROOT, 'src/http/normalize.ts'))};
    const r = normalizeRequest({
      id: 'r', method: 'GET', target: '/', httpVersion: '1.1', scheme: 'http',
      rawHeaders: ['Host', 'a.test', 'Connection', 'keep-alive', 'Accept', '*/*', 'Keep-Alive', '5',
        'TE', 'trailers', 'Expect', '100-continue', 'User-Agent', 'agent'],
      source: { address: '127.0.0.1', port: 1 }, destination: { address: '127.0.0.1', port: 2 },
    });
    process.stdout.write(JSON.stringify({ fast: %HasFastProperties(r.headers), keys: Object.keys(r.headers) }));
  `;
  const { stdout } = await promisify(execFile)(process.execPath, [
    '--allow-natives-syntax',
    '--input-type=module',
    '-e',
    script,
  ]);
  const { fast, keys } = JSON.parse(stdout) as { fast: boolean; keys: string[] };
  t.same(keys, ['host', 'accept', 'user-agent']);
  t.equal(fast, true);
});

t.test('rejects userinfo, unknown schemes and spaces in the query', async (t) => {
  t.equal(
    code(() => normalizeRequest(raw('http://user@a.test/', []))),
    'TG_ERR_BAD_REQUEST',
  );
  t.equal(
    code(() => normalizeRequest(raw('ftp://a.test/', []))),
    'TG_ERR_BAD_REQUEST',
  );
  t.equal(
    code(() => normalizeRequest(raw('*', ['Host', 'a.test']))),
    'TG_ERR_BAD_REQUEST',
  );
  t.equal(
    code(() => normalizeRequest(raw('/x?a=b c', ['Host', 'a.test']))),
    'TG_ERR_BAD_REQUEST',
  );
});

t.test('treats https absolute-form with its default port', async (t) => {
  const r = normalizeRequest(raw('https://a.test/x', []));
  t.equal(r.scheme, 'https');
  t.equal(r.port, 443);
  t.equal(r.authority, 'a.test');
});

t.test('inside a tunnel, a request may only target the tunnel authority', async (t) => {
  const inTunnel = (target: string, host: string) =>
    normalizeRequest(raw(target, ['Host', host], { scheme: 'https', tunnelAuthority: 'tool.test:443' }));
  t.equal(inTunnel('/x', 'tool.test').authority, 'tool.test');
  t.equal(
    code(() => inTunnel('/x', 'other.test')),
    'TG_ERR_BAD_REQUEST',
  );
  t.equal(
    code(() => inTunnel('/x', 'tool.test:8443')),
    'TG_ERR_BAD_REQUEST',
  );
});

// "identity, chunked" or "gzip, chunked" could be framed one way here and another way in the tool.
t.test('refuses a transfer-encoding other than chunked with 501', async (t) => {
  const raw = (te: string) => ({
    id: 'r',
    method: 'POST',
    target: '/x',
    rawHeaders: ['Host', 'a.test', 'Transfer-Encoding', te],
    httpVersion: '1.1',
    scheme: 'http' as const,
    source: { address: '127.0.0.1', port: 1 },
    destination: { address: '127.0.0.1', port: 2 },
  });
  for (const te of ['identity, chunked', 'gzip, chunked', 'identity']) {
    t.throws(() => normalizeRequest(raw(te)), { code: 'TG_ERR_UNSUPPORTED' }, te);
  }
  t.equal(normalizeRequest(raw('Chunked')).path, '/x');
});

t.test('drops an x-envoy-auth-partial-body header: only Envoy sets it, on the ext_authz door', async (t) => {
  const request = normalizeRequest(
    raw('/v1/refunds', ['Host', 'payments.internal', 'X-Envoy-Auth-Partial-Body', 'true', 'accept', '*/*']),
  );
  t.equal(request.headers['x-envoy-auth-partial-body'], undefined);
  t.equal(request.headers.accept, '*/*');
});
