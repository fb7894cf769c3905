// deploy/kubernetes agrees with Tollgate: the ConfigMap's tollgate.yaml passes the real
// config loader and its ports are the documented defaults; the sidecar's ports, probes
// and mounts match that config; the init container runs the same iptables script with
// the transparent port, Tollgate's uid and the excluded ports; the agent trusts only
// the CA certificate. The probe paths are checked against a real Tollgate.
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { parseConfig, splitHostPort } from '../../src/config/load.ts';
import { ROOT, startTollgate } from '../helpers/processes.ts';
import { tollgateCa } from '../tls/fixtures.ts';

const DIR = join(ROOT, 'deploy/kubernetes');

async function docs(file: string): Promise<any[]> {
  const text = await readFile(join(DIR, file), 'utf8');
  const all = parseAllDocuments(text);
  for (const d of all) if (d.errors.length > 0) throw new Error(`${file}: ${d.errors[0]!.message}`);
  return all.map((d) => d.toJS());
}

const portOf = (listen: string): number => splitHostPort(listen).port;

t.test('deploy/kubernetes', async (t) => {
  const [kustomization] = await docs('kustomization.yaml');
  const [configMap] = await docs('configmap.yaml');
  const [patch] = await docs('sidecar-patch.yaml');
  const [secret] = await docs('secret-ca.example.yaml');
  const [example] = await docs('example-agent.yaml');
  const defaults = parseConfig({});
  const config = parseConfig(parseYaml(configMap.data['tollgate.yaml']), {}, 'configmap tollgate.yaml');
  const pod = patch.spec.template.spec;
  const byName = (list: any[], name: string) => list.find((c) => c.name === name);
  const sidecar = byName(pod.containers, 'tollgate');
  const init = byName(pod.initContainers, 'tollgate-init');
  const agent = byName(pod.containers, 'agent');

  t.test('the kustomization is a Component patching opted-in Deployments', async (t) => {
    t.equal(kustomization.kind, 'Component');
    t.same(kustomization.resources, ['configmap.yaml']);
    t.equal(kustomization.patches[0].path, 'sidecar-patch.yaml');
    const [key, value] = kustomization.patches[0].target.labelSelector.split('=');
    t.equal(example.metadata.labels[key], value, 'the example agent carries the opt-in label');
    t.ok(byName(example.spec.template.spec.containers, 'agent'), 'the example agent container is named "agent"');
  });

  t.test('the ConfigMap config uses the default ports and enables what the pod relies on', async (t) => {
    t.equal(portOf(config.proxy.listen), portOf(defaults.proxy.listen));
    t.equal(portOf(config.admin.listen), portOf(defaults.admin.listen));
    t.equal(portOf(config.extAuthz.listen), portOf(defaults.extAuthz.listen));
    t.equal(portOf(config.transparent.listen), portOf(defaults.transparent.listen));
    t.equal(splitHostPort(config.transparent.listen).host, '127.0.0.1', 'REDIRECT from OUTPUT lands on 127.0.0.1');
    t.equal(splitHostPort(config.admin.listen).host, '0.0.0.0', 'the kubelet probes the pod IP');
    t.ok(config.transparent.enabled);
  });

  t.test('the sidecar exposes those ports and probes the admin port', async (t) => {
    const ports = Object.fromEntries(sidecar.ports.map((p: any) => [p.name, p.containerPort]));
    t.same(ports, {
      'tg-proxy': portOf(config.proxy.listen),
      'tg-admin': portOf(config.admin.listen),
      'tg-transparent': portOf(config.transparent.listen),
      'tg-extauthz': portOf(config.extAuthz.listen),
    });
    for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe'])
      t.equal(sidecar[probe].httpGet.port, portOf(config.admin.listen), probe);
    t.equal(sidecar.readinessProbe.httpGet.path, '/readyz');
    t.equal(sidecar.livenessProbe.httpGet.path, '/healthz');
    t.ok(
      sidecar.resources.requests.cpu && sidecar.resources.requests.memory && sidecar.resources.limits.memory,
      'resource requests and limits',
    );
  });

  t.test('the sidecar mounts its config, CA and policies where the config points', async (t) => {
    const mounts = Object.fromEntries(sidecar.volumeMounts.map((m: any) => [m.name, m.mountPath]));
    const configArg = sidecar.command[sidecar.command.indexOf('--config') + 1];
    t.equal(configArg, `${mounts['tollgate-config']}/tollgate.yaml`);
    t.equal(config.tls.caCertFile, `${mounts['tollgate-ca']}/ca.crt`);
    t.equal(config.tls.caKeyFile, `${mounts['tollgate-ca']}/ca.key`);
    t.equal((config.pdp as { bundle: string }).bundle, `${mounts['tollgate-policies']}/bundle.tar.gz`);
    const volumes = Object.fromEntries(pod.volumes.map((v: any) => [v.name, v]));
    t.equal(volumes['tollgate-config'].configMap.name, configMap.metadata.name);
    t.equal(volumes['tollgate-ca'].secret.secretName, secret.metadata.name);
    t.same(Object.keys(secret.stringData).sort(), ['ca.crt', 'ca.key']);
    t.equal(volumes['tollgate-ca'].secret.defaultMode & 0o007, 0, 'the key is not world-readable');
    t.equal(
      pod.securityContext.fsGroup,
      sidecar.securityContext.runAsUser,
      'the sidecar user can read the key through its group',
    );
  });

  t.test('the init container installs the same iptables rules the e2e test uses', async (t) => {
    t.same(
      init.command.slice(0, 2),
      ['bash', '/app/scripts/iptables-redirect.sh'],
      'the script shipped in the image at scripts/iptables-redirect.sh',
    );
    t.equal(init.command[2], 'install');
    const arg = (name: string) => init.args[init.args.indexOf(name) + 1];
    t.equal(Number(arg('--proxy-port')), portOf(config.transparent.listen));
    t.equal(Number(arg('--uid')), sidecar.securityContext.runAsUser, "Tollgate's own traffic is excluded by its uid");
    const excluded = arg('--exclude-ports').split(',').map(Number);
    for (const listen of [config.admin.listen, config.proxy.listen, config.transparent.listen, config.extAuthz.listen])
      t.ok(excluded.includes(portOf(listen)), `port ${portOf(listen)} excluded`);
    t.same([...init.securityContext.capabilities.add].sort(), ['NET_ADMIN', 'NET_RAW']);
    const script = await readFile(join(ROOT, 'scripts/iptables-redirect.sh'), 'utf8');
    for (const option of ['--proxy-port', '--uid', '--ports', '--exclude-ports'])
      t.match(script, option, `the script takes ${option}`);
  });

  t.test('the agent trusts the CA certificate and never sees the key', async (t) => {
    const env = Object.fromEntries(agent.env.map((e: any) => [e.name, e.value]));
    const trust = agent.volumeMounts.find((m: any) => m.name === 'tollgate-trust').mountPath;
    for (const name of ['NODE_EXTRA_CA_CERTS', 'SSL_CERT_FILE', 'REQUESTS_CA_BUNDLE'])
      t.equal(env[name], `${trust}/ca.crt`, name);
    const volume = pod.volumes.find((v: any) => v.name === 'tollgate-trust');
    t.same(volume.secret.items, [{ key: 'ca.crt', path: 'ca.crt' }]);
    t.notOk(agent.volumeMounts.some((m: any) => m.name === 'tollgate-ca'));
  });

  t.test('a Tollgate started from the ConfigMap config answers the probes', async (t) => {
    const ca = await tollgateCa();
    const doc = parseYaml(configMap.data['tollgate.yaml']);
    doc.pdp.bundle = '';
    doc.tls.caCertFile = ca.certFile;
    doc.tls.caKeyFile = ca.keyFile;
    // Port 0 everywhere: the test must not collide with anything on the machine.
    for (const section of ['proxy', 'admin', 'extAuthz', 'transparent']) doc[section].listen = '127.0.0.1:0';
    const tg = await startTollgate(t, doc);
    for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
      const res = await fetch(`http://127.0.0.1:${tg.adminPort}${sidecar[probe].httpGet.path}`);
      t.equal(res.status, 200, probe);
    }
  });
});
