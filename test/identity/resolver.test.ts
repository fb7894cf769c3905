/**
 * The identity resolver and its pure parts: claim paths, SPIFFE ID grammar and
 * mapping, x-forwarded-client-cert parsing, the order of sources and `required`.
 */
import t from 'tap';
import { configSchema } from '../../src/config/schema.ts';
import { claimAt, agentFromClaims, claimMapping } from '../../src/identity/claims.ts';
import { agentFromSpiffeId, parseSpiffeId, spiffeIdOfXfcc } from '../../src/identity/spiffe.ts';
import { createIdentityResolver } from '../../src/identity/resolver.ts';
import { signAgentToken } from '../../src/identity/hs256.ts';
import { trustBundlePem } from '../../src/identity/mtls.ts';
import type { TollgateError } from '../../src/errors.ts';

const SECRET = 'a-test-secret-of-32-characters!!';

function agentConfig(agent: Record<string, unknown>) {
  return configSchema.parse({ agent }).agent;
}

t.test('reads claims by name or by JSON Pointer', async (t) => {
  const claims = {
    sub: 'a',
    'https://example.com/role': 'support',
    'kubernetes.io': { namespace: 'shop' },
    'a/b': { '~': 1 },
  };
  t.equal(claimAt(claims, 'https://example.com/role'), 'support');
  t.equal(claimAt(claims, '/kubernetes.io/namespace'), 'shop');
  t.equal(claimAt(claims, '/a~1b/~0'), 1);
  t.equal(claimAt(claims, '/kubernetes.io/namespace/deeper'), undefined);
  t.equal(claimAt(claims, '/missing'), undefined);
});

t.test('maps claims to input.agent and refuses a token without the id claim', async (t) => {
  const mapping = claimMapping({
    preset: 'oidc',
    claims: { id: 'email', labels: { groups: 'groups', admin: 'admin' } },
  });
  t.same(
    agentFromClaims({ email: 'bot@example.com', role: 'support', groups: ['a', 'b'], admin: false }, mapping, 'iss'),
    {
      id: 'bot@example.com',
      role: 'support',
      labels: { groups: 'a,b', admin: 'false' },
      issuer: 'iss',
    },
  );
  t.throws(() => agentFromClaims({ sub: 'x' }, mapping, 'iss'), { code: 'TG_ERR_IDENTITY' });
});

t.test('accepts only well-formed SPIFFE IDs', async (t) => {
  t.same(parseSpiffeId('spiffe://example.org/ns/a/sa/b'), {
    id: 'spiffe://example.org/ns/a/sa/b',
    trustDomain: 'example.org',
    path: '/ns/a/sa/b',
  });
  for (const bad of [
    'http://example.org/a',
    'spiffe://Example.org/a',
    'spiffe://example.org/a//b',
    'spiffe://example.org/a/../b',
    'spiffe://example.org/a/',
  ])
    t.throws(() => parseSpiffeId(bad), { code: 'TG_ERR_IDENTITY' }, bad);
});

t.test('maps a SPIFFE ID by idFrom, explicit entries and trust domains', async (t) => {
  const spiffe = agentConfig({ identity: { spiffe: { trustDomains: ['example.org'], idFrom: 'path' } } }).identity
    .spiffe;
  t.equal(agentFromSpiffeId('spiffe://example.org/agent/x', spiffe).id, '/agent/x');
  t.equal(agentFromSpiffeId('spiffe://example.org', spiffe).id, 'spiffe://example.org', 'no path: the whole ID');
  t.throws(() => agentFromSpiffeId('spiffe://other.org/agent/x', spiffe), /untrusted SVID/);
});

t.test('reads the last x-forwarded-client-cert element, quotes included', async (t) => {
  t.equal(spiffeIdOfXfcc('URI=spiffe://a/first,By=x;Subject="CN=a,b;c";URI=spiffe://a/last'), 'spiffe://a/last');
  t.throws(() => spiffeIdOfXfcc('URI=spiffe://a/first,Hash=abc'), /no URI/);
});

t.test('reads a SPIFFE bundle (JWKS) or PEM as the trust bundle', async (t) => {
  t.throws(() => trustBundlePem('{"keys":[]}', 'b.json'), { code: 'TG_ERR_CONFIG_INVALID' });
  t.throws(() => trustBundlePem('not a bundle', 'b.pem'), { code: 'TG_ERR_CONFIG_INVALID' });
  t.throws(() => trustBundlePem('{not json', 'b.json'), { code: 'TG_ERR_CONFIG_INVALID' });
});

t.test('resolves a token first, then the SVID, then the configured agent; required refuses nothing', async (t) => {
  const resolver = createIdentityResolver(agentConfig({ token: { secret: SECRET } }));
  const token = signAgentToken({ sub: 'token-bot' }, SECRET);
  const both = await resolver.resolve({
    door: 'http',
    headers: { 'x-tollgate-agent-token': token },
    peerSpiffeId: 'spiffe://e.org/svid-bot',
  });
  t.equal(both.kind === 'verified' && both.agent.id, 'token-bot');
  t.equal(both.tokenHeader, 'x-tollgate-agent-token');
  const svid = await resolver.resolve({ door: 'http', headers: {}, peerSpiffeId: 'spiffe://e.org/svid-bot' });
  t.equal(svid.kind === 'verified' && svid.agent.spiffe_id, 'spiffe://e.org/svid-bot');
  t.equal((await resolver.resolve({ door: 'http', headers: {} })).kind, 'configured');
  // A principal on the ext_authz door is not trusted unless configured.
  t.equal(
    (await resolver.resolve({ door: 'extauthz', headers: {}, principal: 'spiffe://e.org/x' })).kind,
    'configured',
  );

  const strict = createIdentityResolver(agentConfig({ identity: { required: true } }));
  const refused = await strict.resolve({ door: 'http', headers: {} });
  t.equal(refused.kind, 'refused');
  t.match((refused as { error: TollgateError }).error.message, /no verified agent identity/);
});

t.test(
  'an HS256 token on a header shared with JWT issuers is verified with the secret, others by the issuer',
  async (t) => {
    const resolver = createIdentityResolver(
      agentConfig({
        token: { secret: SECRET },
        identity: { jwt: { issuers: [{ issuer: 'https://idp.invalid', audience: ['t'] }] } },
      }),
    );
    t.same(resolver.tokenHeaders, ['x-tollgate-agent-token']);
    const hs = await resolver.resolve({
      door: 'http',
      headers: { 'x-tollgate-agent-token': signAgentToken({ sub: 'local' }, SECRET) },
    });
    t.equal(hs.kind === 'verified' && hs.agent.id, 'local');
    const rs = `${Buffer.from('{"alg":"RS256"}').toString('base64url')}.${Buffer.from('{"iss":"https://other.invalid"}').toString('base64url')}.x`;
    const other = await resolver.resolve({ door: 'http', headers: { 'x-tollgate-agent-token': rs } });
    t.match((other as { error: TollgateError }).error.message, /issuer "https:\/\/other.invalid" is not trusted/);
  },
);
