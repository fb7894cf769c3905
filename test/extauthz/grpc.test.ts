/**
 * The gRPC layer of the ext_authz listener (src/extauthz/grpc.ts) against real clients:
 * grpc-js (compression, cancellation, streaming, status codes) and raw HTTP/2 frames
 * (content types, messages split anywhere across DATA frames).
 */
import t from 'tap';
import http2 from 'node:http2';
import fc from 'fast-check';
import * as grpc from '@grpc/grpc-js';
import { GrpcServer, GrpcStatusError, percentEncode } from '../../src/extauthz/grpc.ts';
import { addReflection, Health, indexDescriptors } from '../../src/extauthz/services.ts';
import { reflectionDescriptors } from '../../src/proto/ext-authz.ts';
import { bytesFields, readFields, stringField, varintField, writeBytes, writeVarint } from '../../src/proto/wire.ts';
import type { TestLike } from '../helpers/processes.ts';

const identity = (b: Buffer) => b;

async function startServer(t: TestLike, maxReceiveBytes = 1 << 20) {
  const server = new GrpcServer({ maxReceiveBytes });
  server.unary('test.Echo', 'Echo', (request) => request);
  server.unary('test.Echo', 'Later', (request) => new Promise((resolve) => setImmediate(() => resolve(request))));
  server.unary('test.Echo', 'Refuse', () => {
    throw new GrpcStatusError(7, 'not you: 100% ✗');
  });
  server.unary('test.Echo', 'Crash', () => Promise.reject(new Error('it broke')));
  const health = new Health({ '': 'SERVING', 'test.Echo': 'SERVING' });
  health.addTo(server);
  addReflection(server, indexDescriptors(reflectionDescriptors()), ['test.Echo']);
  const { port } = await server.listen('127.0.0.1', 0);
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    health.setAll('NOT_SERVING');
    health.endWatches();
    await server.close(1000);
  };
  t.teardown(close);
  return { port, health, close };
}

function client(t: TestLike, port: number, options: grpc.ChannelOptions = {}) {
  const Client = grpc.makeGenericClientConstructor({}, 'test');
  const c = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
    'grpc.max_send_message_length': 64 << 20,
    ...options,
  });
  t.teardown(() => c.close());
  const call = (path: string, body: Buffer, metadata = new grpc.Metadata()) =>
    new Promise<{ body?: Buffer; code: number; details: string }>((resolve) => {
      c.makeUnaryRequest<Buffer, Buffer>(path, identity, identity, body, metadata, (err, response) =>
        resolve(err ? { code: err.code, details: err.details } : { body: response!, code: 0, details: '' }),
      );
    });
  return { raw: c, call };
}

t.test('unary calls: answers, statuses, unknown names', async (t) => {
  const { port } = await startServer(t);
  const { call } = client(t, port);
  const body = Buffer.from('héllo');
  t.same(await call('/test.Echo/Echo', body), { body, code: 0, details: '' }, 'a synchronous answer');
  t.same(await call('/test.Echo/Later', body), { body, code: 0, details: '' }, 'an answer that waits');
  t.same(await call('/test.Echo/Echo', Buffer.alloc(0)), { body: Buffer.alloc(0), code: 0, details: '' }, 'empty');
  t.same(await call('/test.Echo/Refuse', body), { code: 7, details: 'not you: 100% ✗' }, 'a status, message intact');
  t.same(await call('/test.Echo/Crash', body), { code: 2, details: 'it broke' }, 'a failure is UNKNOWN');
  t.same(await call('/test.Echo/Nope', body), {
    code: 12,
    details: 'unknown method Nope for service test.Echo',
  });
  t.same(await call('/other.Service/Echo', body), { code: 12, details: 'unknown service other.Service' });
});

