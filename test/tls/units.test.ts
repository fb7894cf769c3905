// Pure parts of interception: the ClientHello reader, the CA and leaf profile, the
// bounded leaf cache. ClientHellos come from Node's real TLS client, captured.
import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { parseClientHello } from '../../src/tls/sni.ts';
import { generateCa, generateLeafKey, issueLeaf, loadCa } from '../../src/tls/ca.ts';
import { createLeafCache } from '../../src/tls/certs.ts';
import { captureClientHello } from './fixtures.ts';

t.test('parseClientHello', async (t) => {
  const hello = await captureClientHello({ servername: 'Payments.Internal', ALPNProtocols: ['h2', 'http/1.1'] });
  t.same(
    parseClientHello(hello),
    { kind: 'client-hello', serverName: 'payments.internal', alpn: ['h2', 'http/1.1'] },
    'reads SNI (lowercased) and ALPN',
  );
  const noSni = await captureClientHello({});
  t.same(parseClientHello(noSni), { kind: 'client-hello', alpn: [] }, 'a ClientHello without SNI has no serverName');
  for (let cut = 1; cut < hello.length; cut += 37) {
    t.equal(parseClientHello(hello.subarray(0, cut)).kind, 'need-more', `asks for more when truncated at ${cut}`);
  }
  t.equal(parseClientHello(Buffer.from('GET / HTTP/1.1\r\n')).kind, 'not-tls');
  t.equal(parseClientHello(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00])).kind, 'malformed', 'zero-length record');
  t.equal(
    parseClientHello(Buffer.from([0x16, 0x09, 0x01, 0x00, 0x05, 1, 0, 0, 1, 0])).kind,
    'malformed',
    'wrong record version',
  );
  // Corrupt lengths inside the hello at every position: never a throw, never a wrong name.
  for (let i = 5; i < hello.length; i++) {
    const bad = Buffer.from(hello);
    bad[i] = bad[i]! ^ 0xff;
    const r = parseClientHello(bad);
    t.ok(['malformed', 'client-hello', 'need-more'].includes(r.kind));
    if (r.kind === 'client-hello' && r.serverName !== undefined) t.match(r.serverName, /^[a-z0-9_.-]+$/);
  }
  const rnd = Buffer.alloc(4096);
  for (let i = 0; i < 200; i++) {
    for (let j = 0; j < rnd.length; j++) rnd[j] = Math.floor(Math.random() * 256);
    rnd[0] = 0x16;
    rnd[1] = 0x03;
    t.doesNotThrow(() => parseClientHello(rnd));
  }
});

t.test('CA and leaf certificates', async (t) => {
  const pair = generateCa();
  const ca = loadCa(pair.certPem, pair.keyPem);
  t.ok(ca.cert.ca, 'the CA is a CA');
  t.equal(ca.key.asymmetricKeyDetails?.namedCurve, 'prime256v1', 'ECDSA P-256');
  const key = generateLeafKey();
  const leaf = new X509Certificate(issueLeaf(ca, 'payments.internal', key.key).certPem);
  t.ok(leaf.verify(ca.cert.publicKey), 'signed by the CA');
  t.ok(leaf.checkIssued(ca.cert));
  t.equal(leaf.checkHost('payments.internal'), 'payments.internal');
  t.notOk(leaf.checkHost('hr.internal'));
  t.notOk(leaf.ca);
  t.equal(
    new X509Certificate(issueLeaf(ca, '10.1.2.3', key.key).certPem).checkIP('10.1.2.3'),
    '10.1.2.3',
    'IP literals get an IP SAN',
  );
  t.match(
    new X509Certificate(issueLeaf(ca, '[2001:db8::1]', key.key).certPem).subjectAltName,
    /IP Address:2001:DB8:0:0:0:0:0:1/i,
  );
  const other = generateCa();
  t.throws(
    () => loadCa(pair.certPem, other.keyPem),
    { code: 'TG_ERR_CONFIG_INVALID' },
    'a key that does not match is refused',
  );
  t.throws(() => loadCa('garbage', pair.keyPem), { code: 'TG_ERR_CONFIG_INVALID' });
});

t.test('the leaf cache stays bounded under thousands of distinct names', async (t) => {
  const pair = generateCa();
  const cache = createLeafCache({ ca: loadCa(pair.certPem, pair.keyPem), maxEntries: 100 });
  for (let i = 0; i < 3000; i++) cache.contextFor(`h${i}.example.test`);
  t.equal(cache.size(), 100);
  t.equal(cache.issued(), 3000);
  const hot = cache.contextFor('h2999.example.test');
  t.equal(cache.issued(), 3000, 'a recent name is a hit');
  t.equal(cache.contextFor('h2999.example.test'), hot);
  cache.contextFor('h0.example.test');
  t.equal(cache.issued(), 3001, 'an evicted name is issued again');
});
