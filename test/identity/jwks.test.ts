/**
 * JWTs from real issuers: a local OIDC issuer (discovery + JWKS on 127.0.0.1) signs
 * tokens with RS256, PS256, ES256 and EdDSA keys from jose's generateKeyPair; a real
 * sidecar verifies them, maps claims to input.agent, follows a key rotation (a new
 * key is accepted once published, a retired key refused once removed) and refuses
 * every failed check with 401 TG_ERR_IDENTITY naming why, before the policy.
 */
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ROOT, buildBundle, startTollgate, startUpstream, viaProxy, type Reply } from '../helpers/processes.ts';
import { startIssuerServer } from '../helpers/issuer.ts';
import { pollPause } from '../helpers/poll.ts';

const HEADER = 'x-tollgate-agent-token';

/** Polls a request until `done` holds for its reply, with a deadline. */
async function until(send: () => Promise<Reply>, done: (r: Reply) => boolean, what: string): Promise<Reply> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const reply = await send();
    if (done(reply)) return reply;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: last ${reply.status} ${reply.body}`);
    await pollPause();
  }
}

t.test('verifies JWTs against real issuers and refuses failed checks with 401', async (t) => {
  const server = await startIssuerServer(t);
  const oidc = server.issuer('/oidc');
  const rotating = server.issuer('/rotating');
  const cluster = server.issuer('/k8s');
  const keys = {
    RS256: await oidc.addKey('RS256', 'rs-1'),
    PS256: await oidc.addKey('PS256', 'ps-1'),
    ES256: await oidc.addKey('ES256', 'es-1'),
    EdDSA: await oidc.addKey('EdDSA', 'ed-1'),
  };
  const old = await rotating.addKey('ES256', '2026-11');
  const clusterKey = await cluster.addKey('RS256', 'sa-key');
  const upstream = await startUpstream(t);
  const bundle = await buildBundle(
    { 'echo.rego': await readFile(join(ROOT, 'test/fixtures/identity/echo.rego'), 'utf8') },
    ['identity/echo/decision'],
  );
  const tollgate = await startTollgate(t, {
    agent: {
      id: 'configured',
      identity: {
        jwt: {
          issuers: [
            // OIDC discovery finds the JWKS; claims mapped by configuration.
            {
              issuer: oidc.url,
              audience: ['tollgate'],
              claims: { labels: { team: '/org/team', tier: 'tier' } },
            },
            // A JWKS URL; short cache and cooldown, so the test sees rotation quickly.
            {
              issuer: rotating.url,
              jwksUrl: rotating.jwksUrl,
              audience: ['tollgate'],
              cacheMaxAgeMs: 1000,
              cooldownMs: 200,
            },
            { issuer: cluster.url, preset: 'kubernetes', audience: ['tollgate.example'], jwksUrl: cluster.jwksUrl },
            // An issuer whose discovery endpoint is down: its tokens fail closed.
            { issuer: 'http://127.0.0.1:1/down', audience: ['tollgate'] },
          ],
        },
      },
    },
    pdp: { bundle, decisionPath: 'identity/echo/decision' },
    proxy: { resolve: { 'api.test:80': `127.0.0.1:${upstream.port}` } },
  });
  const get = (token?: string) =>
    viaProxy(tollgate.proxyPort, {
      url: 'http://api.test/tickets',
      headers: token === undefined ? {} : { [HEADER]: token },
    });
  const seenAgent = () => JSON.parse(String(upstream.received.at(-1)!.headers['x-agent'])) as Record<string, unknown>;
  const refusal = (reply: Reply) => JSON.parse(reply.body) as { error: { code: string; message: string } };

  t.test('accepts RS256, PS256, ES256 and EdDSA tokens and maps their claims to input.agent', async (t) => {
    for (const [alg, key] of Object.entries(keys)) {
      const token = await oidc.sign(key, {
        sub: `bot-${alg}`,
        aud: 'tollgate',
        role: 'support',
        org: { team: 'care' },
        tier: 2,
      });
      const reply = await get(token);
      t.equal(reply.status, 200, `${alg}: ${reply.body}`);
      t.same(seenAgent(), { id: `bot-${alg}`, role: 'support', labels: { team: 'care', tier: '2' }, issuer: oidc.url });
      t.notOk(HEADER in upstream.received.at(-1)!.headers, `${alg}: the token never reaches the tool`);
    }
  });

  t.test('accepts "Bearer <token>" and an audience list that names tollgate', async (t) => {
    const token = await oidc.sign(keys.ES256, { sub: 'bearer-bot', aud: ['other', 'tollgate'] });
    const reply = await get(`Bearer ${token}`);
    t.equal(reply.status, 200, reply.body);
    t.equal(seenAgent().id, 'bearer-bot');
  });

  t.test('maps a Kubernetes service-account token to namespace and serviceaccount labels', async (t) => {
    const token = await cluster.sign(clusterKey, {
      sub: 'system:serviceaccount:shop:support-bot',
      aud: ['tollgate.example'],
      'kubernetes.io': {
        namespace: 'shop',
        serviceaccount: { name: 'support-bot', uid: 'b7c1' },
        pod: { name: 'support-bot-7d9f', uid: 'a1e2' },
      },
    });
    const reply = await get(token);
    t.equal(reply.status, 200, reply.body);
    t.same(seenAgent(), {
      id: 'system:serviceaccount:shop:support-bot',
      role: '',
      labels: { namespace: 'shop', serviceaccount: 'support-bot', pod: 'support-bot-7d9f' },
      issuer: cluster.url,
    });
  });

  t.test('refuses a service-account token bound to another audience', async (t) => {
    const token = await cluster.sign(clusterKey, {
      sub: 'system:serviceaccount:shop:x',
      aud: ['https://kubernetes.default.svc'],
    });
    const reply = await get(token);
    t.equal(reply.status, 401);
    t.match(refusal(reply).error.message, /wrong audience/);
  });

  t.test('refuses expired, not-yet-valid, wrong-audience, untrusted-issuer and forged tokens with 401', async (t) => {
    const before = upstream.received.length;
    const now = Math.floor(Date.now() / 1000);
    const stranger = await server.issuer('/stranger').addKey('RS256', 'rs-1');
    const unpublished = await oidc.addKey('RS256', 'never-published', false);
    const forged = await oidc.addKey('RS256', 'rs-1', false);
    const cases: Array<[string, string, RegExp]> = [
      ['expired', await oidc.sign(keys.RS256, { sub: 'a', aud: 'tollgate', exp: now - 120 }), /has expired/],
      ['not yet valid', await oidc.sign(keys.RS256, { sub: 'a', aud: 'tollgate', nbf: now + 600 }), /not valid yet/],
      ['wrong audience', await oidc.sign(keys.RS256, { sub: 'a', aud: 'someone-else' }), /wrong audience/],
      [
        'untrusted issuer',
        await oidc.sign(stranger, { sub: 'a', aud: 'tollgate', iss: `${server.origin}/stranger` }),
        /issuer .* is not trusted/,
      ],
      ['unknown key', await oidc.sign(unpublished, { sub: 'a', aud: 'tollgate' }), /unknown key/],
      ['forged signature', await oidc.sign(forged, { sub: 'a', aud: 'tollgate' }), /signature does not verify/],
      ['no exp', await oidc.sign(keys.RS256, { sub: 'a', aud: 'tollgate', exp: undefined }), /exp/],
      ['no sub', await oidc.sign(keys.RS256, { aud: 'tollgate' }), /no sub claim/],
      ['not a JWT', 'not-a-jwt', /not a JWT/],
    ];
    for (const [name, token, why] of cases) {
      const reply = await get(token);
      t.equal(reply.status, 401, `${name}: ${reply.body}`);
      t.equal(refusal(reply).error.code, 'TG_ERR_IDENTITY', name);
      t.match(refusal(reply).error.message, why, name);
    }
    t.equal(upstream.received.length, before, 'no refused request reached the tool');
    // The sidecar keeps serving everyone else.
    const ok = await get(await oidc.sign(keys.RS256, { sub: 'still-served', aud: 'tollgate' }));
    t.equal(ok.status, 200);
  });

  t.test('refuses tokens of an issuer whose discovery is unreachable, and keeps serving others', async (t) => {
    const down = server.issuer('/unused');
    const key = await down.addKey('RS256', 'k');
    const token = await down.sign(key, { sub: 'a', aud: 'tollgate', iss: 'http://127.0.0.1:1/down' });
    const reply = await get(token);
    t.equal(reply.status, 401);
    t.match(
      refusal(reply).error.message,
      /OIDC discovery http:\/\/127\.0\.0\.1:1\/down\/\.well-known\/openid-configuration failed/,
    );
    t.equal((await get(await oidc.sign(keys.RS256, { sub: 'b', aud: 'tollgate' }))).status, 200);
  });

  t.test('tolerates clock skew within the configured seconds', async (t) => {
    const now = Math.floor(Date.now() / 1000);
    const reply = await get(
      await oidc.sign(keys.ES256, { sub: 'skewed', aud: 'tollgate', exp: now - 5, nbf: now + 5 }),
    );
    t.equal(reply.status, 200, reply.body);
  });

  t.test(
    'follows a key rotation: the new key is accepted once published, the retired one refused once removed',
    async (t) => {
      const claims = { sub: 'rotating-bot', aud: 'tollgate' };
      t.equal((await get(await rotating.sign(old, claims))).status, 200);
      const next = await rotating.addKey('ES256', '2026-12', false);
      const nextToken = await rotating.sign(next, claims);
      const early = await get(nextToken);
      t.equal(early.status, 401, 'a key the issuer has not published yet is unknown');
      t.match(refusal(early).error.message, /unknown key/);
      rotating.keys.push(next);
      // Refetched on the unknown kid once the cooldown has passed.
      await until(
        () => get(nextToken),
        (r) => r.status === 200,
        'the new key to be accepted',
      );
      const fetches = rotating.fetches;
      t.equal((await get(nextToken)).status, 200, 'the new key stays cached');
      t.equal(rotating.fetches, fetches, 'a known key is not refetched');
      rotating.removeKey(old.kid);
      const oldToken = await rotating.sign(old, claims);
      const retired = await until(
        () => get(oldToken),
        (r) => r.status === 401,
        'the retired key to be refused',
      );
      t.match(refusal(retired).error.message, /unknown key/);
      t.equal((await get(nextToken)).status, 200, 'the new key still verifies');
    },
  );

  t.test('decides a request without a token as the configured agent', async (t) => {
    const reply = await get();
    t.equal(reply.status, 403);
    t.equal(JSON.parse(reply.body).id, 'configured');
  });
});
