// CONNECT on the outbound listener: decided before any byte flows, with the input
// Envoy sends for CONNECT (plus input.connect); the SNI inside the tunnel decided
// again when it differs from the CONNECT host; tunnel vs intercept vs pass-through;
// upstream certificate failures; and bad input of every kind, the proxy surviving.
import { pollPause } from '../helpers/poll.ts';
import t from 'tap';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { Socket } from 'node:net';
import { readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildBundle, rawExchange, startTollgate, tempDir, viaProxy } from '../helpers/processes.ts';
import { captureClientHello, closed, openTunnel, resolveTo, startHttpsUpstream, tollgateCa } from './fixtures.ts';

const SUPPORT = { id: 'support-bot', role: 'support' };

// A fixture policy that shows what it saw: CONNECT denials carry the input in the reason,
// requests inside a tunnel get input.connect echoed to the upstream in a header.
const SEEING = `package tollgate.authz

default decision := {"allowed": false, "http_status": 403, "reasons": ["fixture: no rule matched"]}

connect_hosts := {"127.0.0.1", "payments.internal"}

decision := {"allowed": true, "reasons": []} if {
	input.connect.phase == "connect"
	input.connect.host in connect_hosts
} else := {"allowed": true, "reasons": []} if {
	input.connect.phase == "connect"
	endswith(input.connect.host, ".many.test")
} else := {"allowed": false, "http_status": 403, "reasons": [json.marshal({
	"method": input.attributes.request.http.method,
	"host": input.attributes.request.http.host,
	"path": object.get(input.attributes.request.http, "path", null),
	"authority_header": input.attributes.request.http.headers[":authority"],
	"connect": input.connect,
})]} if {
	input.connect.phase == "connect"
} else := {"allowed": true, "reasons": []} if {
	input.connect.phase == "tls"
	input.connect.sni == "payments.internal"
	input.attributes.request.http.host == "payments.internal:443"
} else := {"allowed": true, "reasons": [], "headers": {"x-seen": json.marshal(input.connect)}} if {
	input.connect.phase == "request"
	input.attributes.request.http.method == "GET"
}
`;

function tlsOver(socket: Socket, servername: string | undefined, ca: string): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect(
      {
        socket,
        ca,
        ...(servername === undefined ? { checkServerIdentity: () => undefined } : { servername }),
        ALPNProtocols: ['http/1.1'],
      },
      () => resolve(s),
    );
    s.on('error', reject);
    s.on('close', () => reject(new Error('closed during the handshake')));
  });
}

function httpOver(s: TLSSocket, request: string): Promise<string> {
  return new Promise((resolve) => {
    let data = '';
    s.setEncoding('latin1');
    s.on('data', (c: string) => (data += c));
    s.on('close', () => resolve(data));
    s.on('error', () => resolve(data));
    s.write(request);
  });
}

