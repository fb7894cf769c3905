/**
 * The agent Tollgate resolved reaches a remote PDP: with pdp.type extauthz the
 * CheckRequest carries attributes.source.principal (tollgate://agent/<id>) and
 * attributes.metadata_context.filter_metadata["tollgate"] = {agent: {id, role, labels}},
 * and the real opa-envoy-plugin decides on them — a token-verified role is allowed or
 * denied accordingly, the configured agent is used without a token. A JWT verified
 * against an issuer's JWKS carries its issuer along; an agent's X.509 SVID (mTLS)
 * reaches the remote as the principal itself, as Envoy sends an mTLS peer's.
 */
import t from 'tap';
import { join } from 'node:path';
import { ROOT, startTollgate, startUpstream, tempDir, viaProxy } from '../helpers/processes.ts';
import { signAgentToken } from '../../src/identity/hs256.ts';
import { startOpaEnvoy } from './peers.ts';
import { startIssuerServer } from '../helpers/issuer.ts';
import { mintCa, mintLeaf, viaTlsProxy } from '../helpers/spiffe-certs.ts';

const SECRET = 'a-test-secret-of-32-characters!!';

t.test('a remote PDP decides on the agent identity Tollgate verified', async (t) => {
  const upstream = await startUpstream(t);
  const opa = await startOpaEnvoy(t, {
    path: 'identity/authz/decision',
    paths: [join(ROOT, 'test/fixtures/extauthz-identity/identity.rego')],
  });
  const tollgate = await startTollgate(t, {
    agent: { id: 'cs-bot', role: 'customer-service', labels: { team: 'care' }, token: { secret: SECRET } },
    pdp: { type: 'extauthz', target: `127.0.0.1:${opa.grpcPort}`, timeoutMs: 2000 },
    proxy: { resolve: { 'api.test:80': `127.0.0.1:${upstream.port}` } },
  });
  const get = (token?: string) =>
    viaProxy(tollgate.proxyPort, {
      url: 'http://api.test/tickets',
      headers: token === undefined ? {} : { 'x-tollgate-agent-token': token },
    });

  t.test('allows a token-verified support agent; the remote saw its principal, role and labels', async (t) => {
    const reply = await get(
      signAgentToken({ sub: 'support-bot', role: 'support', labels: { team: 'refunds' } }, SECRET),
    );
    t.equal(reply.status, 200, reply.body);
    const seen = upstream.received.at(-1)!;
    t.equal(seen.headers['x-remote-principal'], 'tollgate://agent/support-bot');
    t.equal(seen.headers['x-remote-role'], 'support');
    t.equal(seen.headers['x-remote-team'], 'refunds');
    t.notOk('x-tollgate-agent-token' in seen.headers, 'the token never reaches the tool');
  });

  t.test('denies a token-verified agent of another role, and the configured agent without a token', async (t) => {
    const before = upstream.received.length;
    const other = await get(signAgentToken({ sub: 'loan-bot', role: 'loan-approval' }, SECRET));
    t.equal(other.status, 403);
    t.same(JSON.parse(other.body), {
      principal: 'tollgate://agent/loan-bot',
      metadata: { filterMetadata: { tollgate: { agent: { id: 'loan-bot', role: 'loan-approval', labels: {} } } } },
    });
    const configured = await get();
    t.equal(configured.status, 403);
    t.same(JSON.parse(configured.body).metadata.filterMetadata.tollgate.agent, {
      id: 'cs-bot',
      role: 'customer-service',
      labels: { team: 'care' },
    });
    t.equal(upstream.received.length, before, 'nothing reached the tool');
  });

  t.test('refuses a forged token with 401 before asking the remote PDP', async (t) => {
    const before = upstream.received.length;
    const reply = await get(
      signAgentToken({ sub: 'support-bot', role: 'support' }, 'another-secret-that-is-long-enough'),
    );
    t.equal(reply.status, 401);
    t.equal(JSON.parse(reply.body).error.code, 'TG_ERR_IDENTITY');
    t.equal(upstream.received.length, before);
  });
});

