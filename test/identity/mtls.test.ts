/**
 * The proxy listener over mTLS with certificates minted by openssl: an agent's X.509
 * SVID, verified against the SPIFFE trust bundle file, becomes input.agent (URI SAN
 * → spiffe_id, id by configuration) for plain requests and CONNECT tunnels; a missing,
 * untrusted or non-SPIFFE certificate gets 401 naming why; the bundle is reloaded
 * when its file changes.
 */
import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ROOT, buildBundle, startTollgate, startUpstream, tempDir, type Reply } from '../helpers/processes.ts';
import { connectViaTlsProxy, mintCa, mintLeaf, viaTlsProxy, type AgentTls } from '../helpers/spiffe-certs.ts';
import { pollPause } from '../helpers/poll.ts';

const TOLLGATE_ID = 'spiffe://example.org/tollgate';

async function until(send: () => Promise<Reply>, done: (r: Reply) => boolean, what: string): Promise<Reply> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const reply = await send();
    if (done(reply)) return reply;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: last ${reply.status} ${reply.body}`);
    await pollPause();
  }
}

t.test('an agent SVID presented over mTLS is the verified agent', async (t) => {
  const dir = await tempDir('tollgate-mtls-');
  const domain = await mintCa(dir, 'example-org-ca');
  const other = await mintCa(dir, 'evil-example-ca');
  const serving = await mintCa(dir, 'tollgate-serving-ca');
  const server = await mintLeaf(dir, 'tollgate', serving, `URI:${TOLLGATE_ID},IP:127.0.0.1`);
  const agent = await mintLeaf(dir, 'support-bot', domain, 'URI:spiffe://example.org/ns/shop/sa/support-bot');
  const outsider = await mintLeaf(dir, 'outsider', other, 'URI:spiffe://evil.example/ns/shop/sa/support-bot');
  const noUri = await mintLeaf(dir, 'no-uri', domain, 'DNS:agent.example.org');
  const bundleFile = join(dir, 'bundle.pem');
  await writeFile(bundleFile, domain.cert);

  const upstream = await startUpstream(t);
  const bundle = await buildBundle(
    { 'echo.rego': await readFile(join(ROOT, 'test/fixtures/identity/echo.rego'), 'utf8') },
    ['identity/echo/decision'],
  );
  const tollgate = await startTollgate(t, {
    agent: {
      id: 'configured',
      identity: {
        mtls: { certFile: server.certFile, keyFile: server.keyFile, bundleFile },
        spiffe: {
          idFrom: 'last-segment',
          agents: { 'spiffe://example.org/ns/shop/sa/support-bot': { role: 'support' } },
        },
      },
    },
    pdp: { bundle, decisionPath: 'identity/echo/decision' },
    proxy: { resolve: { 'api.test:80': `127.0.0.1:${upstream.port}`, 'api.test:443': `127.0.0.1:${upstream.port}` } },
  });
  const as = (leaf?: { cert: string; key: string }): AgentTls => ({
    ...(leaf === undefined ? {} : { cert: leaf.cert, key: leaf.key }),
    ca: serving.cert,
    serverId: TOLLGATE_ID,
  });
  const get = (tls: AgentTls) => viaTlsProxy(tollgate.proxyPort, tls, { url: 'http://api.test/tickets' });
  const error = (reply: Reply) => (JSON.parse(reply.body) as { error: { code: string; message: string } }).error;

  t.test('maps the SVID to spiffe_id, the configured role and namespace labels', async (t) => {
    const reply = await get(as(agent));
    t.equal(reply.status, 200, reply.body);
    t.same(JSON.parse(String(upstream.received.at(-1)!.headers['x-agent'])), {
      id: 'support-bot',
      role: 'support',
      labels: { trust_domain: 'example.org', namespace: 'shop', serviceaccount: 'support-bot' },
      spiffe_id: 'spiffe://example.org/ns/shop/sa/support-bot',
    });
  });

  t.test(
    'refuses an SVID of another trust bundle, a certificate without a SPIFFE ID, and no certificate',
    async (t) => {
      const before = upstream.received.length;
      const untrusted = await get(as(outsider));
      t.equal(untrusted.status, 401);
      t.equal(error(untrusted).code, 'TG_ERR_IDENTITY');
      t.match(error(untrusted).message, /not trusted by the SPIFFE bundle.*untrusted SVID/);
      const plain = await get(as(noUri));
      t.equal(plain.status, 401);
      t.match(error(plain).message, /no URI SAN/);
      const none = await get(as());
      t.equal(none.status, 401);
      t.match(error(none).message, /no client certificate/);
      t.equal(upstream.received.length, before, 'nothing reached the tool');
    },
  );

  t.test('decides a CONNECT tunnel for the SVID, and refuses one without a trusted SVID', async (t) => {
    t.match(await connectViaTlsProxy(tollgate.proxyPort, as(agent), 'api.test:443'), /^HTTP\/1\.1 200 /);
    t.match(await connectViaTlsProxy(tollgate.proxyPort, as(outsider), 'api.test:443'), /^HTTP\/1\.1 401 /);
  });

  t.test('reloads the trust bundle when its file changes', async (t) => {
    await writeFile(bundleFile, `${domain.cert}${other.cert}`);
    const reply = await until(
      () => get(as(outsider)),
      (r) => r.status === 200,
      'the added trust domain',
    );
    t.equal(
      JSON.parse(String(upstream.received.at(-1)!.headers['x-agent'])).spiffe_id,
      'spiffe://evil.example/ns/shop/sa/support-bot',
    );
    t.equal(reply.status, 200);
    await writeFile(bundleFile, other.cert);
    const removed = await until(
      () => get(as(agent)),
      (r) => r.status === 401,
      'the removed trust domain',
    );
    t.match(error(removed).message, /untrusted SVID/);
  });
});
