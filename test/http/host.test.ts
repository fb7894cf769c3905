import t from 'tap';
import { normalizeHost } from '../../src/http/host.ts';
import { normalizeRequest, parseAuthority, type RawRequest } from '../../src/http/normalize.ts';
import { TollgateError } from '../../src/errors.ts';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof TollgateError ? err.code : 'not a TollgateError';
  }
  return undefined;
}

t.test('spells every IPv4 form glibc inet_aton accepts as dotted decimal', async (t) => {
  for (const h of [
    '127.0.0.1',
    '127.1',
    '0x7f.1',
    '0x7F000001',
    '2130706433',
    '017700000001',
    '0177.0.0.1',
    '127.0.0.1.',
  ]) {
    t.equal(normalizeHost(h), '127.0.0.1', h);
  }
  // inet_aton reads a leading zero as octal, and so does the canonical form.
  t.equal(normalizeHost('010.0.0.1'), '8.0.0.1');
});

t.test('refuses a port or a bare IPv6 address passed as a host', async (t) => {
  t.equal(
    code(() => normalizeHost('a.test:80')),
    'TG_ERR_BAD_REQUEST',
  );
  t.equal(
    code(() => normalizeHost('::1')),
    'TG_ERR_BAD_REQUEST',
  );
});

t.test('spells IPv4-mapped IPv6 as the IPv4 address a dual-stack socket reaches', async (t) => {
  for (const h of [
    '[::ffff:127.0.0.1]',
    '[::FFFF:7F00:1]',
    '[::ffff:7f00:0001]',
    '[0:0:0:0:0:ffff:127.0.0.1]',
    '[0000:0000:0000:0000:0000:FFFF:7f00:0001]',
  ]) {
    t.equal(normalizeHost(h), '127.0.0.1', h);
  }
  t.equal(normalizeHost('[::ffff:10.1.2.3]'), '10.1.2.3');
});

t.test('spells IPv6 in RFC 5952 form: lowercase, zeros compressed, brackets kept', async (t) => {
  t.equal(normalizeHost('[0:0:0:0:0:0:0:1]'), '[::1]');
  t.equal(normalizeHost('[0000::0001]'), '[::1]');
  t.equal(normalizeHost('[2001:DB8:0:0:0:0:0:1]'), '[2001:db8::1]');
  t.equal(normalizeHost('[2001:0db8:0000:0000:0001:0000:0000:0001]'), '[2001:db8::1:0:0:1]');
  // 6to4 and Teredo embed an IPv4 address too, but name an IPv6 host: kept as IPv6.
  t.equal(normalizeHost('[2002:7f00:1::1]'), '[2002:7f00:1::1]');
});

t.test('refuses IPv6 forms whose IPv4 destination depends on the reader', async (t) => {
  const cases = {
    'ipv4-compatible dotted': '[::127.0.0.1]',
    'ipv4-compatible hex': '[::7f00:1]',
    'ipv4-translated': '[::ffff:0:7f00:1]',
    nat64: '[64:ff9b::7f00:1]',
    'nat64 dotted': '[64:ff9b::127.0.0.1]',
    'nat64 local-use': '[64:ff9b:1::7f00:1]',
  };
  for (const [name, h] of Object.entries(cases))
    t.equal(
      code(() => normalizeHost(h)),
      'TG_ERR_AMBIGUOUS_TARGET',
      name,
    );
  t.match(
    messageOf(() => normalizeHost('[::127.0.0.1]')),
    /127\.0\.0\.1/,
  );
});

t.test('refuses the unspecified addresses, which Linux connects to the local host', async (t) => {
  for (const h of ['0.0.0.0', '0', '0x0', '0.1.2.3', '[::]', '[0:0:0:0:0:0:0:0]', '[::ffff:0.0.0.0]']) {
    t.equal(
      code(() => normalizeHost(h)),
      'TG_ERR_AMBIGUOUS_TARGET',
      h,
    );
  }
});

t.test('refuses zone ids and percent-encoded hosts', async (t) => {
  t.equal(
    code(() => normalizeHost('[fe80::1%25eth0]')),
    'TG_ERR_AMBIGUOUS_TARGET',
  );
  t.equal(
    code(() => normalizeHost('[fe80::1%eth0]')),
    'TG_ERR_AMBIGUOUS_TARGET',
  );
  t.match(
    messageOf(() => normalizeHost('[fe80::1%25eth0]')),
    /zone/,
  );
  // WHATWG decodes "%41pi.test" to "api.test"; Go, Python and virtual hosts do not.
  t.equal(
    code(() => normalizeHost('%41pi.test')),
    'TG_ERR_AMBIGUOUS_TARGET',
  );
  t.equal(
    code(() => normalizeHost('127.0.0.%31')),
    'TG_ERR_AMBIGUOUS_TARGET',
  );
});

