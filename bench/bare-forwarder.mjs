// The runtime's limit for Tollgate's design, run beside it by bench/footprint.sh: a bare
// Node 24 forwarder, `http.createServer` + one undici Pool per origin with `pool.stream`,
// and nothing else (no policy, no normalisation, no telemetry, no logging). It accepts the
// same requests Tollgate does in the benchmark (absolute-form through a proxy, or
// origin-form with a Host) and sends them to BARE_UPSTREAM ("127.0.0.1:port").
// Prints "listening <port>" once ready. Usage: node bench/bare-forwarder.mjs
import { createServer } from 'node:http';
import { Pool } from 'undici';

const upstream = process.env.BARE_UPSTREAM ?? '127.0.0.1:8080';
const pool = new Pool(`http://${upstream}`, { keepAliveTimeout: 4_000, bodyTimeout: 0 });
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer']);

const server = createServer((req, res) => {
  const url = req.url.startsWith('/') ? req.url : new URL(req.url).pathname;
  const headers = {};
  for (const [name, value] of Object.entries(req.headers)) if (!HOP.has(name)) headers[name] = value;
  pool
    .stream(
      { path: url, method: req.method, headers, body: req.method === 'GET' ? null : req, opaque: res },
      (data) => {
        const out = {};
        for (const [name, value] of Object.entries(data.headers)) if (!HOP.has(name)) out[name] = value;
        data.opaque.writeHead(data.statusCode, out);
        return data.opaque;
      },
    )
    .catch(() => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
});
server.listen(Number(process.env.BARE_PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
process.on('SIGTERM', () => server.close(() => pool.close().then(() => process.exit(0))));
