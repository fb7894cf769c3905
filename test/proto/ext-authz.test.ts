import t from 'tap';
import { checkMethod, decodeCheckRequest, encodeCheckRequest, reflectionDescriptors, structToJson, jsonToStruct } from '../../src/proto/ext-authz.ts';
import { inputFromCheckRequest } from '../../src/input/build.ts';

const agent = { id: 'a', role: 'r', labels: {} };

t.test('decodes a CheckRequest into opa-envoy-plugin\'s protomap document', async (t) => {
  // Explicitly encoded zero values (a non-Go encoder may send them) are not "populated" for protoreflect.
  const wire = checkMethod().requestSerialize({
    attributes: {
      source: { address: { socketAddress: { address: '', portValue: 0 } }, principal: '' },
      request: { http: { method: 'GET', path: '/a', size: 0, headers: { empty: '', b: 'x' }, rawBody: '' } },
      contextExtensions: {},
      metadataContext: { filterMetadata: { ns: { fields: { k: { stringValue: 'v' }, n: { nullValue: 0 } } } } },
    },
  });
  t.same(decodeCheckRequest(wire), {
    attributes: {
      source: { address: { socketAddress: { portValue: 0 } } },
      request: { http: { method: 'GET', path: '/a', headers: { empty: '', b: 'x' } } },
      metadataContext: { filterMetadata: { ns: { k: 'v', n: null } } },
    },
  }, 'zero scalars dropped except oneof members; map entries kept even when empty; Struct as JSON');
});

t.test('rejects invalid UTF-8 in a string field but accepts a real U+FFFD', async (t) => {
  const good = checkMethod().requestSerialize({ attributes: { request: { http: { body: 'a\uFFFDb' } } } });
  t.equal(decodeCheckRequest(good).attributes?.request?.http?.body, 'a\uFFFDb');
  const bad = Buffer.from(good);
  bad[bad.indexOf(0xef)] = 0xff;
  t.throws(() => decodeCheckRequest(bad), { code: 'TG_ERR_BAD_REQUEST' });
});

t.test('encodes a policy input\'s attributes back into the same CheckRequest', async (t) => {
  const doc = {
    attributes: {
      request: { time: { seconds: 5, nanos: 6 }, http: { method: 'POST', path: '/p?q=1', headers: { 'content-type': 'application/json' }, rawBody: Buffer.from('{"a":1}').toString('base64') } },
      routeMetadataContext: { filterMetadata: { ns: { list: [1, 'x', true, null], obj: { y: 2 } } } },
    },
  };
  const input = inputFromCheckRequest(doc, agent);
  t.same(input.parsed_body, { a: 1 }, 'raw_body is parsed');
  t.same(decodeCheckRequest(encodeCheckRequest(input as never)), doc, 'a round trip through the wire changes nothing');
  t.same(decodeCheckRequest(encodeCheckRequest({})), {});
});

t.test('Struct and JSON convert both ways', async (t) => {
  const value = { a: 1, b: 'x', c: [true, null, { d: [] }] };
  t.same(structToJson(jsonToStruct(value)), value);
  t.throws(() => jsonToStruct({ f: () => 1 }), { code: 'TG_ERR_POLICY_RESULT' });
});

t.test('reflection serves Envoy\'s own files, by their real names', async (t) => {
  const files = reflectionDescriptors();
  const names = files.map((f) => f.subarray(2, 2 + f[1]!).toString('utf8'));
  t.ok(names.includes('envoy/service/auth/v3/external_auth.proto'), names.join(', '));
  t.ok(names.includes('grpc/health/v1/health.proto'));
});

