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