t.test('a remote PDP sees the agent a JWKS-verified token or an mTLS SVID names', async (t) => {
  const upstream = await startUpstream(t);
  const opa = await startOpaEnvoy(t, {
    path: 'identity/authz/decision',
    paths: [join(ROOT, 'test/fixtures/extauthz-identity/identity.rego')],
  });
  const issuers = await startIssuerServer(t);
  const idp = issuers.issuer('/idp');
  const key = await idp.addKey('ES256', 'k1');
  const dir = await tempDir('tollgate-remote-svid-');
  const domain = await mintCa(dir, 'example-org-ca');
  const serving = await mintCa(dir, 'serving-ca');
  const server = await mintLeaf(dir, 'tollgate', serving, 'URI:spiffe://example.org/tollgate,IP:127.0.0.1');
  const svid = await mintLeaf(dir, 'agent', domain, 'URI:spiffe://example.org/ns/care/sa/support-bot');
  const tollgate = await startTollgate(t, {
    agent: {
      id: 'cs-bot',
      identity: {
        jwt: { issuers: [{ issuer: idp.url, audience: ['tollgate'], claims: { labels: { team: 'team' } } }] },
        mtls: { certFile: server.certFile, keyFile: server.keyFile, bundleFile: domain.certFile },
        spiffe: {
          idFrom: 'last-segment',
          agents: { 'spiffe://example.org/ns/care/sa/support-bot': { role: 'support', labels: { team: 'care' } } },
        },
      },
    },
    pdp: { type: 'extauthz', target: `127.0.0.1:${opa.grpcPort}`, timeoutMs: 2000 },
    proxy: { resolve: { 'api.test:80': `127.0.0.1:${upstream.port}` } },
  });
  const tls = { ca: serving.cert, serverId: 'spiffe://example.org/tollgate', cert: svid.cert, key: svid.key };

  t.test('a JWKS-verified token: the remote sees its id, role, labels and issuer', async (t) => {
    const token = await idp.sign(key, { sub: 'oidc-bot', aud: 'tollgate', role: 'support', team: 'refunds' });
    const reply = await viaTlsProxy(tollgate.proxyPort, tls, {
      url: 'http://api.test/tickets',
      headers: { 'x-tollgate-agent-token': token },
    });
    t.equal(reply.status, 200, reply.body);
    const seen = upstream.received.at(-1)!;
    t.equal(seen.headers['x-remote-principal'], 'tollgate://agent/oidc-bot');
    t.equal(seen.headers['x-remote-role'], 'support');
    t.equal(seen.headers['x-remote-team'], 'refunds');
    t.equal(seen.headers['x-remote-issuer'], idp.url);
  });

  t.test('an SVID: the remote sees the SPIFFE ID as source.principal and in the metadata', async (t) => {
    const reply = await viaTlsProxy(tollgate.proxyPort, tls, { url: 'http://api.test/tickets' });
    t.equal(reply.status, 200, reply.body);
    const seen = upstream.received.at(-1)!;
    t.equal(seen.headers['x-remote-principal'], 'spiffe://example.org/ns/care/sa/support-bot');
    t.equal(seen.headers['x-remote-spiffe-id'], 'spiffe://example.org/ns/care/sa/support-bot');
    t.equal(seen.headers['x-remote-role'], 'support');
    t.equal(seen.headers['x-remote-team'], 'care');
  });

  t.test('a token of another role is denied by the remote, with what it saw', async (t) => {
    const token = await idp.sign(key, { sub: 'loan-bot', aud: 'tollgate', role: 'loan-approval' });
    const reply = await viaTlsProxy(tollgate.proxyPort, tls, {
      url: 'http://api.test/tickets',
      headers: { 'x-tollgate-agent-token': token },
    });
    t.equal(reply.status, 403);
    t.same(JSON.parse(reply.body).metadata.filterMetadata.tollgate.agent, {
      id: 'loan-bot',
      role: 'loan-approval',
      labels: {},
      issuer: idp.url,
    });
  });
});
