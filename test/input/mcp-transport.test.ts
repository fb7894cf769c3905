/**
 * MCP transport facts in input.mcp (protocol version, session id) and the 2026-07-28
 * HeaderMismatch refusal answered as a JSON-RPC error response (HTTP 400, -32020, the
 * request's id), built through the real input builder and reply mapping.
 */
import t from 'tap';
import { buildInput } from '../../src/input/build.ts';
import { normalizeRequest } from '../../src/http/normalize.ts';
import { errorReply } from '../../src/enforce/reply.ts';
import { wrapError, TollgateError } from '../../src/errors.ts';
import { McpHeaderMismatchError } from '../../src/input/mcp.ts';
import { requestParseErrorResponse } from '../../src/extauthz/response.ts';

function input(body: unknown, headers: string[] = []) {
  const request = normalizeRequest({
    id: 'r-1',
    method: 'POST',
    target: 'http://mcp.internal/mcp',
    rawHeaders: ['host', 'mcp.internal', 'content-type', 'application/json', ...headers],
    httpVersion: '1.1',
    scheme: 'http',
    source: { address: '127.0.0.1', port: 5000 },
    destination: { address: '127.0.0.1', port: 15001 },
  });
  const bytes = Buffer.from(JSON.stringify(body));
  return buildInput(request, { bytes, truncated: false }, { id: 'a', role: 'support', labels: {} });
}

/** The McpHeaderMismatchError fn throws (fails the test when it throws nothing else). */
function caught(fn: () => unknown): McpHeaderMismatchError {
  try {
    fn();
  } catch (err) {
    if (err instanceof McpHeaderMismatchError) return err;
    throw err;
  }
  throw new Error('no HeaderMismatch was thrown');
}

const CALL = { jsonrpc: '2.0', id: 'call-9', method: 'tools/call', params: { name: 'refund', arguments: {} } };

t.test('input.mcp carries Mcp-Session-Id and MCP-Protocol-Version', async (t) => {
  const mcp = input(CALL, ['Mcp-Session-Id', 's-1', 'MCP-Protocol-Version', '2025-06-18']).mcp;
  t.match(mcp, { method: 'tools/call', id: 'call-9', session_id: 's-1', protocol_version: '2025-06-18' });
});

t.test('protocol_version comes from initialize params, or 2026-07-28 _meta, when no header names it', async (t) => {
  const init = { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-03-26' } };
  t.equal(input(init).mcp?.protocol_version, '2025-03-26');
  const meta = {
    jsonrpc: '2.0',
    id: 1,
    method: 'tools/list',
    params: { _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' } },
  };
  t.equal(input(meta).mcp?.protocol_version, '2026-07-28');
  t.notOk('session_id' in input(meta).mcp!, 'no header, no session id (2026-07-28 has no sessions)');
});

t.test('a batch carries the transport facts at its top level', async (t) => {
  const mcp = input([CALL, { jsonrpc: '2.0', method: 'notifications/initialized' }], ['Mcp-Session-Id', 's-2']).mcp;
  t.match(mcp, { method: 'batch', session_id: 's-2' });
});

t.test('a mismatched Mcp-Method is answered with HTTP 400 and a JSON-RPC error -32020 naming the id', async (t) => {
  let error: unknown;
  try {
    input(CALL, ['Mcp-Method', 'tools/list']);
  } catch (err) {
    error = err;
  }
  t.type(error, McpHeaderMismatchError);
  t.equal((error as TollgateError).code, 'TG_ERR_AMBIGUOUS_BODY');
  const reply = errorReply(wrapError('TG_ERR_BAD_REQUEST', 'bad request', error), 'd-1');
  t.equal(reply.status, 400);
  t.same(reply.headers, [
    ['content-type', 'application/json'],
    ['x-tollgate-decision-id', 'd-1'],
  ]);
  const body = JSON.parse(reply.body);
  t.equal(body.jsonrpc, '2.0');
  t.equal(body.id, 'call-9');
  t.equal(body.error.code, -32020);
  t.match(body.error.message, /Mcp-Method "tools\/list", body method "tools\/call"/);
  t.same(body.error.data, { code: 'TG_ERR_AMBIGUOUS_BODY', decision_id: 'd-1' });
});

t.test('a mismatched Mcp-Name on a notification-less body answers id null', async (t) => {
  const note = { jsonrpc: '2.0', method: 'tools/call', params: { name: 'refund' } };
  const error = caught(() => input(note, ['Mcp-Name', 'lookup']));
  t.equal(error.jsonRpcId, null);
  t.match(error.message, /Mcp-Name "lookup", body params.name "refund"/);
});

t.test('MCP-Protocol-Version disagreeing with _meta is a HeaderMismatch too', async (t) => {
  const body = {
    jsonrpc: '2.0',
    id: 3,
    method: 'tools/list',
    params: { _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' } },
  };
  const error = caught(() => input(body, ['MCP-Protocol-Version', '2025-06-18']));
  t.equal(error.jsonRpcId, 3);
  t.equal(error.code, 'TG_ERR_AMBIGUOUS_BODY');
  t.equal(input(body, ['MCP-Protocol-Version', '2026-07-28']).mcp?.protocol_version, '2026-07-28');
});

t.test('the ext_authz door answers a HeaderMismatch with the same JSON-RPC body', async (t) => {
  const response = requestParseErrorResponse(new McpHeaderMismatchError('mcp headers disagree', 5)) as {
    deniedResponse: { status: { code: number }; body: string };
  };
  t.equal(response.deniedResponse.status.code, 400);
  t.match(JSON.parse(response.deniedResponse.body), { jsonrpc: '2.0', id: 5, error: { code: -32020 } });
  const other = requestParseErrorResponse(new TollgateError('TG_ERR_BAD_REQUEST', 'x')) as {
    deniedResponse: { body: string };
  };
  t.equal(other.deniedResponse.body, 'request_parse_error: x', 'other refusals keep opa-envoy-plugin text');
});
