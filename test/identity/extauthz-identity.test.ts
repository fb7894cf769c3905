/**
 * Who is calling, on Tollgate's ext_authz server: Envoy's attributes.source.principal
 * (when trusted), an x-forwarded-client-cert header Envoy set, or a JWT in a header
 * become input.agent, and the policy decides on them; untrusted or unverifiable
 * identities are refused with UNAUTHENTICATED / 401 and never reach the policy.
 */
import t from 'tap';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Message } from '../../src/proto/ext-authz.ts';
import { ROOT } from '../helpers/processes.ts';
import { startIssuerServer } from '../helpers/issuer.ts';
import { buildWasmBundle, checkClient, startTollgateExtAuthz, type CheckOutcome } from '../extauthz/peers.ts';

const ECHO = 'identity/echo/decision';

function check(headers: Record<string, string> = {}, principal?: string): Message {
  return {
    attributes: {
      ...(principal === undefined ? {} : { source: { principal } }),
      request: {
        http: {
          method: 'GET',
          host: 'crm.internal',
          path: '/v1/customers',
          headers: { ':authority': 'crm.internal', ...headers },
        },
      },
    },
  };
}

function response(outcome: CheckOutcome): Message {
  if ('error' in outcome) throw new Error(`gRPC error ${outcome.error.code}: ${outcome.error.details}`);
  return outcome.response;
}

/** input.agent as the echo policy returned it (x-agent on an OK response, the body of a denial). */
function agentOf(outcome: CheckOutcome): Record<string, unknown> {
  const r = response(outcome);
  const ok = r.okResponse as Message | undefined;
  if (ok !== undefined) {
    const header = (ok.headers as Message[]).find((h) => (h.header as Message).key === 'x-agent')!;
    return JSON.parse(String((header.header as Message).value)) as Record<string, unknown>;
  }
  return JSON.parse(String((r.deniedResponse as Message).body)) as Record<string, unknown>;
}

const code = (outcome: CheckOutcome) => ((response(outcome).status as Message | undefined)?.code as number) ?? 0;

