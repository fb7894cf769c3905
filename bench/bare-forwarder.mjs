// The runtime's limit for Tollgate's design, run beside it by bench/footprint.sh: a bare
// Node 24 forwarder, `http.createServer` + one undici Pool per origin with `pool.stream`,
// and nothing else (no policy, no normalisation, no telemetry, no logging). It accepts the
// same requests Tollgate does in the benchmark (absolute-form through a proxy, or
// origin-form with a Host) and sends them to BARE_UPSTREAM ("127.0.0.1:port").
// With BARE_POLICY_WASM (a policy.wasm) it is the limit for a forwarder that asks an OPA
// policy (BARE_POLICY_DATA: its data.json): per request it builds the opa-envoy-plugin input document (attributes, parsed
// path and query, version, the agent of BARE_AGENT_ROLE), evaluates BARE_ENTRYPOINT with
// opa-wasm's own evaluate() and answers 403 unless the result allows; still no
// normalisation, identity, telemetry or logging.
// With BARE_WORKER_NICE (and the node flags of bin/node-defaults.js given by the caller) it
// runs with the V8 settings Tollgate ships: V8's worker threads that much nicer.
// Prints "listening <port>" once ready. Usage: node bench/bare-forwarder.mjs
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { Pool } from 'undici';
import { loadPolicy } from '@open-policy-agent/opa-wasm';
import './worker-nice.mjs';

const upstream = process.env.BARE_UPSTREAM ?? '127.0.0.1:8080';
const pool = new Pool(`http://${upstream}`, { keepAliveTimeout: 4_000, bodyTimeout: 0 });
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer']);
const policy = process.env.BARE_POLICY_WASM ? await loadPolicy(readFileSync(process.env.BARE_POLICY_WASM)) : undefined;
if (process.env.BARE_POLICY_DATA) policy?.setData(JSON.parse(readFileSync(process.env.BARE_POLICY_DATA, 'utf8')));
const entrypoint = process.env.BARE_ENTRYPOINT ?? 'tollgate/authz/decision';
const agent = { id: 'bench', role: process.env.BARE_AGENT_ROLE ?? 'support', labels: {} };
let requests = 0;

function allowed(req, url, headers) {
  const [path, query = ''] = url.split('?', 2);
  const parsedQuery = {};
  for (const [name, value] of new URLSearchParams(query)) (parsedQuery[name] ??= []).push(value);
  const now = Date.now();
  const input = {
    attributes: {
      source: { address: { socketAddress: { address: req.socket.remoteAddress, portValue: req.socket.remotePort } } },
      destination: {
        address: { socketAddress: { address: req.socket.localAddress, portValue: req.socket.localPort } },
      },
      request: {
        time: { seconds: Math.floor(now / 1000), nanos: (now % 1000) * 1e6 },
        http: {
          id: String(++requests),
          method: req.method,
          headers,
          path: url,
          host: headers.host,
          scheme: 'http',
          protocol: `HTTP/${req.httpVersion}`,
        },
      },
    },
    parsed_path: path.split('/').filter((segment) => segment !== ''),
    parsed_query: parsedQuery,
    parsed_body: null,
    truncated_body: false,
    version: { ext_authz: 'v3', encoding: 'protojson' },
    agent,
  };
  const result = policy.evaluate(input, entrypoint)[0]?.result;
  return result === true || result?.allowed === true;
}

const server = createServer((req, res) => {
  const url = req.url.startsWith('/') ? req.url : new URL(req.url).pathname;
  const headers = {};
  for (const [name, value] of Object.entries(req.headers)) if (!HOP.has(name)) headers[name] = value;
  if (policy !== undefined && !allowed(req, url, headers)) {
    res.writeHead(403, { 'content-type': 'application/json' }).end('{"allowed":false}');
    return;
  }
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