t.test('compressed requests are read; a compressed bomb is RESOURCE_EXHAUSTED', async (t) => {
  const { port } = await startServer(t, 1 << 20);
  for (const algorithm of [1, 2]) {
    // grpc-js: 1 deflate, 2 gzip
    const { call } = client(t, port, { 'grpc.default_compression_algorithm': algorithm });
    const body = Buffer.from('x'.repeat(50_000));
    const echoed = await call('/test.Echo/Echo', body);
    t.equal(echoed.code, 0, `algorithm ${algorithm}: answered`);
    t.ok(echoed.body?.equals(body), 'the decompressed message reached the handler');
    const bomb = await call('/test.Echo/Echo', Buffer.alloc(8 << 20));
    t.equal(bomb.code, 8, 'over the limit once decompressed');
    t.equal((await call('/test.Echo/Echo', body)).code, 0, 'the connection still serves');
  }
});

t.test('a message over the limit is refused from its length prefix; the server keeps serving', async (t) => {
  const { port } = await startServer(t, 1000);
  const { call } = client(t, port);
  const big = await call('/test.Echo/Echo', Buffer.alloc(5 << 20));
  t.equal(big.code, 8);
  t.equal(big.details, 'Received message larger than max (5242880 vs. 1000)');
  t.equal((await call('/test.Echo/Echo', Buffer.alloc(1000))).code, 0, 'exactly the limit is fine');
});

t.test('a cancelled call is dropped quietly and the connection goes on', async (t) => {
  const server = new GrpcServer({ maxReceiveBytes: 1 << 20 });
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  let reached!: () => void;
  const handlerReached = new Promise<void>((resolve) => (reached = resolve));
  server.unary('test.Echo', 'Hold', async (request) => {
    reached();
    await held;
    return request;
  });
  server.unary('test.Echo', 'Echo', (request) => request);
  const { port } = await server.listen('127.0.0.1', 0);
  t.teardown(() => server.close(500));
  const { raw, call } = client(t, port);
  const outcome = new Promise<number>((resolve) => {
    const c = raw.makeUnaryRequest<Buffer, Buffer>('/test.Echo/Hold', identity, identity, Buffer.from('a'), (err) =>
      resolve(err?.code ?? 0),
    );
    void handlerReached.then(() => c.cancel());
  });
  t.equal(await outcome, grpc.status.CANCELLED);
  release();
  t.equal((await call('/test.Echo/Echo', Buffer.from('b'))).code, 0, 'the next call is answered');
});

function rawRequest(
  port: number,
  headers: http2.OutgoingHttpHeaders,
  chunks: Buffer[],
): Promise<{ headers: http2.IncomingHttpHeaders; trailers: http2.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const req = session.request({ ':method': 'POST', 'content-type': 'application/grpc', te: 'trailers', ...headers });
    let responseHeaders: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const body: Buffer[] = [];
    req.on('response', (h) => (responseHeaders = h));
    req.on('trailers', (h) => (trailers = h));
    req.on('data', (c: Buffer) => body.push(c));
    req.on('end', () => {
      session.close();
      resolve({ headers: responseHeaders, trailers, body: Buffer.concat(body) });
    });
    req.on('error', reject);
    // One DATA frame per chunk: each write is flushed before the next.
    const writeNext = (i: number) => {
      if (i === chunks.length) return req.end();
      req.write(chunks[i], () => writeNext(i + 1));
    };
    writeNext(0);
  });
}

const framed = (message: Buffer) => {
  const out = Buffer.alloc(5 + message.length);
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
};

function unframe(body: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < body.length;) {
    const length = body.readUInt32BE(at + 1);
    out.push(body.subarray(at + 5, at + 5 + length));
    at += 5 + length;
  }
  return out;
}