t.test("Envoy's principal, XFCC and header JWTs become input.agent on the ext_authz server", async (t) => {
  const bundle = await buildWasmBundle(ECHO, [join(ROOT, 'test/fixtures/identity/echo.rego')]);
  const issuers = await startIssuerServer(t);
  const idp = issuers.issuer('/idp');
  const key = await idp.addKey('PS256', 'k1');

  const { extAuthzPort } = await startTollgateExtAuthz(t, {
    agent: {
      id: 'configured',
      identity: {
        spiffe: {
          trustDomains: ['example.org'],
          idFrom: 'last-segment',
          agents: { 'spiffe://example.org/ns/shop/sa/support-bot': { role: 'support', labels: { tier: 'gold' } } },
        },
        extAuthz: { principal: true },
        jwt: { issuers: [{ issuer: idp.url, audience: ['tollgate'] }] },
      },
    },
    pdp: { bundle, decisionPath: ECHO },
  });
  const client = checkClient(extAuthzPort);
  t.teardown(() => client.close());

  t.test('a SPIFFE principal becomes spiffe_id, a mapped id/role and namespace labels', async (t) => {
    const outcome = await client.check(check({}, 'spiffe://example.org/ns/shop/sa/support-bot'));
    t.equal(code(outcome), grpc.status.OK);
    t.same(agentOf(outcome), {
      id: 'support-bot',
      role: 'support',
      labels: { trust_domain: 'example.org', namespace: 'shop', serviceaccount: 'support-bot', tier: 'gold' },
      spiffe_id: 'spiffe://example.org/ns/shop/sa/support-bot',
    });
  });

  t.test('a principal that is not a SPIFFE ID becomes the agent id', async (t) => {
    const outcome = await client.check(check({}, 'CN=legacy-agent,O=Shop'));
    t.equal(code(outcome), grpc.status.OK);
    t.same(agentOf(outcome), { id: 'CN=legacy-agent,O=Shop', role: '', labels: {} });
  });

  t.test('a SPIFFE ID of an untrusted trust domain is UNAUTHENTICATED with a 401 naming it', async (t) => {
    const r = response(await client.check(check({}, 'spiffe://evil.example/agent/support-bot')));
    t.equal((r.status as Message).code, grpc.status.UNAUTHENTICATED);
    t.equal(((r.deniedResponse as Message).status as Message).code, 401);
    t.match((r.status as Message).message, /trust domain evil\.example.*untrusted SVID/);
  });

  t.test('a JWT in the header wins over the principal and is removed before the upstream', async (t) => {
    const token = await idp.sign(key, { sub: 'jwt-bot', aud: 'tollgate', role: 'refunds' });
    const outcome = await client.check(
      check({ 'x-tollgate-agent-token': `Bearer ${token}` }, 'spiffe://example.org/a'),
    );
    t.equal(code(outcome), grpc.status.OK);
    t.same(agentOf(outcome), { id: 'jwt-bot', role: 'refunds', labels: {}, issuer: idp.url });
    t.ok(((response(outcome).okResponse as Message).headersToRemove as string[]).includes('x-tollgate-agent-token'));
  });

  t.test('an expired JWT is UNAUTHENTICATED even when the principal is good', async (t) => {
    const token = await idp.sign(key, { sub: 'jwt-bot', aud: 'tollgate', exp: Math.floor(Date.now() / 1000) - 300 });
    const r = response(await client.check(check({ 'x-tollgate-agent-token': token }, 'spiffe://example.org/a')));
    t.equal((r.status as Message).code, grpc.status.UNAUTHENTICATED);
    t.match((r.status as Message).message, /has expired/);
  });

  t.test('without any identity the configured agent is decided on', async (t) => {
    const outcome = await client.check(check());
    t.equal(code(outcome), grpc.status.PERMISSION_DENIED);
    t.equal(agentOf(outcome).id, 'configured');
  });
});

t.test('x-forwarded-client-cert is read only when configured, and a principal only when trusted', async (t) => {
  const bundle = await buildWasmBundle(ECHO, [join(ROOT, 'test/fixtures/identity/echo.rego')]);
  const { extAuthzPort } = await startTollgateExtAuthz(t, {
    agent: {
      id: 'configured',
      identity: { extAuthz: { xfccHeader: 'x-forwarded-client-cert' }, spiffe: { idFrom: 'path' } },
    },
    pdp: { bundle, decisionPath: ECHO },
  });
  const client = checkClient(extAuthzPort);
  t.teardown(() => client.close());
  const xfcc =
    'By=spiffe://example.org/proxy;URI=spiffe://example.org/upstream-hop,' +
    'By=spiffe://example.org/tollgate;Hash=5b1c;Subject="CN=agent,O=Shop; Inc";URI=spiffe://example.org/agent/xfcc-bot';

  t.test('the last XFCC element names the agent', async (t) => {
    const outcome = await client.check(check({ 'x-forwarded-client-cert': xfcc }));
    t.equal(code(outcome), grpc.status.OK);
    t.same(agentOf(outcome), {
      id: '/agent/xfcc-bot',
      role: '',
      labels: { trust_domain: 'example.org' },
      spiffe_id: 'spiffe://example.org/agent/xfcc-bot',
    });
  });

  t.test('an XFCC without a URI is refused', async (t) => {
    const r = response(await client.check(check({ 'x-forwarded-client-cert': 'Hash=5b1c;Subject="CN=x"' })));
    t.equal((r.status as Message).code, grpc.status.UNAUTHENTICATED);
    t.match((r.status as Message).message, /no URI/);
  });

  t.test('an untrusted principal is ignored: the configured agent is decided on', async (t) => {
    const outcome = await client.check(check({}, 'spiffe://example.org/agent/support-bot'));
    t.equal(code(outcome), grpc.status.PERMISSION_DENIED);
    t.equal(agentOf(outcome).id, 'configured');
  });
});
