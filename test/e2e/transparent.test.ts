// Transparent mode end to end, in network namespaces this test creates and removes:
// an "agent" namespace whose outbound 80/443 is redirected to Tollgate by
// scripts/iptables-redirect.sh (the script the Kubernetes init container runs), and
// an "upstream" namespace with a tool server that counts what reaches it. A plain
// `curl https://tool.test/...` with no proxy settings is intercepted, decided and
// forwarded; a denied call never reaches the tool. No namespaces → the test fails.
import t from 'tap';
import { execFile } from 'node:child_process';
import { chmod, chown, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CLI, ROOT, tempDir } from '../helpers/processes.ts';
import { generateCa, generateLeafKey, issueLeaf } from '../../src/tls/ca.ts';
import { tollgateCa } from '../tls/fixtures.ts';
import { createNamespacePair, probeNetns, sh, spawnInNs } from './netns.ts';

const run = promisify(execFile);
const TOLLGATE_UID = 1337;

// The tool server in the upstream namespace: HTTPS on 443 and HTTP on 80, one line per request.
const TOOL_SERVER = `
import https from 'node:https';
import http from 'node:http';
import { readFileSync } from 'node:fs';
const [dir, ip, ip6] = process.argv.slice(2);
const handler = (req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    console.log('REQ ' + JSON.stringify({ method: req.method, host: req.headers.host, url: req.url, agent: req.headers['x-tollgate-agent'] ?? null, body }));
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ ok: true, url: req.url }));
  });
};
let up = 0;
const ready = () => { if (++up === 3) console.log('TOOL READY'); };
const tls = { cert: readFileSync(dir + '/tool.crt'), key: readFileSync(dir + '/tool.key') };
https.createServer(tls, handler).listen(443, ip, ready);
https.createServer(tls, handler).listen(443, ip6, ready);
http.createServer(handler).listen(80, ip, ready);
`;