t.test('CONNECT decisions', async (t) => {
  const ca = await tollgateCa();
  const caPem = readFileSync(ca.certFile, 'utf8');
  const upstream = await startHttpsUpstream(t);
  const bundle = await buildBundle({ 'policy.rego': SEEING }, ['tollgate/authz/decision']);
  const tg = await startTollgate(t, {
    agent: SUPPORT,
    pdp: { bundle },
    proxy: { resolve: resolveTo(upstream.port) },
    connect: { peekTimeoutMs: 300 },
    tls: {
      caCertFile: ca.certFile,
      caKeyFile: ca.keyFile,
      upstreamCaFiles: [upstream.caFile],
      handshakeTimeoutMs: 500,
      leafCacheSize: 5,
    },
  });

  // Tollgate's open file descriptors: sockets left behind by bad input would show here.
  const fds = () => readdirSync(`/proc/${tg.child.pid}/fd`).length;
  const baseline = fds();

  t.test('decides on the CONNECT with the input Envoy sends for it, before any byte flows', async (t) => {
    const { status, head } = await openTunnel(tg.proxyPort, 'blocked.example:443');
    t.equal(status, 403);
    const seen = JSON.parse(JSON.parse(head.slice(head.indexOf('{'))).reasons[0]);
    t.same(seen, {
      method: 'CONNECT',
      host: 'blocked.example:443',
      path: null,
      authority_header: 'blocked.example:443',
      connect: {
        phase: 'connect',
        authority: 'blocked.example:443',
        host: 'blocked.example',
        port: 443,
        mode: 'intercept',
      },
    });
  });

  t.test('lets the policy see both the IP of a CONNECT and the SNI inside it', async (t) => {
    const before = upstream.received.length;
    const tunnel = await openTunnel(tg.proxyPort, '127.0.0.1:443');
    t.equal(tunnel.status, 200);
    const s = await tlsOver(tunnel.socket, 'payments.internal', caPem);
    t.equal(s.getPeerX509Certificate()?.checkHost('payments.internal'), 'payments.internal', 'the leaf names the SNI');
    const answer = await httpOver(
      s,
      'GET /v1/refunds/r-1 HTTP/1.1\r\nHost: payments.internal\r\nConnection: close\r\n\r\n',
    );
    t.match(answer, /^HTTP\/1\.1 200 /);
    t.equal(upstream.received.length, before + 1);
    const seen = JSON.parse(String(upstream.received.at(-1)!.headers['x-seen']));
    t.match(seen, {
      phase: 'request',
      authority: '127.0.0.1:443',
      host: '127.0.0.1',
      sni: 'payments.internal',
      mode: 'intercept',
    });
  });

  t.test('closes a tunnel whose SNI names a host the policy refuses', async (t) => {
    for (const authority of ['127.0.0.1:443', 'payments.internal:443']) {
      const tunnel = await openTunnel(tg.proxyPort, authority);
      t.equal(tunnel.status, 200);
      await t.rejects(tlsOver(tunnel.socket, 'hr.internal', caPem), `SNI hr.internal inside ${authority}`);
    }
  });

  t.test('refuses a request whose Host differs from the intercepted tunnel', async (t) => {
    const tunnel = await openTunnel(tg.proxyPort, 'payments.internal:443');
    const s = await tlsOver(tunnel.socket, 'payments.internal', caPem);
    const answer = await httpOver(s, 'GET / HTTP/1.1\r\nHost: hr.internal\r\nConnection: close\r\n\r\n');
    t.match(answer, /^HTTP\/1\.1 400 /);
  });

  t.test('serves an agent that sends no SNI with a leaf for the CONNECT host', async (t) => {
    const tunnel = await openTunnel(tg.proxyPort, 'payments.internal:443');
    const s = await tlsOver(tunnel.socket, undefined, caPem);
    t.equal(s.getPeerX509Certificate()?.checkHost('payments.internal'), 'payments.internal');
    const answer = await httpOver(s, 'GET /x HTTP/1.1\r\nHost: payments.internal\r\nConnection: close\r\n\r\n');
    t.match(answer, /^HTTP\/1\.1 200 /);
  });

  t.test('answers bad CONNECT targets with 400 and keeps serving', async (t) => {
    for (const target of [
      'payments.internal',
      'payments.internal:0',
      'payments.internal:70000',
      'payments.internal:',
      ':443',
      '[::1:443',
      'a b:443',
      'user@payments.internal:443',
      'payments.internal:443/x',
      '%00:443',
    ]) {
      const answer = await rawExchange(tg.proxyPort, `CONNECT ${target} HTTP/1.1\r\nHost: x\r\n\r\n`);
      t.match(answer, /^HTTP\/1\.1 400 /, `CONNECT ${target}`);
    }
    const ok = await openTunnel(tg.proxyPort, 'payments.internal:443');
    t.equal(ok.status, 200, 'a good CONNECT still works');
    ok.socket.destroy();
  });

  t.test('closes a tunnel carrying garbage, a truncated ClientHello or nothing, without harm', async (t) => {
    const garbage = await openTunnel(tg.proxyPort, 'payments.internal:443');
    garbage.socket.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x09, 0x09, 0x09, 0x09]));
    await closed(garbage.socket);
    const binary = await openTunnel(tg.proxyPort, 'payments.internal:443');
    binary.socket.write(Buffer.from([0x00, 0xff, 0x13, 0x37]));
    await closed(binary.socket);
    const truncated = await openTunnel(tg.proxyPort, 'payments.internal:443');
    truncated.socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01]));
    const waited = await closed(truncated.socket, 5000);
    t.ok(waited < 5000, `a half ClientHello is dropped at the peek timeout (${waited} ms)`);
    const silent = await openTunnel(tg.proxyPort, 'payments.internal:443');
    await closed(silent.socket, 5000);
    const r = await viaProxy(tg.proxyPort, { url: 'http://payments.internal:443/' }).catch(() => undefined);
    t.ok(r === undefined || r.status > 0, 'the proxy still answers');
  });

  t.test('drops a client that never finishes the TLS handshake at the handshake timeout', async (t) => {
    const tunnel = await openTunnel(tg.proxyPort, 'payments.internal:443');
    // A complete ClientHello, then silence: the server's flight is never answered.
    tunnel.socket.write(await captureClientHello({ servername: 'payments.internal' }));
    const started = Date.now();
    await closed(tunnel.socket, 5000);
    t.ok(Date.now() - started < 5000, 'closed by the server');
  });

  t.test('keeps working after thousands of distinct SNI names (leaf cache bounded at 5)', async (t) => {
    const n = 2000;
    let ok = 0;
    for (let i = 0; i < n; i++) {
      const name = `h${i}.many.test`;
      const tunnel = await openTunnel(tg.proxyPort, `${name}:443`);
      const s = await tlsOver(tunnel.socket, name, caPem);
      if (s.getPeerX509Certificate()?.checkHost(name) === name) ok++;
      s.destroy();
    }
    t.equal(ok, n, 'every name got its own valid leaf');
    const tunnel = await openTunnel(tg.proxyPort, 'payments.internal:443');
    const s = await tlsOver(tunnel.socket, 'payments.internal', caPem);
    t.match(
      await httpOver(s, 'GET /after HTTP/1.1\r\nHost: payments.internal\r\nConnection: close\r\n\r\n'),
      /^HTTP\/1\.1 200 /,
    );
  });

  t.test('leaves no connection behind after all of the above', async (t) => {
    // Upstream keep-alive sockets close after 4 s idle, peeks and handshakes time out sooner.
    const deadline = Date.now() + 15_000;
    let now = fds();
    while (now > baseline + 2 && Date.now() < deadline) {
      await pollPause();
      now = fds();
    }
    t.ok(now <= baseline + 2, `open descriptors back to ${now} (baseline ${baseline})`);
  });
});

