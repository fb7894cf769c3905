// Malformed and ambiguous requests: each gets a 400-class answer, nothing reaches
// the upstream, and the next good request on a new connection still succeeds.
import t from 'tap';
import { rawExchange, startTollgate, startUpstream, viaProxy } from '../helpers/processes.ts';

t.test('bad input', async (t) => {
  const upstream = await startUpstream(t);
  const tg = await startTollgate(t, {
    agent: { id: 'support-bot', role: 'support' },
    proxy: {
      maxHeaderBytes: 8192,
      resolve: { 'payments.internal:80': `127.0.0.1:${upstream.port}`, 'hr.internal:80': `127.0.0.1:${upstream.port}` },
    },
  });
  const good = async (): Promise<number> =>
    (await viaProxy(tg.proxyPort, { url: 'http://payments.internal/v1/refunds/r-1' })).status;
  t.equal(await good(), 200, 'a good request works before');

  const cases: Array<[string, string, RegExp]> = [
    ['malformed request line', 'GARBAGE\r\n\r\n', /^HTTP\/1\.1 400 /],
    [
      'request line with a space in the target',
      'GET /v1/a b HTTP/1.1\r\nHost: payments.internal\r\n\r\n',
      /^HTTP\/1\.1 400 /,
    ],
    [
      'Content-Length together with Transfer-Encoding (CL.TE smuggling)',
      'POST http://payments.internal/v1/refunds HTTP/1.1\r\nHost: payments.internal\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET http://hr.internal/v1/employees HTTP/1.1\r\nHost: hr.internal\r\n\r\n',
      /^HTTP\/1\.1 400 /,
    ],
    [
      'two different Content-Length values',
      'POST http://payments.internal/v1/refunds HTTP/1.1\r\nHost: payments.internal\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc',
      /^HTTP\/1\.1 400 /,
    ],
    [
      'an obfuscated Transfer-Encoding',
      'POST http://payments.internal/v1/refunds HTTP/1.1\r\nHost: payments.internal\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n',
      /^HTTP\/1\.1 400 /,
    ],
    [
      'a non-chunked final Transfer-Encoding',
      'POST http://payments.internal/v1/refunds HTTP/1.1\r\nHost: payments.internal\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n',
      /^HTTP\/1\.1 400 /,
    ],
    [
      'duplicate Host',
      'GET /v1/refunds/r-1 HTTP/1.1\r\nHost: payments.internal\r\nHost: hr.internal\r\n\r\n',
      /^HTTP\/1\.1 400 /,
    ],
    [
      'absolute-form authority different from Host',
      'GET http://payments.internal/v1/refunds/r-1 HTTP/1.1\r\nHost: hr.internal\r\n\r\n',
      /^HTTP\/1\.1 400 /,
    ],
    [
      'invalid JSON body with a JSON content type',
      'POST http://payments.internal/v1/refunds HTTP/1.1\r\nHost: payments.internal\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{"amount"',
      /^HTTP\/1\.1 400 /,
    ],
    [
      'oversized headers',
      `GET http://payments.internal/v1/refunds/r-1 HTTP/1.1\r\nHost: payments.internal\r\nX-Big: ${'a'.repeat(16_000)}\r\n\r\n`,
      /^HTTP\/1\.1 431 /,
    ],
    [
      'an encoded slash in the path',
      'GET http://payments.internal/v1%2Frefunds HTTP/1.1\r\nHost: payments.internal\r\n\r\n',
      /^HTTP\/1\.1 400 /,
    ],
    [
      'a bare LF line ending in headers',
      'GET http://payments.internal/ HTTP/1.1\r\nHost: payments.internal\nX-A: b\r\n\r\n',
      /^HTTP\/1\.1 400 /,
    ],
    [
      'an obs-fold continuation line',
      'GET http://payments.internal/ HTTP/1.1\r\nHost: payments.internal\r\nX-A: b\r\n c\r\n\r\n',
      /^HTTP\/1\.1 400 /,
    ],
    [
      'userinfo in the request-target',
      'GET http://user:pw@payments.internal/ HTTP/1.1\r\nHost: payments.internal\r\n\r\n',
      /^HTTP\/1\.1 400 /,
    ],
    // CONNECT and upgrades are served (test/tls, test/e2e); malformed ones are still 400.
    [
      'a CONNECT without a port',
      'CONNECT payments.internal HTTP/1.1\r\nHost: payments.internal\r\n\r\n',
      /^HTTP\/1\.1 400 /,
    ],
    [
      'a CONNECT to port 0',
      'CONNECT payments.internal:0 HTTP/1.1\r\nHost: payments.internal:0\r\n\r\n',
      /^HTTP\/1\.1 400 /,
    ],
    [
      'a WebSocket upgrade with an encoded slash',
      'GET http://payments.internal/ws%2Fx HTTP/1.1\r\nHost: payments.internal\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      /^HTTP\/1\.1 400 /,
    ],
  ];
  for (const [name, payload, expected] of cases) {
    t.test(`rejects ${name}`, async (t) => {
      const before = upstream.received.length;
      const answer = await rawExchange(tg.proxyPort, payload);
      t.match(answer, expected);
      t.match(answer, /"code":"TG_ERR_[A-Z_]+"/, 'the body names the error');
      t.equal(upstream.received.length, before, 'nothing was forwarded');
      t.equal(await good(), 200, 'the next good request on a new connection succeeds');
    });
  }

  t.test('decides on and forwards the normalised path of an encoded dot-segment trick', async (t) => {
    const r = await viaProxy(tg.proxyPort, { url: 'http://payments.internal/v1/refunds/%2e%2e/%2E%2E/v1/refunds/r-9' });
    t.equal(r.status, 200);
    t.equal(upstream.received.at(-1)!.url, '/v1/refunds/r-9');
  });

  t.test('treats a trailing-dot or uppercase host as the same destination', async (t) => {
    const denied = await rawExchange(
      tg.proxyPort,
      'GET http://HR.Internal./v1/employees HTTP/1.1\r\nHost: HR.Internal.\r\nConnection: close\r\n\r\n',
    );
    t.match(denied, /^HTTP\/1\.1 403 /);
  });

  t.test('the sidecar is still running', async (t) => {
    t.equal(tg.child.exitCode, null);
  });
});

