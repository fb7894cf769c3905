// Nothing crosses a CONNECT tunnel undecided: plain HTTP inside a tunnel (tunnel mode,
// any port) is decided request by request with the seed policy, and bytes that are
// neither TLS nor HTTP never reach the upstream unless the policy allows the "opaque"
// phase. Real sidecar, real curl, counting upstreams on loopback.
import t from 'tap';
import { spawn } from 'node:child_process';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  buildBundle,
  rawExchange,
  startTollgate,
  startUpstream,
  tempDir,
  type TestLike,
} from '../helpers/processes.ts';
import { closed, openTunnel } from '../tls/fixtures.ts';
import { pollPause } from '../helpers/poll.ts';

const SUPPORT = { id: 'support-bot', role: 'support' };

/** A raw TCP server counting connections and bytes (a tool that speaks anything). */
async function startTcpCounter(t: TestLike): Promise<{ port: number; bytes: () => number; connections: () => number }> {
  let bytes = 0;
  let connections = 0;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('data', (c: Buffer) => {
      bytes += c.length;
      socket.write(c);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return { port: (server.address() as AddressInfo).port, bytes: () => bytes, connections: () => connections };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function curl(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('curl', ['-sS', '--max-time', '10', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

async function decisionRecords(file: string): Promise<Array<Record<string, any>>> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, any>);
}

t.test('the seed policy decides plain HTTP inside a CONNECT tunnel, request by request', async (t) => {
  const upstream = await startUpstream(t);
  const tcp = await startTcpCounter(t);
  const logFile = join(await tempDir(), 'decisions.jsonl');
  const transparentPort = await freePort();
  const tg = await startTollgate(t, {
    agent: SUPPORT,
    decisionLog: { file: logFile },
    connect: { peekTimeoutMs: 300 },
    transparent: { enabled: true, listen: `127.0.0.1:${transparentPort}` },
    proxy: {
      resolve: {
        'payments.internal:80': `127.0.0.1:${upstream.port}`,
        'payments.internal:8443': `127.0.0.1:${upstream.port}`,
        'payments.internal:9000': `127.0.0.1:${tcp.port}`,
      },
    },
  });
  const proxy = `http://127.0.0.1:${tg.proxyPort}`;

  t.test(
    "denies the README's $900 refund sent with curl -p through the tunnel, with the policy's reason",
    async (t) => {
      const before = upstream.received.length;
      const r = await curl([
        '-p',
        '-x',
        proxy,
        '-H',
        'content-type: application/json',
        '-d',
        '{"amount": 900}',
        'http://payments.internal/v1/refunds',
      ]);
      t.equal(r.code, 0, r.stderr);
      const body = JSON.parse(r.stdout);
      t.equal(body.allowed, false);
      t.match(body.reasons.join(' '), /refund of 900 exceeds the support limit of 500/);
      t.equal(upstream.received.length, before, 'the refund never reached the tool');
    },
  );

  t.test('forwards a $100 refund through the same tunnel (control)', async (t) => {
    const before = upstream.received.length;
    const r = await curl([
      '-p',
      '-x',
      proxy,
      '-H',
      'content-type: application/json',
      '-d',
      '{"amount": 100}',
      'http://payments.internal/v1/refunds',
    ]);
    t.equal(r.code, 0, r.stderr);
    t.equal(JSON.parse(r.stdout).ok, true);
    t.equal(upstream.received.length, before + 1);
    t.equal(upstream.received.at(-1)!.body, '{"amount": 100}');
  });

  t.test(
    'decides every request of a keep-alive tunnel on a non-default port, pinned to the tunnel authority',
    async (t) => {
      const before = upstream.received.length;
      const tunnel = await openTunnel(tg.proxyPort, 'payments.internal:8443');
      t.equal(tunnel.status, 200);
      const small = '{"amount": 10}';
      const big = '{"amount": 901}';
      tunnel.socket.write(
        `POST /v1/refunds HTTP/1.1\r\nHost: payments.internal:8443\r\ncontent-type: application/json\r\ncontent-length: ${small.length}\r\n\r\n${small}` +
          `POST /v1/refunds HTTP/1.1\r\nHost: payments.internal:8443\r\ncontent-type: application/json\r\ncontent-length: ${big.length}\r\nconnection: close\r\n\r\n${big}`,
      );
      let answer = '';
      tunnel.socket.setEncoding('latin1');
      tunnel.socket.on('data', (c: string) => (answer += c));
      await closed(tunnel.socket);
      t.match(answer, /^HTTP\/1\.1 200 [\s\S]*HTTP\/1\.1 403 /, 'first allowed, second denied');
      t.match(answer, /exceeds the support limit/);
      t.equal(upstream.received.length, before + 1, 'only the allowed one reached the tool');
      const other = await openTunnel(tg.proxyPort, 'payments.internal:8443');
      other.socket.write('GET /v1/employees HTTP/1.1\r\nHost: hr.internal\r\nConnection: close\r\n\r\n');
      let refused = '';
      other.socket.setEncoding('latin1');
      other.socket.on('data', (c: string) => (refused += c));
      await closed(other.socket);
      t.match(refused, /^HTTP\/1\.1 400 /, 'a request for another host than the tunnel is refused');
      t.equal(upstream.received.length, before + 1);
    },
  );

  t.test('never relays bytes that are neither TLS nor HTTP, and records the refusal', async (t) => {
    for (const payload of [
      Buffer.from('SSH-2.0-OpenSSH_9.6\r\n'),
      Buffer.from([0x00, 0xff, 0x13, 0x37]),
      Buffer.from('*1\r\n$4\r\nPING\r\n'),
      Buffer.from([0x16, 0x03, 0x01, 0x00, 0x03, 0xde, 0xad, 0xbe]),
    ]) {
      const tunnel = await openTunnel(tg.proxyPort, 'payments.internal:9000');
      t.equal(tunnel.status, 200, 'the CONNECT itself is allowed');
      tunnel.socket.write(payload);
      await closed(tunnel.socket);
    }
    const silent = await openTunnel(tg.proxyPort, 'payments.internal:9000');
    await closed(silent.socket);
    t.equal(tcp.bytes(), 0, 'the upstream received no byte');
    let opaque: Array<Record<string, any>> = [];
    const deadline = Date.now() + 5000;
    while (opaque.length < 5 && Date.now() < deadline) {
      await pollPause();
      opaque = (await decisionRecords(logFile)).filter((r) => r.input?.connect?.phase === 'opaque');
    }
    t.equal(opaque.length, 5, 'each refusal is a recorded decision');
    t.match(opaque[0]!.result.reasons, [
      'tunnel to payments.internal:9000 carries bytes that are neither TLS nor HTTP',
    ]);
  });

  // Go's net/http serves "get /admin" as a request: any method token goes to Tollgate's own
  // HTTP parser, which refuses a method it does not know, instead of being relayed as opaque bytes.
  t.test('reads a lower-case method inside a tunnel as HTTP and refuses it', async (t) => {
    const tunnel = await openTunnel(tg.proxyPort, 'payments.internal:9000');
    let answer = '';
    tunnel.socket.setEncoding('latin1');
    tunnel.socket.on('data', (c: string) => (answer += c));
    tunnel.socket.write('get /v1/refunds HTTP/1.1\r\nHost: payments.internal:9000\r\n\r\n');
    await closed(tunnel.socket);
    t.match(answer, /^HTTP\/1\.1 400 /);
    t.equal(tcp.bytes(), 0, 'the upstream received no byte');
  });

  t.test(
    'on the transparent listener, opaque bytes are a recorded "opaque" decision and HTTP is decided per request',
    async (t) => {
      const before = upstream.received.length;
      const refund = '{"amount": 900}';
      const denied = await rawExchange(
        transparentPort,
        `POST /v1/refunds HTTP/1.1\r\nHost: payments.internal\r\ncontent-type: application/json\r\ncontent-length: ${refund.length}\r\nconnection: close\r\n\r\n${refund}`,
      );
      t.match(denied, /^HTTP\/1\.1 403 /);
      t.match(denied, /exceeds the support limit/);
      t.equal(upstream.received.length, before, 'the refund never reached the tool');
      const afterEmptyLines = await rawExchange(
        transparentPort,
        `\r\n\r\nPOST /v1/refunds HTTP/1.1\r\nHost: payments.internal\r\ncontent-type: application/json\r\ncontent-length: ${refund.length}\r\nconnection: close\r\n\r\n${refund}`,
      );
      t.match(afterEmptyLines, /^HTTP\/1\.1 403 /, 'empty lines before the request line: still HTTP, decided');
      t.equal(upstream.received.length, before);
      const answer = await rawExchange(transparentPort, 'SSH-2.0-OpenSSH_9.6\r\n');
      t.equal(answer, '', 'closed without an answer');
      let records: Array<Record<string, any>> = [];
      const deadline = Date.now() + 5000;
      while (records.length === 0 && Date.now() < deadline) {
        await pollPause();
        records = (await decisionRecords(logFile)).filter(
          (r) => r.input?.connect?.phase === 'opaque' && r.input.connect.port === transparentPort,
        );
      }
      t.equal(records.length, 1, 'the refusal is a recorded decision');
      t.equal(records[0]?.result.allowed, false);
    },
  );
});

t.test('a policy that allows the opaque phase explicitly gets the bytes relayed', async (t) => {
  const tcp = await startTcpCounter(t);
  const bundle = await buildBundle(
    {
      'policy.rego': `package tollgate.authz
default decision := {"allowed": false, "reasons": ["fixture: no rule matched"]}
decision := {"allowed": true, "reasons": []} if input.connect.phase == "connect"
decision := {"allowed": true, "reasons": []} if {
	input.connect.phase == "opaque"
	input.connect.port == ${tcp.port}
}
`,
    },
    ['tollgate/authz/decision'],
  );
  const tg = await startTollgate(t, { agent: SUPPORT, pdp: { bundle }, connect: { peekTimeoutMs: 300 } });
  const tunnel = await openTunnel(tg.proxyPort, `127.0.0.1:${tcp.port}`);
  t.equal(tunnel.status, 200);
  const echoed = new Promise<string>((resolve) =>
    tunnel.socket.once('data', (c: Buffer) => resolve(c.toString('latin1'))),
  );
  tunnel.socket.write('SSH-2.0-OpenSSH_9.6\r\n');
  t.equal(await echoed, 'SSH-2.0-OpenSSH_9.6\r\n', 'relayed both ways');
  t.equal(tcp.bytes(), 21);
  tunnel.socket.destroy();
});

// Servers skip empty lines before a request line (RFC 9112 §2.2) and Go serves methods of
// any length, and a request line may come after a pause: all of it is HTTP to the tool, so
// none of it is relayed as opaque bytes, even where the policy allows the opaque phase.
t.test('reads HTTP after empty lines, with a long method or after a silent start as HTTP', async (t) => {
  const tcp = await startTcpCounter(t);
  const logFile = join(await tempDir(), 'decisions.jsonl');
  const bundle = await buildBundle(
    {
      'policy.rego': `package tollgate.authz
default decision := {"allowed": false, "reasons": ["fixture: no rule matched"]}
decision := {"allowed": true, "reasons": []} if input.connect.phase == "connect"
decision := {"allowed": true, "reasons": []} if {
	input.connect.phase == "opaque"
	input.connect.port == ${tcp.port}
}
`,
    },
    ['tollgate/authz/decision'],
  );
  const tg = await startTollgate(t, {
    agent: SUPPORT,
    pdp: { bundle },
    decisionLog: { file: logFile },
    connect: { peekTimeoutMs: 300 },
  });
  const exchange = async (write: (socket: Socket) => Promise<void>): Promise<string> => {
    const tunnel = await openTunnel(tg.proxyPort, `127.0.0.1:${tcp.port}`);
    t.equal(tunnel.status, 200);
    let answer = '';
    tunnel.socket.setEncoding('latin1');
    tunnel.socket.on('data', (c: string) => (answer += c));
    await write(tunnel.socket);
    await closed(tunnel.socket);
    return answer;
  };
  const request = `GET /admin HTTP/1.1\r\nHost: 127.0.0.1:${tcp.port}\r\nConnection: close\r\n\r\n`;
  for (const prefix of ['\r\n', '\n', '\r\n\r\n']) {
    const answer = await exchange(async (s) => void s.write(prefix + request));
    t.match(answer, /^HTTP\/1\.1 403 /, `${JSON.stringify(prefix)} before the request line: decided and denied`);
  }
  const long = await exchange(async (s) => void s.write(`ABCDEFGHIJKLMNOPQRSTU /admin HTTP/1.1\r\nHost: x\r\n\r\n`));
  t.match(long, /^HTTP\/1\.1 400 /, 'a 21-character method goes to the parser, which refuses it');
  const slow = await exchange(async (s) => {
    s.write('GE');
    await new Promise<void>((resolve) => s.once('close', () => resolve()));
  });
  t.equal(slow, '', 'a request line that never completes is closed, not relayed');
  const afterSilence = await exchange(async (s) => {
    // The silence is noticed once the opaque phase is decided for it.
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      const opaque = (await decisionRecords(logFile)).filter((r) => r.input?.connect?.phase === 'opaque');
      if (opaque.length > 0) break;
      await pollPause();
    }
    s.write(request);
  });
  t.match(afterSilence, /^HTTP\/1\.1 403 /, 'a request after a silent start is decided as a request');
  t.equal(tcp.bytes(), 0, 'the upstream received no byte');
});

t.test('lets a server speak first in an allowed silent tunnel and relays opaque bytes after', async (t) => {
  const sockets = new Set<Socket>();
  let received = '';
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.write('220 banner\r\n');
    socket.on('data', (c: Buffer) => {
      received += c.toString('latin1');
      socket.write(c);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  const port = (server.address() as AddressInfo).port;
  const bundle = await buildBundle(
    {
      'policy.rego': `package tollgate.authz
default decision := {"allowed": false, "reasons": ["fixture: no rule matched"]}
decision := {"allowed": true, "reasons": []} if input.connect.phase == "connect"
decision := {"allowed": true, "reasons": []} if input.connect.phase == "opaque"
`,
    },
    ['tollgate/authz/decision'],
  );
  const tg = await startTollgate(t, { agent: SUPPORT, pdp: { bundle }, connect: { peekTimeoutMs: 300 } });
  const tunnel = await openTunnel(tg.proxyPort, `127.0.0.1:${port}`);
  t.equal(tunnel.status, 200);
  let answer = '';
  tunnel.socket.setEncoding('latin1');
  const banner = new Promise<void>((resolve) =>
    tunnel.socket.on('data', (c: string) => {
      answer += c;
      if (answer.includes('\r\n')) resolve();
    }),
  );
  await banner;
  t.equal(answer, '220 banner\r\n', 'the server spoke first');
  const echoed = new Promise<void>((resolve) =>
    tunnel.socket.on('data', () => {
      if (answer.includes('SSH-2.0')) resolve();
    }),
  );
  tunnel.socket.write('SSH-2.0-OpenSSH_9.6\r\n');
  await echoed;
  t.equal(received, 'SSH-2.0-OpenSSH_9.6\r\n', 'opaque bytes after the banner were relayed');
  tunnel.socket.destroy();
});
