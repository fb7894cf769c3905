// HTTP/2 inside an interception: a request whose :authority and host header name
// different hosts is malformed (RFC 9113 §8.3.1) and refused with 400
// TG_ERR_AMBIGUOUS_TARGET before any byte reaches the tool; a request whose host
// agrees, or that sends only :authority, is decided and forwarded as usual.
import t from 'tap';
import { connect as h2connect, type ClientHttp2Session, type OutgoingHttpHeaders } from 'node:http2';
import { connect as tlsConnect } from 'node:tls';
import { readFileSync } from 'node:fs';
import { buildBundle, startTollgate } from '../helpers/processes.ts';
import { openTunnel, resolveTo, startHttpsUpstream, tollgateCa } from './fixtures.ts';

const ALLOW_ALL = `package tollgate.authz
decision := {"allowed": true, "reasons": []}
`;

function request(session: ClientHttp2Session, headers: OutgoingHttpHeaders): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: true });
    let status = 0;
    let body = '';
    stream.setEncoding('utf8');
    stream.on('response', (h) => (status = Number(h[':status'])));
    stream.on('data', (c: string) => (body += c));
    stream.on('end', () => resolve({ status, body }));
    stream.on('error', reject);
  });
}

t.test('h2 requests inside an intercepted tunnel', async (t) => {
  const ca = await tollgateCa();
  const caPem = readFileSync(ca.certFile, 'utf8');
  const upstream = await startHttpsUpstream(t);
  const bundle = await buildBundle({ 'policy.rego': ALLOW_ALL }, ['tollgate/authz/decision']);
  const tg = await startTollgate(t, {
    agent: { id: 'support-bot', role: 'support' },
    pdp: { bundle },
    proxy: { resolve: resolveTo(upstream.port) },
    tls: { caCertFile: ca.certFile, caKeyFile: ca.keyFile, upstreamCaFiles: [upstream.caFile] },
  });
  const tunnel = await openTunnel(tg.proxyPort, 'payments.internal:443');
  t.equal(tunnel.status, 200);
  const session = h2connect('https://payments.internal', {
    createConnection: () =>
      tlsConnect({ socket: tunnel.socket, servername: 'payments.internal', ca: caPem, ALPNProtocols: ['h2'] }),
  });
  session.on('error', () => undefined);
  t.teardown(() => session.destroy());

  t.test('refuses :authority and host that disagree, forwarding nothing', async (t) => {
    const before = upstream.received.length;
    for (const host of ['hr.internal', 'payments.internal:8443', 'evil.example']) {
      const reply = await request(session, {
        ':method': 'GET',
        ':path': '/v1/refunds/r-1',
        ':authority': 'payments.internal',
        host,
      });
      t.equal(reply.status, 400, `host ${host}`);
      t.equal(JSON.parse(reply.body).error.code, 'TG_ERR_AMBIGUOUS_TARGET');
    }
    t.equal(upstream.received.length, before, 'nothing reached the tool');
  });

  t.test('forwards a request with only :authority, or with a host that agrees (controls)', async (t) => {
    const before = upstream.received.length;
    const plain = await request(session, {
      ':method': 'GET',
      ':path': '/v1/refunds/r-2',
      ':authority': 'payments.internal',
    });
    t.equal(plain.status, 200);
    const agreeing = await request(session, {
      ':method': 'GET',
      ':path': '/v1/refunds/r-3',
      ':authority': 'payments.internal',
      host: 'Payments.Internal',
    });
    t.equal(agreeing.status, 200);
    t.equal(upstream.received.length, before + 2);
    t.equal(upstream.received.at(-1)!.url, '/v1/refunds/r-3');
  });
});