t.test('transparent mode in network namespaces', async (t) => {
  const why = await probeNetns();
  if (why !== undefined) {
    t.fail(`network namespaces are not available, so transparent mode was NOT tested: ${why}`);
    return;
  }
  const ns = await createNamespacePair(t);
  const dir = await tempDir('tollgate-e2e-');
  await chmod(dir, 0o755);

  // The tool's own CA (Tollgate trusts it for upstream TLS) and Tollgate's interception CA.
  const upstreamCa = generateCa({ commonName: 'e2e tool CA' });
  const { loadCa } = await import('../../src/tls/ca.ts');
  const leafKey = generateLeafKey();
  await writeFile(
    join(dir, 'tool.crt'),
    issueLeaf(loadCa(upstreamCa.certPem, upstreamCa.keyPem), 'tool.test', leafKey.key).certPem,
  );
  await writeFile(join(dir, 'tool.key'), leafKey.keyPem);
  await writeFile(join(dir, 'tool-ca.crt'), upstreamCa.certPem, { mode: 0o644 });
  await writeFile(join(dir, 'tool-server.mjs'), TOOL_SERVER);
  const ca = await tollgateCa();
  await chmod(ca.dir, 0o755);
  await chown(ca.keyFile, TOLLGATE_UID, TOLLGATE_UID);

  const tool = spawnInNs(t, ns.upstream, [
    process.execPath,
    join(dir, 'tool-server.mjs'),
    dir,
    ns.upstreamIp,
    ns.upstreamIp6,
  ]);
  await tool.waitFor(/TOOL READY/);
  const toolRequests = () =>
    tool
      .output()
      .split('\n')
      .filter((l) => l.startsWith('REQ '))
      .map(
        (l) =>
          JSON.parse(l.slice(4)) as { method: string; host: string; url: string; agent: string | null; body: string },
      );

  const config = {
    logLevel: 'info',
    agent: { id: 'support-bot', role: 'support' },
    pdp: {
      data: {
        tollgate: {
          destinations: { 'tool.test': { description: 'e2e tool' } },
          role_destinations: { support: ['tool.test', 'payments.internal'] },
        },
      },
    },
    proxy: {
      listen: '127.0.0.1:15001',
      resolve: { 'tool.test:443': `${ns.upstreamIp}:443`, 'tool.test:80': `${ns.upstreamIp}:80` },
    },
    admin: { listen: '127.0.0.1:15000' },
    extAuthz: { enabled: false },
    transparent: { enabled: true, listen: '127.0.0.1:15002' },
    tls: { caCertFile: ca.certFile, caKeyFile: ca.keyFile, upstreamCaFiles: [join(dir, 'tool-ca.crt')] },
  };
  const configFile = join(dir, 'tollgate.json');
  await writeFile(configFile, JSON.stringify(config), { mode: 0o644 });
  const tollgate = spawnInNs(t, ns.agent, [process.execPath, CLI, 'run', '--config', configFile], {
    uid: TOLLGATE_UID,
  });
  await tollgate.waitFor(/transparent listener started/);
  await tollgate.waitFor(/listening: proxy/);

  await sh('ip', [
    'netns',
    'exec',
    ns.agent,
    'bash',
    join(ROOT, 'scripts/iptables-redirect.sh'),
    'install',
    '--proxy-port',
    '15002',
    '--uid',
    String(TOLLGATE_UID),
    '--ports',
    '80,443',
  ]);
  t.teardown(() =>
    sh('ip', ['netns', 'exec', ns.agent, 'bash', join(ROOT, 'scripts/iptables-redirect.sh'), 'remove']).catch(
      () => undefined,
    ),
  );

  // The agent: curl with no proxy settings; only the CA is trusted and names resolved like /etc/hosts.
  const curl = async (url: string, extra: string[] = []): Promise<{ code: number; status: string; body: string }> => {
    const host = new URL(url).hostname;
    const port = url.startsWith('https') ? 443 : 80;
    const args = [
      'netns',
      'exec',
      ns.agent,
      'curl',
      '-sS',
      '-m',
      '10',
      '--noproxy',
      '*',
      '--cacert',
      ca.certFile,
      ...(extra.includes('--resolve') ? [] : ['--resolve', `${host}:${port}:${ns.upstreamIp}`]),
      '-o',
      '-',
      '-w',
      '\n%{http_code}',
      ...extra,
      url,
    ];
    try {
      const { stdout } = await run('ip', args, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
      const lines = stdout.trimEnd().split('\n');
      return { code: 0, status: lines.pop()!, body: lines.join('\n') };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: e.code ?? -1, status: (e.stdout ?? '').trim().split('\n').pop() ?? '', body: e.stderr ?? '' };
    }
  };

  t.test('intercepts, decides and forwards an allowed HTTPS call', async (t) => {
    const before = toolRequests().length;
    const r = await curl('https://tool.test/v1/lookup?id=7');
    t.equal(r.status, '200', `curl: ${r.body}`);
    const got = toolRequests();
    t.equal(got.length, before + 1, 'the tool received exactly one request');
    t.match(
      got.at(-1),
      { method: 'GET', host: 'tool.test', url: '/v1/lookup?id=7', agent: 'support-bot' },
      'decided and mutated at L7 (policy header present)',
    );
  });

  t.test('denies a $501 refund inside TLS with no proxy settings', async (t) => {
    const before = toolRequests().length;
    const r = await curl('https://payments.internal/v1/refunds', [
      '-H',
      'content-type: application/json',
      '--data-binary',
      JSON.stringify({ order: 'o-1', amount: 501 }),
    ]);
    t.equal(r.status, '403', `curl: ${r.body}`);
    t.match(r.body, /refund of 501 exceeds the support limit of 500/);
    t.equal(toolRequests().length, before, 'the refund never reached the tool');
  });

  t.test('forwards an allowed plain HTTP call decided on its Host', async (t) => {
    const before = toolRequests().length;
    const r = await curl('http://tool.test/plain');
    t.equal(r.status, '200', `curl: ${r.body}`);
    t.equal(toolRequests().length, before + 1);
    t.equal(toolRequests().at(-1)!.agent, 'support-bot');
  });

  t.test('never lets a denied call reach the tool', async (t) => {
    const before = toolRequests().length;
    const tls = await curl('https://blocked.test/steal');
    t.not(tls.status, '200', 'TLS to an unregistered name is refused');
    const plain = await curl('http://blocked.test/steal');
    t.equal(plain.status, '403', 'plain HTTP to an unregistered name gets the deny reply');
    t.match(plain.body, /not registered/);
    // No SNI (curl sends none for an IP literal) and no Host the proxy can read: the policy sees 10.x:443.
    const bare = await curl(`https://${ns.upstreamIp}/ip`, ['-k']);
    t.not(bare.status, '200', 'an IP without SNI is decided on the original IP:port and denied');
    t.equal(toolRequests().length, before, 'the tool received nothing');
  });

  t.test('fails closed over IPv6: the captured ports are refused, not bypassed', async (t) => {
    const before = toolRequests().length;
    const v6 = await curl('https://tool.test/v6', ['-6', '--resolve', `tool.test:443:[${ns.upstreamIp6}]`]);
    t.not(v6.status, '200', `curl over IPv6: ${v6.body}`);
    t.equal(toolRequests().length, before, 'the tool received nothing over IPv6');
  });

  t.test('logs nothing alarming and keeps serving', async (t) => {
    const r = await curl('https://tool.test/again');
    t.equal(r.status, '200');
    t.notMatch(tollgate.output(), /"level":(50|60)/, 'no error-level log lines');
    t.notMatch(tollgate.output(), /SO_ORIGINAL_DST unavailable/, 'the original destination was read');
  });

  t.test('the script removes every rule it installed', async (t) => {
    const scratch = `${ns.agent}x`;
    await sh('ip', ['netns', 'add', scratch]);
    t.teardown(() => sh('ip', ['netns', 'del', scratch]).catch(() => undefined));
    const script = join(ROOT, 'scripts/iptables-redirect.sh');
    const empty = await sh('ip', ['netns', 'exec', scratch, 'iptables', '-t', 'nat', '-S']);
    await sh('ip', ['netns', 'exec', scratch, 'bash', script, 'install']);
    await sh('ip', ['netns', 'exec', scratch, 'bash', script, 'install']);
    const rules = await sh('ip', ['netns', 'exec', scratch, 'iptables', '-t', 'nat', '-S']);
    t.equal(
      rules.split('\n').filter((l) => l === '-A OUTPUT -p tcp -j TOLLGATE_OUTPUT').length,
      1,
      'install is idempotent',
    );
    t.match(rules, /--uid-owner 1337 -j RETURN/);
    t.match(rules, /--dport 15000 -j RETURN/);
    t.match(rules, /--dport 9191 -j RETURN/);
    t.match(rules, /REDIRECT --to-ports 15002/);
    const rules6 = await sh('ip', ['netns', 'exec', scratch, 'ip6tables', '-S']);
    t.match(
      rules6,
      /TOLLGATE_OUTPUT6 -p tcp -m multiport --dports 80,443 -j REJECT --reject-with tcp-reset/,
      'IPv6 refused, not bypassed',
    );
    await sh('ip', ['netns', 'exec', scratch, 'bash', script, 'remove']);
    t.equal(await sh('ip', ['netns', 'exec', scratch, 'iptables', '-t', 'nat', '-S']), empty);
    t.notMatch(await sh('ip', ['netns', 'exec', scratch, 'ip6tables', '-S']), /TOLLGATE/);
  });
});
