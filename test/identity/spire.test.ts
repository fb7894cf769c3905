/**
 * SVIDs from a real SPIRE (server with SQLite, join-token attested agent, unix:uid
 * workload entries): Tollgate's proxy listener presents its own SPIRE-issued SVID
 * and verifies the agent's against the SPIRE trust bundle; the policy decides on
 * input.agent.spiffe_id; a certificate outside the trust domain gets 401.
 */
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ROOT, buildBundle, startTollgate, startUpstream, tempDir } from '../helpers/processes.ts';
import { startSpire } from '../helpers/spire.ts';
import { mintCa, mintLeaf, viaTlsProxy } from '../helpers/spiffe-certs.ts';

const AGENT_ID = 'spiffe://example.org/ns/shop/sa/support-bot';
const TOLLGATE_ID = 'spiffe://example.org/ns/shop/sa/tollgate';

// Decides on the SPIFFE ID itself: only workloads of the shop namespace may call the CRM.
const POLICY = `package spire.authz

decision := {"allowed": true, "headers": {"x-agent": json.marshal(input.agent)}} if {
	startswith(input.agent.spiffe_id, "spiffe://example.org/ns/shop/")
}

decision := {"allowed": false, "http_status": 403, "body": json.marshal(input.agent)} if {
	not startswith(object.get(input.agent, "spiffe_id", ""), "spiffe://example.org/ns/shop/")
}
`;

t.test('an X.509 SVID issued by SPIRE identifies the agent over mTLS', async (t) => {
  const spire = await startSpire(t);
  await spire.register(AGENT_ID);
  await spire.register(TOLLGATE_ID);
  await spire.register('spiffe://example.org/ns/billing/sa/invoice-bot');
  const { bundleFile, svids } = await spire.fetch([
    AGENT_ID,
    TOLLGATE_ID,
    'spiffe://example.org/ns/billing/sa/invoice-bot',
  ]);
  const own = svids.get(TOLLGATE_ID)!;
  const agent = svids.get(AGENT_ID)!;
  const billing = svids.get('spiffe://example.org/ns/billing/sa/invoice-bot')!;
  const bundlePem = await readFile(bundleFile, 'utf8');

  const upstream = await startUpstream(t);
  const bundle = await buildBundle({ 'spire.rego': POLICY }, ['spire/authz/decision']);
  const tollgate = await startTollgate(t, {
    agent: {
      id: 'configured',
      identity: {
        mtls: { certFile: own.certFile, keyFile: own.keyFile, bundleFile },
        spiffe: { trustDomains: ['example.org'], idFrom: 'last-segment', agents: { [AGENT_ID]: { role: 'support' } } },
      },
    },
    pdp: { bundle, decisionPath: 'spire/authz/decision' },
    proxy: { resolve: { 'crm.internal:80': `127.0.0.1:${upstream.port}` } },
  });
  // The agent checks Tollgate's SVID the SPIFFE way: chain to the bundle, then the ID.
  const tlsAs = (svid: { cert: string; key: string }) => ({
    cert: svid.cert,
    key: svid.key,
    ca: bundlePem,
    serverId: TOLLGATE_ID,
  });
  const get = (tls: ReturnType<typeof tlsAs>) =>
    viaTlsProxy(tollgate.proxyPort, tls, { url: 'http://crm.internal/v1/customers' });

  t.test('allows the shop agent: input.agent carries its SPIFFE ID', async (t) => {
    const reply = await get(tlsAs(agent));
    t.equal(reply.status, 200, reply.body);
    t.same(JSON.parse(String(upstream.received.at(-1)!.headers['x-agent'])), {
      id: 'support-bot',
      role: 'support',
      labels: { trust_domain: 'example.org', namespace: 'shop', serviceaccount: 'support-bot' },
      spiffe_id: AGENT_ID,
    });
  });

  t.test('denies a workload of another namespace by its SPIFFE ID', async (t) => {
    const reply = await get(tlsAs(billing));
    t.equal(reply.status, 403);
    t.equal(JSON.parse(reply.body).spiffe_id, 'spiffe://example.org/ns/billing/sa/invoice-bot');
  });

  t.test('refuses a certificate with the same SPIFFE ID from outside the SPIRE trust bundle', async (t) => {
    const dir = await tempDir('tollgate-forged-');
    const forged = await mintLeaf(dir, 'forged', await mintCa(dir, 'rogue-ca'), `URI:${AGENT_ID}`);
    const before = upstream.received.length;
    const reply = await get(tlsAs(forged));
    t.equal(reply.status, 401);
    t.equal(JSON.parse(reply.body).error.code, 'TG_ERR_IDENTITY');
    t.match(JSON.parse(reply.body).error.message, /untrusted SVID/);
    t.equal(upstream.received.length, before);
  });
});
