// The one decision step, door by door, with a real WASM PDP: the same agent
// resolution (configured, verified token, one error for a bad token), the token
// never reaching the policy, the failure mode applied on the proxy and tunnel doors
// and never on the ext_authz door (Envoy decides there), and input.connect attached.
import t from 'tap';
import pino from 'pino';
import { buildBundle } from '../helpers/processes.ts';
import { createWasmPdp } from '../../src/pdp/wasm.ts';
import { loadBundle } from '../../src/bundle/load.ts';
import { normalizeRequest } from '../../src/http/normalize.ts';
import { signAgentToken } from '../../src/identity/hs256.ts';
import { createDecisionStep, verdictReply, type DecisionRequest, type Door } from '../../src/enforce/decide.ts';
import { tunnelCheckRequest } from '../../src/pep/tunnel.ts';

const SECRET = 'a-test-secret-of-32-characters!!';
const POLICY = `package tollgate.authz
decision := {"allowed": true, "reasons": [], "headers": {"x-seen": json.marshal({"headers": input.attributes.request.http.headers, "connect": object.get(input, "connect", null)})}} if input.agent.role == "support"
decision := {"allowed": false, "reasons": ["guests may not"]} if input.agent.role == "guest"
`;

t.test('the decision step', async (t) => {
  const pdp = await createWasmPdp({
    bundle: await loadBundle(await buildBundle({ 'p.rego': POLICY }, ['tollgate/authz/decision'])),
    decisionPath: 'tollgate/authz/decision',
    timeoutMs: 1000,
  });
  const logger = pino({ level: 'silent' });
  const make = (failureModeAllowHosts: string[] = []) =>
    createDecisionStep({
      pdp,
      logger,
      agent: { id: 'cs-bot', role: 'guest', labels: {} },
      agentToken: { header: 'X-Agent-Token', secret: SECRET },
      failure: { failureModeAllow: false, failureModeAllowHosts },
    });
  const httpRequest = (headers: Record<string, string>): DecisionRequest => ({
    request: normalizeRequest({
      id: '1',
      method: 'GET',
      target: 'http://api.test/x',
      httpVersion: '1.1',
      scheme: 'http',
      rawHeaders: Object.entries({ host: 'api.test', ...headers }).flat(),
      source: { address: '127.0.0.1', port: 1 },
      destination: { address: '127.0.0.1', port: 2 },
    }),
    body: { bytes: Buffer.alloc(0), truncated: false },
  });
  const checkRequest = (headers: Record<string, string>, host = 'api.test'): DecisionRequest => ({
    checkRequest: tunnelCheckRequest({
      id: '1',
      authority: `${host}:443`,
      headers,
      source: { address: '127.0.0.1', port: 1 },
      destination: { address: '127.0.0.1', port: 2 },
    }),
    connect: { phase: 'connect', host },
    host,
  });
  const support = signAgentToken({ sub: 'support-bot', role: 'support' }, SECRET);
  const broken = signAgentToken({ sub: 'x', role: 'nobody' }, SECRET);
  const forged = signAgentToken({ sub: 'support-bot', role: 'support' }, 'another-secret-that-is-long-enough');

  t.test('a verified token overrides the agent on every door, and the policy never sees it', async (t) => {
    const doors: Array<[Door, DecisionRequest]> = [
      ['http', httpRequest({ 'x-agent-token': support })],
      ['upgrade', httpRequest({ 'x-agent-token': support })],
      ['tunnel', checkRequest({ 'x-agent-token': support })],
      ['extauthz', checkRequest({ 'x-agent-token': support })],
    ];
    for (const [door, request] of doors) {
      const verdict = await make().decide(request, door);
      t.equal(verdict.kind, 'allow', door);
      if (verdict.kind !== 'allow') continue;
      t.equal(verdict.input.agent.id, 'support-bot');
      t.equal(verdict.tokenRemoved, true);
      t.notOk(
        'x-agent-token' in JSON.parse(verdict.decision!.headers[0]![1]).headers,
        `${door}: the token is not in the input`,
      );
    }
  });

  t.test('a bad token gets the same refusal on every door', async (t) => {
    const seen = new Set<string>();
    for (const door of ['http', 'upgrade', 'tunnel', 'extauthz'] as const) {
      const request =
        door === 'http' || door === 'upgrade'
          ? httpRequest({ 'x-agent-token': forged })
          : checkRequest({ 'x-agent-token': forged });
      const verdict = await make().decide(request, door);
      t.equal(verdict.kind, 'refuse', door);
      if (verdict.kind !== 'refuse') continue;
      t.equal(verdict.stage, 'identity');
      t.equal(verdict.error.code, 'TG_ERR_IDENTITY');
      seen.add(verdict.error.message);
      t.equal(verdictReply(verdict, 403).status, 401);
    }
    t.equal(seen.size, 1, 'one message for every door');
  });

  t.test('the configured agent decides without a token; a deny is a verdict with its reply', async (t) => {
    const verdict = await make().decide(httpRequest({}), 'http');
    t.equal(verdict.kind, 'deny');
    if (verdict.kind === 'deny') {
      const reply = verdictReply(verdict, 403);
      t.equal(reply.status, 403);
      t.same(JSON.parse(reply.body).reasons, ['guests may not']);
    }
  });

  t.test('no decision: the failure mode applies on proxy and tunnel doors, never on the ext_authz door', async (t) => {
    const token = { 'x-agent-token': broken };
    t.equal((await make().decide(httpRequest(token), 'http')).kind, 'fail', 'fails closed by default');
    t.equal(
      (await make(['api.test']).decide(httpRequest(token), 'http')).kind,
      'allow',
      'fails open for a listed host',
    );
    t.equal((await make(['api.test']).decide(checkRequest(token), 'tunnel')).kind, 'allow', 'tunnel door too');
    const ext = await make(['api.test']).decide(checkRequest(token), 'extauthz');
    t.equal(ext.kind, 'fail', "ext_authz: Envoy's failure_mode_allow decides");
    if (ext.kind === 'fail') t.equal(verdictReply(ext, 403).status, 403);
  });

  // The WASM PDP answers without a Promise (decideNow); a PDP that only has decide() must
  // get the same verdicts, failures included.
  t.test('a synchronous and an asynchronous PDP give the same verdicts', async (t) => {
    t.type(pdp.decideNow, 'function', 'the WASM PDP answers synchronously');
    const promiseOnly = { decide: pdp.decide, info: pdp.info, close: pdp.close };
    const step = (p: typeof promiseOnly) =>
      createDecisionStep({
        pdp: p,
        logger,
        agent: { id: 'cs-bot', role: 'guest', labels: {} },
        agentToken: { header: 'X-Agent-Token', secret: SECRET },
      });
    const cases: Array<Record<string, string>> = [{}, { 'x-agent-token': support }, { 'x-agent-token': broken }];
    for (const headers of cases) {
      const now = await step(pdp).decide(httpRequest(headers), 'http');
      const later = await step(promiseOnly).decide(httpRequest(headers), 'http');
      t.equal(now.kind, later.kind);
      if (now.kind === 'allow' && later.kind === 'allow') t.same(now.decision?.result, later.decision?.result);
    }
  });

  t.test('input.connect reaches the policy', async (t) => {
    const verdict = await make().decide(checkRequest({ 'x-agent-token': support }, 'payments.internal'), 'tunnel');
    t.equal(verdict.kind, 'allow');
    if (verdict.kind === 'allow')
      t.same(JSON.parse(verdict.decision!.headers[0]![1]).connect, { phase: 'connect', host: 'payments.internal' });
  });
});
