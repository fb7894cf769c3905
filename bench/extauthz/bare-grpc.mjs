// The runtime's limit for Tollgate's ext_authz server, run beside it by bench/extauthz.sh: a bare
// Node 24 gRPC server on node:http2 that answers every Authorization/Check with one fixed
// CheckResponse (status OK) and nothing else (no decoding, no policy, no metrics, no logging).
// It reads the request to its end, as a server must, and answers HEADERS, DATA, trailers.
// bench/extauthz.sh runs it with Tollgate's shipped V8 defaults (bin/node-defaults.js) and,
// with BARE_WORKER_NICE=10, V8's worker thread as nice as Tollgate's.
// Prints "listening <port>" once ready. Usage: BARE_GRPC_PORT=<port> node bench/extauthz/bare-grpc.mjs
import http2 from 'node:http2';
import '../worker-nice.mjs';

// CheckResponse { status: {} }: field 1, length-delimited, empty; after gRPC's 5-byte prefix.
const ANSWER = Buffer.from([0, 0, 0, 0, 2, 0x0a, 0x00]);
const HEADERS = { ':status': 200, 'content-type': 'application/grpc' };

function sendTrailers() {
  this.sendTrailers({ 'grpc-status': '0' });
}
function answer() {
  this.respond(HEADERS, { waitForTrailers: true });
  this.once('wantTrailers', sendTrailers);
  this.end(ANSWER);
}

const server = http2.createServer({ streamResetBurst: 100_000, streamResetRate: 100_000 });
server.on('stream', (stream) => {
  stream.on('error', () => {});
  stream.on('end', answer);
  stream.resume();
});
server.listen(Number(process.env.BARE_GRPC_PORT ?? 0), '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