t.test('tunnel mode, pass-through and upstream trust', async (t) => {
  const ca = await tollgateCa();
  const caPem = readFileSync(ca.certFile, 'utf8');
  const upstream = await startHttpsUpstream(t);
  const upstreamCa = readFileSync(upstream.caFile, 'utf8');
  const logFile = join(await tempDir(), 'decisions.jsonl');
  const tg = await startTollgate(t, {
    agent: SUPPORT,
    decisionLog: { file: logFile },
    proxy: { resolve: resolveTo(upstream.port, ['payments.internal', 'crm.internal', 'mcp.internal']) },
    connect: { passThrough: ['crm.internal'], modes: { 'mcp.internal': 'tunnel' } },
    tls: { caCertFile: ca.certFile, caKeyFile: ca.keyFile },
  });

  t.test('tunnels pass-through and tunnel-mode hosts: the agent sees the upstream certificate', async (t) => {
    for (const host of ['crm.internal', 'mcp.internal']) {
      const before = upstream.received.length;
      const tunnel = await openTunnel(tg.proxyPort, `${host}:443`);
      t.equal(tunnel.status, 200);
      const s = await tlsOver(tunnel.socket, host, upstreamCa);
      t.match(s.getPeerX509Certificate()?.issuer, /upstream test CA/, `${host} is not intercepted`);
      t.match(await httpOver(s, `GET /t HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`), /^HTTP\/1\.1 200 /);
      t.equal(upstream.received.at(-1)!.headers['x-tollgate-agent'], undefined, 'no L7 mutation in a tunnel');
      t.equal(upstream.received.length, before + 1);
    }
  });

  t.test('decides again on an SNI that differs from the tunnelled CONNECT host', async (t) => {
    const before = upstream.received.length;
    const tunnel = await openTunnel(tg.proxyPort, 'crm.internal:443');
    t.equal(tunnel.status, 200);
    await t.rejects(
      tlsOver(tunnel.socket, 'hr.internal', upstreamCa),
      'SNI hr.internal inside a tunnel to crm.internal is cut',
    );
    t.equal(upstream.received.length, before);
  });

  t.test('still denies a tunnel the policy refuses', async (t) => {
    const tunnel = await openTunnel(tg.proxyPort, 'hr.internal:443');
    t.equal(tunnel.status, 403);
    t.match(tunnel.head, /role support may not reach hr\.internal/);
    // The tunnel decision is in the hash-chained decision log like any other.
    const id = /x-tollgate-decision-id: ([0-9a-f-]+)/.exec(tunnel.head)![1]!;
    const deadline = Date.now() + 5000;
    let record: any;
    while (record === undefined && Date.now() < deadline) {
      const text = await readFile(logFile, 'utf8').catch(() => '');
      record = text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l))
        .find((r) => r.decision_id === id);
      if (record === undefined) await new Promise((r) => setTimeout(r, 50));
    }
    t.equal(record?.input.attributes.request.http.method, 'CONNECT');
    t.equal(record?.input.connect.phase, 'connect');
  });

  t.test('answers 502 naming the certificate problem when the upstream is not trusted', async (t) => {
    const before = upstream.received.length;
    const tunnel = await openTunnel(tg.proxyPort, 'payments.internal:443');
    const s = await tlsOver(tunnel.socket, 'payments.internal', caPem);
    const answer = await httpOver(
      s,
      'GET /v1/refunds/r-1 HTTP/1.1\r\nHost: payments.internal\r\nConnection: close\r\n\r\n',
    );
    t.match(answer, /^HTTP\/1\.1 502 /);
    t.match(answer, /TG_ERR_UPSTREAM/);
    t.match(answer, /certificate/i);
    t.equal(upstream.received.length, before, 'no request was sent over an unverified connection');
  });
});
