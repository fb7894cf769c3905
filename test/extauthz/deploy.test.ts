/**
 * deploy/envoy and deploy/istio agree with what the tests exercise: the ext_authz
 * port is Tollgate's default listener, the protocol is v3 (the vendored
 * envoy.service.auth.v3 the server registers), the body limit is Tollgate's own
 * proxy.maxRequestBytes, the PDP fails closed, and the Envoy bootstrap decodes and
 * validates with Envoy's own generated types and rules.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse, parseAllDocuments } from 'yaml';
import { parseConfig, splitHostPort } from '../../src/config/load.ts';
import { AUTHORIZATION_SERVICE, checkMethod } from '../../src/proto/ext-authz.ts';
import { ROOT, tempDir } from '../helpers/processes.ts';
import { buildStubClient } from './peers.ts';

const run = promisify(execFile);
t.setTimeout(600_000);

type Doc = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const defaults = parseConfig({});
const defaultPort = splitHostPort(defaults.extAuthz.listen).port;

async function yamlFile(path: string): Promise<Doc> {
  return parse(await readFile(join(ROOT, path), 'utf8')) as Doc;
}

t.test(
  "the Envoy bootstrap points ext_authz v3 at Tollgate's default listener, fails closed and sends the body",
  async (t) => {
    const envoy = await yamlFile('deploy/envoy/envoy.yaml');
    const hcm = envoy.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
    const filter = hcm.http_filters.find((f: Doc) => f.name === 'envoy.filters.http.ext_authz');
    t.ok(filter, 'has the ext_authz HTTP filter');
    const ext = filter.typed_config;
    t.equal(ext['@type'], 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz');
    t.equal(ext.transport_api_version, 'V3');
    t.equal(checkMethod().path, `/${AUTHORIZATION_SERVICE}/Check`);
    t.equal(
      AUTHORIZATION_SERVICE,
      'envoy.service.auth.v3.Authorization',
      'the server registers the v3 service Envoy calls with V3',
    );
    t.equal(ext.failure_mode_allow, false);
    t.equal(
      ext.with_request_body.max_request_bytes,
      defaults.proxy.maxRequestBytes,
      "same body limit as Tollgate's proxy",
    );
    t.equal(ext.with_request_body.allow_partial_message, true);
    t.equal(
      ext.with_request_body.pack_as_bytes,
      true,
      'raw_body, which the server parses (tested by the differential corpus)',
    );
    t.ok(Number.parseFloat(ext.grpc_service.timeout) > 0, 'a timeout is set');
    const clusterName = ext.grpc_service.envoy_grpc.cluster_name;
    const cluster = envoy.static_resources.clusters.find((c: Doc) => c.name === clusterName);
    const address = cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address;
    t.equal(
      `${address.address}:${address.port_value}`,
      defaults.extAuthz.listen,
      "Tollgate's default ext_authz listener",
    );
    t.ok(
      cluster.typed_extension_protocol_options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions']
        .explicit_http_config.http2_protocol_options,
      'HTTP/2 for gRPC',
    );
    t.equal(
      cluster.health_checks[0].grpc_health_check.service_name,
      AUTHORIZATION_SERVICE,
      'health-checks the service Tollgate reports SERVING',
    );
    t.equal(hcm.http_filters.at(-1).name, 'envoy.filters.http.router', 'the router comes last');
    t.match(
      hcm.access_log[0].typed_config.log_format.text_format_source.inline_string,
      '%DYNAMIC_METADATA(envoy.filters.http.ext_authz:decision_id)%',
      'logs the decision_id the server puts in dynamic_metadata',
    );
  },
);

t.test("the Envoy bootstrap decodes and validates with Envoy's own protos (go-control-plane)", async (t) => {
  const bin = await buildStubClient();
  const json = join(await tempDir('tollgate-envoy-'), 'envoy.json');
  await writeFile(json, JSON.stringify(await yamlFile('deploy/envoy/envoy.yaml')));
  const { stdout } = await run(bin, ['-bootstrap', json]);
  t.equal(stdout.trim(), 'bootstrap valid');
  // And a broken one is caught, so the check above means something.
  const broken = await yamlFile('deploy/envoy/envoy.yaml');
  broken.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.transport_api_version =
    'V4';
  await writeFile(json, JSON.stringify(broken));
  await t.rejects(run(bin, ['-bootstrap', json]));
});

t.test('the Istio provider, service entry and CUSTOM policy agree with each other and with Tollgate', async (t) => {
  const mesh = await yamlFile('deploy/istio/mesh-config.yaml');
  const provider = mesh.spec.meshConfig.extensionProviders.find((p: Doc) => p.envoyExtAuthzGrpc !== undefined);
  const grpcProvider = provider.envoyExtAuthzGrpc;
  t.equal(grpcProvider.port, defaultPort, "Tollgate's default ext_authz port");
  t.equal(grpcProvider.failOpen, false);
  t.equal(grpcProvider.includeRequestBodyInCheck.maxRequestBytes, defaults.proxy.maxRequestBytes);
  t.equal(grpcProvider.includeRequestBodyInCheck.packAsBytes, true);
  const entry = await yamlFile('deploy/istio/service-entry.yaml');
  t.same(entry.spec.hosts, [grpcProvider.service], "the service entry names the provider's service");
  t.equal(
    entry.spec.endpoints[0].address,
    splitHostPort(defaults.extAuthz.listen).host,
    "and resolves it to the pod's own Tollgate",
  );
  t.equal(entry.spec.ports[0].number, defaultPort);
  t.equal(entry.spec.ports[0].protocol, 'GRPC');
  const docs = parseAllDocuments(await readFile(join(ROOT, 'deploy/istio/authorization-policy.yaml'), 'utf8')).map(
    (d) => d.toJS() as Doc,
  );
  const policy = docs.find((d) => d.kind === 'AuthorizationPolicy')!;
  t.equal(policy.spec.action, 'CUSTOM');
  t.equal(policy.spec.provider.name, provider.name, 'the policy selects the provider defined in meshConfig');
});