t.test('HTTP the gRPC way: 405, 415, unknown encodings', async (t) => {
  const { port } = await startServer(t);
  const get = await rawRequest(port, { ':method': 'GET', ':path': '/test.Echo/Echo' }, []);
  t.equal(get.headers[':status'], 405);
  const text = await rawRequest(port, { ':path': '/test.Echo/Echo', 'content-type': 'text/plain' }, []);
  t.equal(text.headers[':status'], 415);
  t.equal(text.headers['grpc-status'], '3', 'INVALID_ARGUMENT, as grpc-go');
  t.equal(decodeURIComponent(String(text.headers['grpc-message'])), 'invalid gRPC request content-type "text/plain"');
  const json = await rawRequest(port, { ':path': '/test.Echo/Echo', 'content-type': 'application/grpc+json' }, []);
  t.equal(json.headers[':status'], 415, 'a codec other than protobuf is refused');
  const timeout = await rawRequest(port, { ':path': '/test.Echo/Echo', 'grpc-timeout': '18f6n' }, [
    framed(Buffer.from('hi')),
  ]);
  t.equal(timeout.headers[':status'], 400, 'a malformed grpc-timeout is HTTP 400');
  t.equal(timeout.headers['grpc-status'], '13');
  const timed = await rawRequest(port, { ':path': '/test.Echo/Echo', 'grpc-timeout': '200m' }, [
    framed(Buffer.from('hi')),
  ]);
  t.equal(timed.trailers['grpc-status'], '0', 'a well-formed one is served');
  const plus = await rawRequest(port, { ':path': '/test.Echo/Echo', 'content-type': 'application/grpc+proto' }, [
    framed(Buffer.from('hi')),
  ]);
  t.equal(plus.trailers['grpc-status'], '0', 'application/grpc+proto is gRPC');
  t.same(unframe(plus.body), [Buffer.from('hi')]);
  const snappy = await rawRequest(port, { ':path': '/test.Echo/Echo', 'grpc-encoding': 'snappy' }, [
    framed(Buffer.from('hi')),
  ]);
  t.equal(snappy.headers['grpc-status'], '12');
  t.equal(snappy.headers['grpc-accept-encoding'], 'identity,deflate,gzip');
  const two = await rawRequest(port, { ':path': '/test.Echo/Echo' }, [
    framed(Buffer.from('a')),
    framed(Buffer.from('b')),
  ]);
  t.equal(two.headers['grpc-status'], '13', 'a unary call with two messages is INTERNAL');
  t.equal(
    decodeURIComponent(String(two.headers['grpc-message'])),
    'cardinality violation: received multiple request messages',
  );
  const none = await rawRequest(port, { ':path': '/test.Echo/Echo' }, []);
  t.equal(
    decodeURIComponent(String(none.headers['grpc-message'])),
    'cardinality violation: received no request message from non-client-streaming RPC',
  );
  const watchNone = await rawRequest(port, { ':path': '/grpc.health.v1.Health/Watch' }, []);
  t.equal(watchNone.headers['grpc-status'], '13', 'a Watch without its request is INTERNAL, not a hung call');
  const watchTwo = await rawRequest(port, { ':path': '/grpc.health.v1.Health/Watch' }, [
    framed(writeBytes(1, '')),
    framed(writeBytes(1, 'test.Echo')),
  ]);
  t.equal(watchTwo.headers['grpc-status'], '13', 'a Watch with two requests is INTERNAL');
  const cut = await rawRequest(port, { ':path': '/test.Echo/Echo' }, [framed(Buffer.from('abc')).subarray(0, 6)]);
  t.equal(cut.headers['grpc-status'], '13', 'a request that ends inside a message is INTERNAL');
  const flagged = await rawRequest(port, { ':path': '/test.Echo/Echo' }, [Buffer.from([1, 0, 0, 0, 1, 0x41])]);
  t.equal(flagged.headers['grpc-status'], '13', 'the compressed flag without an encoding is INTERNAL');
});

t.test('messages split anywhere across DATA frames are read whole and in order (property)', async (t) => {
  const { port } = await startServer(t);
  const requestFor = (symbol: string) => writeBytes(4, symbol);
  const symbols = [
    'envoy.service.auth.v3.Authorization',
    'envoy.service.auth.v3.CheckRequest',
    'grpc.health.v1.Health',
    'no.such.Symbol',
  ];
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.constantFrom(...symbols), { minLength: 1, maxLength: 5 }),
      fc.array(fc.nat(), { maxLength: 8 }),
      async (asked, cuts) => {
        const stream = Buffer.concat(asked.map((s) => framed(requestFor(s))));
        const points = [...new Set(cuts.map((c) => c % stream.length))].sort((a, b) => a - b);
        const chunks: Buffer[] = [];
        let from = 0;
        for (const p of [...points, stream.length]) {
          if (p > from) chunks.push(stream.subarray(from, p));
          from = p;
        }
        const reply = await rawRequest(
          port,
          { ':path': '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo' },
          chunks,
        );
        const answers = unframe(reply.body).map(readFields);
        const echoed = answers.map((fields) => stringField(readFields(bytesFields(fields, 2)[0]!), 4));
        const found = answers.map((fields) => bytesFields(fields, 4).length === 1);
        return (
          reply.trailers['grpc-status'] === '0' &&
          JSON.stringify(echoed) === JSON.stringify(asked) &&
          JSON.stringify(found) === JSON.stringify(asked.map((s) => s !== 'no.such.Symbol'))
        );
      },
    ),
    { numRuns: 40 },
  );
});

