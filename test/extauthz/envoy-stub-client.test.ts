/**
 * Envoy's own generated Go stubs (github.com/envoyproxy/go-control-plane/envoy, built
 * from test/fixtures/envoy-stub-client by the real Go toolchain) call Tollgate's
 * ext_authz server: the wire format is checked by code Tollgate did not write, and
 * every CheckResponse must pass Envoy's protoc-gen-validate rules (ValidateAll).
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { buildStubClient, startTollgateExtAuthz } from './peers.ts';

const run = promisify(execFile);
// A cold Go module cache downloads go-control-plane and grpc before compiling.
t.setTimeout(600_000);

interface Line {
  name: string;
  status?: string;
  grpc_code?: string;
  status_code?: number;
  kind?: string;
  http_status?: number;
  valid?: boolean;
  validate_error?: string;
  response?: {
    okResponse?: { headers?: Array<{ header: { key: string; value: string } }>; headersToRemove?: string[] };
    dynamicMetadata?: { decision_id?: string };
  };
}

t.test(
  "a client built from Envoy's generated stubs gets valid CheckResponses with the policy's decisions",
  async (t) => {
    const build = buildStubClient();
    const { extAuthzPort } = await startTollgateExtAuthz(t, { agent: { id: 'support-bot', role: 'support' } });
    const bin = await build;
    const { stdout } = await run(bin, ['-addr', `127.0.0.1:${extAuthzPort}`], { maxBuffer: 16 << 20 });
    const lines = new Map(
      stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Line)
        .map((l) => [l.name, l]),
    );

    t.equal(lines.get('health')?.status, 'SERVING', 'grpc.health.v1 reports the Authorization service serving');
    for (const [name, line] of lines) {
      if (name === 'health') continue;
      t.equal(line.grpc_code, 'OK', `${name}: a CheckResponse, not a gRPC error`);
      t.ok(line.valid, `${name}: passes Envoy's validation rules ${line.validate_error ?? ''}`);
    }
    const allow = lines.get('allow')!;
    t.equal(allow.status_code, 0);
    t.equal(allow.kind, 'ok');
    t.same(
      allow.response?.okResponse?.headers,
      [{ header: { key: 'x-tollgate-agent', value: 'support-bot' } }],
      "the seed policy's header reaches Envoy",
    );
    t.same(allow.response?.okResponse?.headersToRemove, ['x-tollgate-debug']);
    t.match(allow.response?.dynamicMetadata?.decision_id, /^[0-9a-f-]{36}$/);
    t.match(lines.get('deny'), { status_code: 7, kind: 'denied', http_status: 403 });
    t.match(lines.get('refund-ok'), { status_code: 0, kind: 'ok' });
    t.match(lines.get('refund-over'), { status_code: 7, kind: 'denied', http_status: 403 });
    t.match(lines.get('raw-body'), { status_code: 0, kind: 'ok' }, 'raw_body (pack_as_bytes) is parsed');
    t.match(lines.get('parse-error'), { status_code: 7, kind: 'denied', http_status: 400 });
    t.match(lines.get('large-body'), { status_code: 0, kind: 'ok' }, 'a 1 MiB body is parsed');
    t.match(
      lines.get('empty'),
      { status_code: 7, kind: 'denied', http_status: 403 },
      'an empty CheckRequest is denied, not an error',
    );
  },
);