/** A recording upstream as payments.internal behind a sidecar for the support agent. */
async function paymentsBehindTollgate(t: Parameters<typeof startUpstream>[0]) {
  const upstream = await startUpstream(t);
  const tg = await startTollgate(t, {
    agent: { id: 'support-bot', role: 'support' },
    proxy: { resolve: { 'payments.internal:80': `127.0.0.1:${upstream.port}` } },
  });
  return { upstream, tg };
}

/** A refund request body. */
const body = JSON.stringify({ order: 'o-1', amount: 5 });

t.test('answers Expect: 100-continue itself and forwards the body without it', async (t) => {
  const { upstream, tg } = await paymentsBehindTollgate(t);
  const answer = await rawExchange(
    tg.proxyPort,
    `POST http://payments.internal/v1/refunds HTTP/1.1\r\nHost: payments.internal\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n${body}`,
  );
  t.match(answer, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /);
  t.equal(upstream.received.at(-1)!.body, body);
  t.notOk('expect' in upstream.received.at(-1)!.headers);
});

t.test('a body framed by a Content-Length that Connection names is decided and forwarded whole', async (t) => {
  // The header is hop-by-hop once Connection names it, the body it frames is not.
  const { upstream, tg } = await paymentsBehindTollgate(t);
  const answer = await rawExchange(
    tg.proxyPort,
    `POST http://payments.internal/v1/refunds HTTP/1.1\r\nHost: payments.internal\r\nContent-Type: application/json\r\nConnection: close, Content-Length\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
  );
  t.match(answer, /^HTTP\/1\.1 200 /);
  t.equal(upstream.received.length, 1);
  t.equal(upstream.received[0]!.body, body);
  t.equal(upstream.received[0]!.headers['content-length'], String(body.length), 'framed again by Tollgate');
});
