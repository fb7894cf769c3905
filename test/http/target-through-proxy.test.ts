// Paths and hosts through a real sidecar with the default (strict) path normalisation:
// a policy written the way users write it (exact path, host prefix) sees the one
// reading, what strict mode refuses never reaches the counting upstream, and what is
// forwarded is the canonical spelling the policy decided on.
import t from 'tap';
import { buildBundle, rawExchange, startTollgate, startUpstream } from '../helpers/processes.ts';

const POLICY = `package tollgate.authz

import rego.v1

http := input.attributes.request.http

default decision := {"allowed": false, "reasons": ["denied by the test policy"]}

decision := {"allowed": true} if {
	http.path != "/admin"
	not loopback_outside_public
}

loopback_outside_public if {
	startswith(http.host, "127.0.0.1")
	not startswith(http.path, "/public/")
}
`;

t.test('paths and hosts through the proxy', async (t) => {
  const bundle = await buildBundle({ 'policy.rego': POLICY }, ['tollgate/authz/decision'], 'paths-1');
  const upstream = await startUpstream(t);
  const tg = await startTollgate(t, {
    pdp: { bundle },
    proxy: { resolve: { 'tool.test:80': `127.0.0.1:${upstream.port}` } },
  });
  const send = (target: string, host: string) =>
    rawExchange(tg.proxyPort, `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);

  t.test('denies the exact path the policy names (control)', async (t) => {
    t.match(await send('http://tool.test/admin', 'tool.test'), /^HTTP\/1\.1 403 /);
    t.equal(upstream.received.length, 0);
  });

  t.test('decides on the normalised path of dot segments and doubled slashes', async (t) => {
    t.match(await send('http://tool.test/x/%2e%2e/admin', 'tool.test'), /^HTTP\/1\.1 403 /);
    t.match(await send('http://tool.test//admin', 'tool.test'), /^HTTP\/1\.1 403 /);
    t.equal(upstream.received.length, 0);
    // A trailing "/." leaves "/admin/" (RFC 3986 §5.2.4), which this policy allows: the
    // tool must receive exactly "/admin/", never "/admin".
    t.match(await send('/x/.%2E/./admin/.', 'tool.test'), /^HTTP\/1\.1 200 /);
    t.equal(upstream.received.at(-1)!.url, '/admin/');
  });

  const refused: [string, string][] = [
    ['a path parameter after the denied path', '/admin;'],
    ['a path parameter hiding a dot segment', '/api/..;/admin'],
    ['a session id on a dot segment', '/x/..;jsessionid=1/admin'],
    ['an encoded semicolon', '/x/..%3b/admin'],
    ['an escaped escape of dots', '/x/%252e%252e/admin'],
    ['an escaped escape spelled with escapes', '/x/%25%32%65%25%32%65/admin'],
    ['overlong utf-8 dots', '/x/%c0%ae%c0%ae/admin'],
    ['a utf-8 encoded surrogate', '/x/%ed%a0%80'],
    ['fullwidth dots', '/x/%ef%bc%8e%ef%bc%8e/admin'],
    ['a fullwidth solidus', '/x%ef%bc%8fadmin'],
    ['an encoded slash', '/x%2fadmin'],
  ];
  for (const [name, path] of refused) {
    t.test(`refuses ${name} before it reaches the tool`, async (t) => {
      const before = upstream.received.length;
      const answer = await send(`http://tool.test${path}`, 'tool.test');
      t.match(answer, /^HTTP\/1\.1 400 /);
      t.match(answer, /"code":"TG_ERR_AMBIGUOUS_TARGET"/);
      t.equal(upstream.received.length, before, 'nothing was forwarded');
    });
  }

  t.test('forwards the canonical path it decided on', async (t) => {
    t.match(await send('http://tool.test/v1//refunds/./r-1/%7e%41?x=%2e%2e', 'tool.test'), /^HTTP\/1\.1 200 /);
    t.equal(upstream.received.at(-1)!.url, '/v1/refunds/r-1/~A?x=%2e%2e');
  });

  t.test('decides on an IPv4-mapped IPv6 literal as the IPv4 host it reaches', async (t) => {
    const before = upstream.received.length;
    t.match(
      await send(`http://[::ffff:127.0.0.1]:${upstream.port}/private`, `[::ffff:127.0.0.1]:${upstream.port}`),
      /^HTTP\/1\.1 403 /,
    );
    t.match(await send(`/private`, `[::FFFF:7F00:0001]:${upstream.port}`), /^HTTP\/1\.1 403 /);
    t.equal(upstream.received.length, before, 'the loopback rule was not walked around');
    t.match(await send(`/public/x`, `[::ffff:7f00:1]:${upstream.port}`), /^HTTP\/1\.1 200 /);
    t.equal(
      upstream.received.at(-1)!.headers.host,
      `127.0.0.1:${upstream.port}`,
      'the tool receives the canonical authority',
    );
  });

  t.test('refuses host spellings whose destination depends on the reader', async (t) => {
    const before = upstream.received.length;
    for (const host of [
      `[::127.0.0.1]:${upstream.port}`,
      `[64:ff9b::7f00:1]:${upstream.port}`,
      `0.0.0.0:${upstream.port}`,
      '%74ool.test',
      'tool..test',
    ]) {
      const answer = await send('/public/x', host);
      t.match(answer, /^HTTP\/1\.1 400 /, host);
      t.match(answer, /"code":"TG_ERR_AMBIGUOUS_TARGET"/, host);
    }
    t.equal(upstream.received.length, before, 'nothing was forwarded');
  });
});

t.test('proxy.pathNormalization reaches the proxy: base keeps what strict refuses', async (t) => {
  const bundle = await buildBundle({ 'policy.rego': POLICY }, ['tollgate/authz/decision'], 'paths-2');
  const upstream = await startUpstream(t);
  const tg = await startTollgate(t, {
    pdp: { bundle },
    proxy: { pathNormalization: 'base', resolve: { 'tool.test:80': `127.0.0.1:${upstream.port}` } },
  });
  const send = (target: string) =>
    rawExchange(tg.proxyPort, `GET ${target} HTTP/1.1\r\nHost: tool.test\r\nConnection: close\r\n\r\n`);
  // base is RFC 3986 normalisation only: a path parameter and doubled slashes are kept.
  t.match(await send('http://tool.test/x;y//z'), /^HTTP\/1\.1 200 /);
  t.equal(upstream.received.at(-1)!.url, '/x;y//z');
  // Encoded slashes stay refused in every mode but decode_and_merge_slashes.
  t.match(await send('http://tool.test/x%2fadmin'), /"code":"TG_ERR_AMBIGUOUS_TARGET"/);
  t.equal(upstream.received.length, 1);
});
