import t from 'tap';
import { denyReply, failureReply, errorReply, JSONRPC_DENIED } from '../../src/enforce/reply.ts';
import { applyQueryChanges } from '../../src/enforce/mutate.ts';
import { failureMode } from '../../src/enforce/failure-mode.ts';
import { decisionFromResult } from '../../src/pdp/result.ts';
import { TollgateError } from '../../src/errors.ts';
import { parseConfig } from '../../src/config/load.ts';

const meta = { decisionId: 'd-1', revision: 'rev-9', evalNanos: 1 };

t.test('a deny is JSON with the decision id, reasons and revision', async (t) => {
  const reply = denyReply(decisionFromResult({ allowed: false, reasons: ['too big'] }, meta), 403, undefined);
  t.equal(reply.status, 403);
  t.same(JSON.parse(reply.body), { allowed: false, decision_id: 'd-1', reasons: ['too big'], revision: 'rev-9' });
  t.ok(reply.headers.some(([n, v]) => n === 'x-tollgate-decision-id' && v === 'd-1'));
  t.ok(reply.headers.some(([n, v]) => n === 'content-type' && v === 'application/json'));
});

t.test('a deny uses the policy status, body and headers when it sets them', async (t) => {
  const reply = denyReply(
    decisionFromResult(
      { allowed: false, http_status: 401, body: 'login first', headers: { 'www-authenticate': 'Bearer' } },
      meta,
    ),
    403,
    undefined,
  );
  t.equal(reply.status, 401);
  t.equal(reply.body, 'login first');
  t.ok(reply.headers.some(([n]) => n === 'www-authenticate'));
});

t.test('a denied MCP request is answered with a JSON-RPC error, not an HTTP failure', async (t) => {
  const reply = denyReply(
    decisionFromResult({ allowed: false, reasons: ['tool delete_customer is denied'] }, meta),
    403,
    { id: 7, method: 'tools/call', tool: { name: 'delete_customer', arguments: {} } },
  );
  t.equal(reply.status, 200);
  const body = JSON.parse(reply.body);
  t.equal(body.jsonrpc, '2.0');
  t.equal(body.id, 7);
  t.equal(body.error.code, JSONRPC_DENIED);
  t.match(body.error.message, /delete_customer/);
  t.same(body.error.data.reasons, ['tool delete_customer is denied']);
});

t.test('a denied batch answers every request in it; a notification gets a plain deny', async (t) => {
  const d = decisionFromResult({ allowed: false }, meta);
  const batch = denyReply(d, 403, {
    method: 'batch',
    batch: [{ id: 1, method: 'tools/call' }, { method: 'notifications/x' }, { id: 2, method: 'tools/list' }],
  });
  t.same(
    JSON.parse(batch.body).map((e: { id: number }) => e.id),
    [1, 2],
  );
  const note = denyReply(d, 403, { method: 'notifications/x' });
  t.equal(note.status, 403);
});

t.test('failure and error replies carry the error code', async (t) => {
  const f = failureReply(new TollgateError('TG_ERR_POLICY_EVAL', 'boom'), 'd-2', 403);
  t.equal(f.status, 403);
  t.equal(JSON.parse(f.body).error.code, 'TG_ERR_POLICY_EVAL');
  const e = errorReply(new TollgateError('TG_ERR_UPSTREAM_TIMEOUT', 'slow'));
  t.equal(e.status, 504);
  t.notOk(e.headers.some(([n]) => n === 'x-tollgate-decision-id'));
});

t.test('applies query parameter changes', async (t) => {
  t.equal(
    applyQueryChanges(
      '/a?x=1&secret=s&y=2',
      [
        ['x', '9'],
        ['z', '1'],
        ['z', '2'],
      ],
      ['secret'],
    ),
    '/a?x=9&y=2&z=1&z=2',
  );
  t.equal(applyQueryChanges('/a?secret=1', [], ['secret']), '/a');
  t.equal(applyQueryChanges('/a', [], []), '/a');
});

t.test('fails closed unless failure mode allow is configured globally or for the host', async (t) => {
  t.equal(failureMode(parseConfig({}).pdp, 'a.test'), 'deny');
  t.equal(failureMode(parseConfig({ pdp: { failureModeAllow: true } }).pdp, 'a.test'), 'allow');
  const perHost = parseConfig({ pdp: { failureModeAllowHosts: ['status.internal'] } }).pdp;
  t.equal(failureMode(perHost, 'status.internal'), 'allow');
  t.equal(failureMode(perHost, 'payments.internal'), 'deny');
});
