// Writes the protobufjs JSON descriptor of Envoy's ext_authz v3 service (external_auth.proto
// and everything it imports, google/protobuf well-known types included) from the vendored
// .proto files, parsed exactly as @grpc/proto-loader parses them (camelCase field names).
// The sidecar loads this JSON with protobufjs/light at start: no .proto parser and no parse
// at run time. Called by scripts/vendor-protos.sh; usage: node scripts/proto-json.mjs PROTO_DIR OUT_FILE
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const [dir, out] = process.argv.slice(2);
if (dir === undefined || out === undefined) throw new Error('usage: node scripts/proto-json.mjs PROTO_DIR OUT_FILE');
const require = createRequire(import.meta.url);
const { addCommonProtos, loadProtosWithOptionsSync } = require('@grpc/proto-loader/build/src/util.js');
// The google/protobuf files proto-loader registers with protobufjs when it loads.
addCommonProtos();
const root = loadProtosWithOptionsSync(['envoy/service/auth/v3/external_auth.proto'], {
  includeDirs: [dir],
  keepCase: false,
});
writeFileSync(out, `${JSON.stringify(root.toJSON())}\n`);
