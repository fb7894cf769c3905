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
// With BARE_RECORD_LOG (a file; needs BARE_POLICY_WASM) it also records every decision the
// plain way, with stock libraries: one OpenTelemetry SDK CLIENT span per request (parent-based,
// 10 % of new traces, as Tollgate's default; the W3C traceparent injected upstream; batches
// exported over OTLP/HTTP to BARE_OTLP_URL) and one OPA decision-log line per decision written
// by pino (asynchronous, 64 KiB writes), with no mask and no hash chain: the limit for a
// forwarder that asks an OPA policy and records it.
// With BARE_WORKER_NICE (and the node flags of bin/node-defaults.js given by the caller) it
// runs with the V8 settings Tollgate ships: V8's worker threads that much nicer.
// Prints "listening <port>" once ready. Usage: node bench/bare-forwarder.mjs
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
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
const recorder = process.env.BARE_RECORD_LOG ? await startRecorder(process.env.BARE_RECORD_LOG) : undefined;

// The stock recording: the OpenTelemetry SDK's tracer and W3C propagator, pino's logger.
async function startRecorder(file) {
  const api = await import('@opentelemetry/api');
  const { W3CTraceContextPropagator } = await import('@opentelemetry/core');
  const sdk = await import('@opentelemetry/sdk-trace');
  const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
  const { pino } = await import('pino');
  const exporter = new OTLPTraceExporter({ url: process.env.BARE_OTLP_URL ?? 'http://127.0.0.1:4318/v1/traces' });
  const provider = new sdk.TracerProvider({
    sampler: new sdk.ParentBasedSampler({ root: new sdk.TraceIdRatioBasedSampler(0.1) }),
    spanProcessors: [new sdk.BatchSpanProcessor({ exporter })],
  });
  const log = pino(
    { base: undefined, timestamp: false },
    pino.destination({ dest: file, minLength: 65536, maxWrite: 131072, sync: false }),
  );
  return { api, tracer: provider.getTracer('bare-forwarder'), propagator: new W3CTraceContextPropagator(), log };
}

const labels = { id: randomUUID(), version: 'bare-forwarder' };

const getter = { keys: (carrier) => Object.keys(carrier), get: (carrier, key) => carrier[key] };
const setter = { set: (carrier, key, value) => (carrier[key] = value) };

// The agent's trace context; undefined when nothing is recorded.
function parentOf(req) {
  return recorder?.propagator.extract(recorder.api.ROOT_CONTEXT, req.headers, getter);
}

// A CLIENT span for the call, a child of the agent's trace context (its attributes only when sampled).
function startSpan(parent, req, url, headers) {
  const span = recorder.tracer.startSpan(req.method, { kind: recorder.api.SpanKind.CLIENT }, parent);
  if (span.isRecording()) {
    span.setAttribute('http.request.method', req.method);
    span.setAttribute('server.address', headers.host);
    span.setAttribute('url.full', `http://${headers.host}${url}`);
  }
  return span;
}

// The span's context into the upstream request's headers.
function inject(parent, span, headers) {
  recorder.propagator.inject(recorder.api.trace.setSpan(parent, span), headers, setter);
}

// One OPA decision-log event (https://www.openpolicyagent.org/docs/management-decision-logs).
function logDecision(req, decision, span) {
  const context = span.spanContext();
  recorder.log.info({
    decision_id: randomUUID(),
    path: entrypoint,
    input: decision.input,
    result: decision.result,
    bundles: { tollgate: { revision: '' } },
    metrics: { timer_rego_query_eval_ns: decision.evalNanos },
    labels,
    requested_by: `${req.socket.remoteAddress}:${req.socket.remotePort}`,
    timestamp: new Date().toISOString(),
    trace_id: context.traceId,
    span_id: context.spanId,
  });
}

function decide(req, url, headers) {
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
  const start = recorder === undefined ? 0n : process.hrtime.bigint();
  const result = policy.evaluate(input, entrypoint)[0]?.result;
  const evalNanos = recorder === undefined ? 0 : Number(process.hrtime.bigint() - start);
  return { input, result, evalNanos, allowed: result === true || result?.allowed === true };
}

const server = createServer((req, res) => {
  const url = req.url.startsWith('/') ? req.url : new URL(req.url).pathname;
  const headers = {};
  for (const [name, value] of Object.entries(req.headers)) if (!HOP.has(name)) headers[name] = value;
  const parent = parentOf(req);
  const span = parent === undefined ? undefined : startSpan(parent, req, url, headers);
  if (policy !== undefined) {
    const decision = decide(req, url, headers);
    if (span !== undefined) {
      if (span.isRecording()) span.setAttribute('tollgate.decision.outcome', decision.allowed ? 'allow' : 'deny');
      logDecision(req, decision, span);
      inject(parent, span, headers);
    }
    if (!decision.allowed) {
      span?.setStatus({ code: recorder.api.SpanStatusCode.ERROR });
      span?.end();
      res.writeHead(403, { 'content-type': 'application/json' }).end('{"allowed":false}');
      return;
    }
  }
  pool
    .stream(
      { path: url, method: req.method, headers, body: req.method === 'GET' ? null : req, opaque: res },
      (data) => {
        const out = {};
        for (const [name, value] of Object.entries(data.headers)) if (!HOP.has(name)) out[name] = value;
        data.opaque.writeHead(data.statusCode, out);
        if (span?.isRecording()) span.setAttribute('http.response.status_code', data.statusCode);
        return data.opaque;
      },
    )
    .then(() => span?.end())
    .catch(() => {
      span?.end();
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
});
server.listen(Number(process.env.BARE_PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
process.on('SIGTERM', () => server.close(() => pool.close().then(() => process.exit(0))));