t.test('maps Unicode host spellings to the one IDNA (UTS 46) name', async (t) => {
  t.equal(normalizeHost('payments\uff0einternal'), 'payments.internal');
  t.equal(normalizeHost('ｐａｙｍｅｎｔｓ.internal'), 'payments.internal');
  t.equal(normalizeHost('PAYMENTS\u3002INTERNAL'), 'payments.internal');
  t.equal(normalizeHost('café.test'), 'xn--caf-dma.test');
  t.equal(normalizeHost('a\u00ad.test'), 'a.test');
  // Fullwidth "/" and "@" map to forbidden host code points.
  t.equal(
    code(() => normalizeHost('evil.test\uff0f@good.test')),
    'TG_ERR_BAD_REQUEST',
  );
  t.equal(
    code(() => normalizeHost('evil.test\uff20good.test')),
    'TG_ERR_BAD_REQUEST',
  );
});

t.test('drops one trailing dot and refuses empty labels', async (t) => {
  t.equal(normalizeHost('payments.internal.'), 'payments.internal');
  for (const h of ['payments.internal..', '.payments.internal', 'payments..internal', '.', '..']) {
    t.equal(
      code(() => normalizeHost(h)),
      'TG_ERR_AMBIGUOUS_TARGET',
      h,
    );
  }
});

function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return (err as Error).message;
  }
  return '';
}

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

t.test('forwards and decides on the canonical host, whichever spelling arrived', async (t) => {
  const mapped = normalizeRequest(raw('http://[::ffff:127.0.0.1]:8080/x', ['Host', '[::ffff:7f00:1]:8080']));
  t.equal(mapped.host, '127.0.0.1');
  t.equal(mapped.authority, '127.0.0.1:8080');
  t.equal(mapped.headers.host, '127.0.0.1:8080');
  const idn = normalizeRequest(raw('/x', ['Host', 'payments\uff0eINTERNAL.']));
  t.equal(idn.host, 'payments.internal');
  t.equal(idn.headers.host, 'payments.internal');
  const v6 = normalizeRequest(raw('/x', ['Host', '[0:0::1]:80']));
  t.equal(v6.authority, '[::1]');
  t.same(parseAuthority('[0000::1]:9', 'http'), { host: '[::1]', port: 9 });
});

t.test('treats a trailing dot in Host and its absence in the request-target as one host', async (t) => {
  t.equal(
    normalizeRequest(raw('http://payments.internal/x', ['Host', 'payments.internal.'])).authority,
    'payments.internal',
  );
  t.equal(
    normalizeRequest(raw('http://payments.internal./x', ['Host', 'PAYMENTS.internal'])).authority,
    'payments.internal',
  );
  t.equal(normalizeRequest(raw('http://127.1/x', ['Host', '[::ffff:127.0.0.1]'])).authority, '127.0.0.1');
  t.equal(
    code(() => normalizeRequest(raw('http://payments.internal/x', ['Host', '[::ffff:127.0.0.1]']))),
    'TG_ERR_BAD_REQUEST',
  );
});

t.test('canonicalises CONNECT targets with the same rules', async (t) => {
  const { parseConnectTarget } = await import('../../src/pep/connect.ts');
  t.same(parseConnectTarget('[::ffff:127.0.0.1]:443'), { host: '127.0.0.1', port: 443 });
  t.same(parseConnectTarget('0x7f.1:443'), { host: '127.0.0.1', port: 443 });
  t.same(parseConnectTarget('Payments.Internal.:443'), { host: 'payments.internal', port: 443 });
  t.same(parseConnectTarget('[0:0::1]:443'), { host: '::1', port: 443 });
  t.equal(
    code(() => parseConnectTarget('[::127.0.0.1]:443')),
    'TG_ERR_AMBIGUOUS_TARGET',
  );
  t.equal(
    code(() => parseConnectTarget('%70ayments.internal:443')),
    'TG_ERR_AMBIGUOUS_TARGET',
  );
  t.equal(
    code(() => parseConnectTarget('0.0.0.0:443')),
    'TG_ERR_AMBIGUOUS_TARGET',
  );
});
