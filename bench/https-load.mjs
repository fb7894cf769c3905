// HTTPS load generator for bench/https.sh (plain JS: runs on the bench's Node 24).
//
//   node https-load.mjs rps <target.json> <connections> <seconds>
//     closed loop: <connections> keep-alive HTTPS connections (each opened once, through
//     the proxy's CONNECT when the target has one), each sending its next GET as soon as
//     the previous answer is read; prints {"rps", "p50_ms", "p99_ms", "errors"}.
//   node https-load.mjs handshake <target.json> <count>
//     <count> new connections one after another: TCP connect (+ CONNECT) + TLS handshake
//     + one GET; prints the handshake time (until the TLS session is up) and the time to
//     the first response, p50/p99 in ms.
//
// target.json: {"host": "127.0.0.1", "port": N, "servername": "payments.internal",
//   "authority": "payments.internal:443", "proxy": {"host", "port"} | null, "ca": "<pem file>"}
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { readFileSync } from 'node:fs';

const [mode, targetFile, a, b] = process.argv.slice(2);
const target = JSON.parse(readFileSync(targetFile, 'utf8'));
const ca = readFileSync(target.ca, 'utf8');
const PATH = '/v1/refunds/r-1';

function tcp() {
  return new Promise((resolve, reject) => {
    const host = target.proxy?.host ?? target.host;
    const port = target.proxy?.port ?? target.port;
    const s = netConnect({ host, port, noDelay: true });
    s.once('error', reject);
    s.once('connect', () => {
      if (!target.proxy) return resolve(s);
      s.write(`CONNECT ${target.authority} HTTP/1.1\r\nHost: ${target.authority}\r\n\r\n`);
      let buf = '';
      const onData = (c) => {
        buf += c.toString('latin1');
        const end = buf.indexOf('\r\n\r\n');
        if (end === -1) return;
        s.off('data', onData);
        if (!/^HTTP\/1\.[01] 200/.test(buf)) return reject(new Error(`CONNECT refused: ${buf.split('\r\n')[0]}`));
        resolve(s);
      };
      s.on('data', onData);
    });
  });
}

function secure(raw) {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ socket: raw, servername: target.servername, ca, ALPNProtocols: ['http/1.1'] }, () =>
      resolve(s),
    );
    s.once('error', reject);
  });
}

// One request on a keep-alive HTTP/1.1 connection; the fixed upstream answer has a content-length.
function get(s) {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (c) => {
      buf = buf.length === 0 ? c : Buffer.concat([buf, c]);
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      const head = buf.subarray(0, end).toString('latin1');
      const m = /content-length:\s*(\d+)/i.exec(head);
      const need = end + 4 + (m ? Number(m[1]) : 0);
      if (buf.length < need) return;
      s.off('data', onData);
      s.off('error', reject);
      const status = Number(head.slice(9, 12));
      status === 200 ? resolve() : reject(new Error(`status ${status}`));
    };
    s.on('data', onData);
    s.once('error', reject);
    s.write(`GET ${PATH} HTTP/1.1\r\nHost: ${target.servername}\r\n\r\n`);
  });
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
const ms = (ns) => Number(ns) / 1e6;

if (mode === 'rps') {
  const connections = Number(a);
  const seconds = Number(b);
  const sockets = await Promise.all(Array.from({ length: connections }, async () => secure(await tcp())));
  for (const s of sockets) await get(s); // warm: first request on each connection
  const latencies = [];
  let errors = 0;
  const stopAt = process.hrtime.bigint() + BigInt(seconds * 1e9);
  const started = process.hrtime.bigint();
  await Promise.all(
    sockets.map(async (s) => {
      while (process.hrtime.bigint() < stopAt) {
        const t0 = process.hrtime.bigint();
        try {
          await get(s);
          latencies.push(ms(process.hrtime.bigint() - t0));
        } catch {
          errors++;
          return;
        }
      }
    }),
  );
  const elapsed = ms(process.hrtime.bigint() - started) / 1000;
  for (const s of sockets) s.destroy();
  latencies.sort((x, y) => x - y);
  console.log(
    JSON.stringify({
      rps: Math.round(latencies.length / elapsed),
      p50_ms: +pct(latencies, 50).toFixed(3),
      p99_ms: +pct(latencies, 99).toFixed(3),
      requests: latencies.length,
      errors,
    }),
  );
} else if (mode === 'handshake') {
  const count = Number(a);
  const handshakes = [];
  const firsts = [];
  for (let i = 0; i < count; i++) {
    const t0 = process.hrtime.bigint();
    const s = await secure(await tcp());
    const t1 = process.hrtime.bigint();
    await get(s);
    const t2 = process.hrtime.bigint();
    s.destroy();
    if (i >= Math.min(20, count / 10)) {
      // the first connections warm the JIT and the leaf cache
      handshakes.push(ms(t1 - t0));
      firsts.push(ms(t2 - t0));
    }
  }
  handshakes.sort((x, y) => x - y);
  firsts.sort((x, y) => x - y);
  console.log(
    JSON.stringify({
      connections: handshakes.length,
      handshake_p50_ms: +pct(handshakes, 50).toFixed(3),
      handshake_p99_ms: +pct(handshakes, 99).toFixed(3),
      first_response_p50_ms: +pct(firsts, 50).toFixed(3),
      first_response_p99_ms: +pct(firsts, 99).toFixed(3),
      per_second: Math.round(1000 / (firsts.reduce((x, y) => x + y, 0) / firsts.length)),
    }),
  );
} else {
  console.error('usage: https-load.mjs rps|handshake <target.json> ...');
  process.exit(2);
}