t.test('the JSON descriptor reads and writes every message as the .proto files parsed by proto-loader do (property)', async (t) => {
  const fc = (await import('fast-check')).default;
  const protoLoader = await import('@grpc/proto-loader');
  const { PROTO_DIR, AUTHORIZATION_SERVICE } = await import('../../src/proto/ext-authz.ts');
  const reference = protoLoader.loadSync(['envoy/service/auth/v3/external_auth.proto'], {
    includeDirs: [PROTO_DIR],
    keepCase: false,
    longs: Number,
    enums: Number,
    bytes: String,
    defaults: false,
    arrays: false,
    objects: false,
    oneofs: false,
  });
  const check = (reference[AUTHORIZATION_SERVICE] as Record<string, { requestSerialize(m: unknown): Buffer; requestDeserialize(b: Buffer): unknown; responseSerialize(m: unknown): Buffer; responseDeserialize(b: Buffer): unknown }>).Check!;
  const ours = checkMethod();
  const text = fc.string({ unit: 'grapheme', maxLength: 12 });
  const peer = fc.record(
    {
      address: fc.record({ socketAddress: fc.record({ address: text, portValue: fc.nat(65535) }, { requiredKeys: [] }) }),
      principal: text,
      labels: fc.dictionary(text, text, { maxKeys: 3 }),
      certificate: text,
    },
    { requiredKeys: [] },
  );
  const http = fc.record(
    {
      id: text,
      method: text,
      headers: fc.dictionary(text, text, { maxKeys: 4 }),
      path: text,
      host: text,
      scheme: text,
      query: text,
      fragment: text,
      size: fc.integer({ min: -1, max: 2 ** 40 }),
      protocol: text,
      body: text,
      rawBody: fc.base64String({ maxLength: 16 }),
      headerMap: fc.record({ headers: fc.array(fc.record({ key: text, value: text, rawValue: fc.base64String({ maxLength: 8 }) }, { requiredKeys: [] }), { maxLength: 3 }) }),
    },
    { requiredKeys: [] },
  );
  const request = fc.record({
    attributes: fc.record(
      {
        source: peer,
        destination: peer,
        request: fc.record({ time: fc.record({ seconds: fc.nat(2 ** 31), nanos: fc.nat(999_999_999) }), http }, { requiredKeys: [] }),
        contextExtensions: fc.dictionary(text, text, { maxKeys: 3 }),
        metadataContext: fc.record({ filterMetadata: fc.dictionary(text, fc.record({ fields: fc.dictionary(text, fc.record({ stringValue: text }), { maxKeys: 2 }) }), { maxKeys: 2 }) }),
        tlsSession: fc.record({ sni: text }),
      },
      { requiredKeys: [] },
    ),
  });
  // Both sides encode the same bytes and read them back to the same object.
  const sameReading = (
    arbitrary: import('fast-check').Arbitrary<Record<string, unknown>>,
    serialize: [(m: unknown) => Buffer, (m: never) => Buffer],
    deserialize: [(b: Buffer) => unknown, (b: Buffer) => unknown],
  ) =>
    fc.assert(
      fc.property(arbitrary, (message) => {
        const wire = serialize[0](message);
        t.same(serialize[1](message as never), wire);
        t.same(deserialize[1](wire), deserialize[0](wire));
        return true;
      }),
      { numRuns: 200 },
    );
  sameReading(request, [check.requestSerialize, ours.requestSerialize], [check.requestDeserialize, ours.requestDeserialize]);
  const response = fc.record(
    {
      status: fc.record({ code: fc.nat(16), message: text }, { requiredKeys: [] }),
      deniedResponse: fc.record({ status: fc.record({ code: fc.constantFrom(0, 200, 403, 500) }), body: text, headers: fc.array(fc.record({ header: fc.record({ key: text, value: text }) }), { maxLength: 2 }) }, { requiredKeys: [] }),
      dynamicMetadata: fc.record({ fields: fc.dictionary(text, fc.record({ numberValue: fc.double({ noNaN: true }) }), { maxKeys: 2 }) }),
    },
    { requiredKeys: [] },
  );
  sameReading(response, [check.responseSerialize, ours.responseSerialize], [check.responseDeserialize, ours.responseDeserialize]);
});