t.test('reflection answers extensions from the real descriptors', async (t) => {
  const index = indexDescriptors(reflectionDescriptors());
  const { answerReflection } = await import('../../src/extauthz/services.ts');
  const numbers = readFields(answerReflection(index, [], writeBytes(6, 'google.protobuf.FieldOptions')));
  const response = readFields(bytesFields(numbers, 5)[0]!);
  const extensionNumbers = response.filter((f) => f.number === 2).map((f) => (f.type === 0 ? f.value : -1));
  t.ok(extensionNumbers.length > 0, 'FieldOptions has extensions in the served files (validate, udpa annotations)');
  const first = extensionNumbers[0]!;
  const byExtension = readFields(
    answerReflection(
      index,
      [],
      writeBytes(5, Buffer.concat([writeBytes(1, 'google.protobuf.FieldOptions'), writeVarint(2, first)])),
    ),
  );
  const files = bytesFields(readFields(bytesFields(byExtension, 4)[0]!), 1).map((f) => stringField(readFields(f), 1));
  t.ok(files.length >= 2, 'the declaring file and what it imports');
  t.ok(files.includes('google/protobuf/descriptor.proto'), 'including descriptor.proto');
  const missing = readFields(answerReflection(index, [], writeBytes(3, 'nope.proto')));
  t.equal(varintField(readFields(bytesFields(missing, 7)[0]!), 1), 5, 'an unknown file is NOT_FOUND');
});

t.test('health: Check per service, Watch sees the change to NOT_SERVING at shutdown', async (t) => {
  const { port, close } = await startServer(t);
  const { raw, call } = client(t, port);
  t.same(await call('/grpc.health.v1.Health/Check', writeBytes(1, 'test.Echo')), {
    body: writeVarint(1, 1),
    code: 0,
    details: '',
  });
  t.equal((await call('/grpc.health.v1.Health/Check', writeBytes(1, 'other'))).code, 5, 'unknown: NOT_FOUND');
  const seen: number[] = [];
  const ended = new Promise<number>((resolve) => {
    const watch = raw.makeServerStreamRequest<Buffer, Buffer>(
      '/grpc.health.v1.Health/Watch',
      identity,
      identity,
      writeBytes(1, ''),
    );
    watch.on('data', (m: Buffer) => {
      seen.push(varintField(readFields(m), 1)!);
      if (seen.length === 1) void close();
    });
    watch.on('status', (s: grpc.StatusObject) => resolve(s.code));
    watch.on('error', () => undefined);
  });
  t.equal(await ended, 0, 'the watch ends with OK at shutdown');
  t.same(seen, [1, 2], 'SERVING, then NOT_SERVING');
});

t.test('a client that does not read its answers stops the server reading its requests', async (t) => {
  const server = new GrpcServer({ maxReceiveBytes: 1 << 20 });
  let answered = 0;
  server.bidiStreaming('test.Echo', 'Big', (request, call) => {
    answered++;
    call.send(Buffer.alloc(100_000, request[0]));
  });
  server.unary('test.Echo', 'Echo', (request) => request);
  const { port } = await server.listen('127.0.0.1', 0);
  t.teardown(() => server.close(500));
  // The client's receive window is 0: nothing the server sends can be delivered yet.
  const session = http2.connect(`http://127.0.0.1:${port}`, { settings: { initialWindowSize: 0 } });
  t.teardown(() => session.destroy());
  const req = session.request({
    ':method': 'POST',
    ':path': '/test.Echo/Big',
    'content-type': 'application/grpc',
  });
  const requests = 2000;
  const received: Buffer[] = [];
  req.on('data', (c: Buffer) => received.push(c));
  const finished = new Promise<string | undefined>((resolve) =>
    req.on('trailers', (h) => resolve(h['grpc-status'] as string | undefined)),
  );
  await new Promise<void>((resolve) =>
    req.end(Buffer.concat(Array.from({ length: requests }, (_, i) => framed(Buffer.from([i % 256])))), resolve),
  );
  // Other calls are served meanwhile (each round trip lets the server handle what arrived).
  const { call } = client(t, port);
  for (let i = 0; i < 5; i++) t.equal((await call('/test.Echo/Echo', Buffer.from('x'))).code, 0);
  t.ok(answered < 10, `the server answered ${answered} of ${requests} requests, not all of them into memory`);
  session.settings({ initialWindowSize: 1 << 20 });
  t.equal(await finished, '0', 'once the client reads, every request is answered');
  t.equal(answered, requests);
  t.equal(unframe(Buffer.concat(received)).length, requests);
});

t.test('cancellations at a high rate never end the connection', async (t) => {
  const server = new GrpcServer({ maxReceiveBytes: 1 << 20 });
  server.unary('test.Echo', 'Hold', () => new Promise<Buffer>(() => undefined));
  server.unary('test.Echo', 'Echo', (request) => request);
  const { port } = await server.listen('127.0.0.1', 0);
  t.teardown(() => server.close(100));
  const session = http2.connect(`http://127.0.0.1:${port}`);
  t.teardown(() => session.destroy());
  let goaway = false;
  session.on('goaway', () => (goaway = true));
  const headers = { ':method': 'POST', ':path': '/test.Echo/Hold', 'content-type': 'application/grpc' };
  for (let i = 0; i < 1500; i++) {
    const req = session.request(headers);
    req.on('error', () => undefined);
    req.end(framed(Buffer.from('a')));
    req.close(http2.constants.NGHTTP2_CANCEL);
  }
  const echo = await new Promise<string | undefined>((resolve, reject) => {
    const req = session.request({ ...headers, ':path': '/test.Echo/Echo' });
    req.on('trailers', (h) => resolve(h['grpc-status'] as string | undefined));
    req.on('error', reject);
    req.on('data', () => undefined);
    req.end(framed(Buffer.from('b')));
  });
  t.equal(echo, '0', 'a call after 1,500 cancellations on the same connection is answered');
  t.notOk(goaway, 'the server did not send GOAWAY');
});

t.test('the wire reader skips groups and takes the last member of a oneof', async (t) => {
  // field 1 (string "a"), group 2 { field 3 varint 1, group 4 {} }, field 5 varint 7
  const message = Buffer.from([0x0a, 0x01, 0x61, 0x13, 0x18, 0x01, 0x23, 0x24, 0x14, 0x28, 0x07]);
  t.same(
    readFields(message).map((f) => f.number),
    [1, 5],
  );
  t.throws(() => readFields(Buffer.from([0x13, 0x18, 0x01])), /group 2 is not closed/);
  const index = indexDescriptors(reflectionDescriptors());
  const { answerReflection } = await import('../../src/extauthz/services.ts');
  // file_containing_symbol, then list_services: the list is answered.
  const both = readFields(
    answerReflection(index, ['a.B'], Buffer.concat([writeBytes(4, 'no.Such'), writeBytes(7, '')])),
  );
  t.equal(bytesFields(both, 6).length, 1, 'list_services, the last member, is answered');
  t.throws(
    () => answerReflection(index, [], writeBytes(3, Buffer.from([0xc3, 0x28]))),
    /not valid UTF-8/,
    'a file name that is not UTF-8 is refused',
  );
});

t.test('grpc-message is percent-encoded as the protocol asks', async (t) => {
  t.equal(percentEncode('plain text: ok'), 'plain text: ok');
  t.equal(percentEncode('100%'), '100%25');
  t.equal(percentEncode('a\nb ✗'), 'a%0Ab %E2%9C%97');
});
