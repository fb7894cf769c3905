// Agents as users have them — curl, Node fetch (undici EnvHttpProxyAgent), Python
// requests and httpx — reach an allowed HTTPS tool through Tollgate's CONNECT +
// TLS interception with only proxy env vars and the CA trusted, and are refused on a
// denied one; a $501 refund inside TLS is denied, so the policy saw method, path and body.
import t from 'tap';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pathToFileURL } from 'node:url';
import { ROOT, startTollgate, tempDir } from '../helpers/processes.ts';
import { resolveTo, startHttpsUpstream, tollgateCa } from './fixtures.ts';

const run = promisify(execFile);

interface Outcome {
  status: number;
  body: string;
}

// undici is imported by absolute URL: the script lives in a temp dir outside node_modules' reach.
const NODE_CLIENT = `
const { EnvHttpProxyAgent, fetch } = await import(process.env.UNDICI_URL);
const [url, method, body] = process.argv.slice(2);
const dispatcher = new EnvHttpProxyAgent();
try {
  const r = await fetch(url, { method, dispatcher, ...(body ? { body, headers: { 'content-type': 'application/json' } } : {}) });
  console.log(JSON.stringify({ status: r.status, body: await r.text() }));
} catch (err) {
  console.log(JSON.stringify({ status: 0, body: String(err.cause?.message ?? err.message) }));
}
`;

const PY_CLIENT = `
import json, sys
which, url, method, body = sys.argv[1], sys.argv[2], sys.argv[3], (sys.argv[4] if len(sys.argv) > 4 else None)
kw = {"data": body, "headers": {"content-type": "application/json"}} if body else {}
try:
    if which == "requests":
        import requests
        r = requests.request(method, url, timeout=10, **kw)
        print(json.dumps({"status": r.status_code, "body": r.text}))
    else:
        import httpx
        with httpx.Client(trust_env=True, timeout=10) as c:
            r = c.request(method, url, content=body, headers=kw.get("headers"))
            print(json.dumps({"status": r.status_code, "body": r.text}))
except Exception as e:
    print(json.dumps({"status": 0, "body": repr(e)}))
`;

t.test('HTTPS clients through CONNECT + TLS interception', async (t) => {
  const ca = await tollgateCa();
  const upstream = await startHttpsUpstream(t);
  const tg = await startTollgate(t, {
    agent: { id: 'support-bot', role: 'support' },
    proxy: { resolve: resolveTo(upstream.port) },
    tls: { caCertFile: ca.certFile, caKeyFile: ca.keyFile, upstreamCaFiles: [upstream.caFile] },
  });
  const dir = await tempDir();
  await writeFile(join(dir, 'client.mjs'), NODE_CLIENT);
  await writeFile(join(dir, 'client.py'), PY_CLIENT);
  const proxy = `http://127.0.0.1:${tg.proxyPort}`;
  // Only what an agent's environment would carry: proxy variables and the CA.
  const env: Record<string, string> = {
    ...process.env,
    HTTPS_PROXY: proxy,
    https_proxy: proxy,
    HTTP_PROXY: proxy,
    NO_PROXY: '',
    no_proxy: '',
  } as Record<string, string>;
  delete env.NODE_OPTIONS;

  const clients: Record<string, (url: string, method: string, body?: string) => Promise<Outcome>> = {
    curl: async (url, method, body) => {
      const args = ['-sS', '-m', '15', '--cacert', ca.certFile, '-X', method, '-o', '-', '-w', '\n%{http_code}', url];
      if (body) args.push('-H', 'content-type: application/json', '--data-binary', body);
      const r = await run('curl', args, { env }).catch((err: { stdout?: string; stderr?: string }) => ({
        stdout: `${err.stderr ?? ''}\n000`,
        stderr: '',
      }));
      const lines = r.stdout.trimEnd().split('\n');
      return { status: Number(lines.pop()), body: lines.join('\n') };
    },
    'node fetch (EnvHttpProxyAgent, NODE_EXTRA_CA_CERTS)': async (url, method, body) => {
      const r = await run(process.execPath, [join(dir, 'client.mjs'), url, method, ...(body ? [body] : [])], {
        env: {
          ...env,
          NODE_EXTRA_CA_CERTS: ca.certFile,
          UNDICI_URL: pathToFileURL(join(ROOT, 'node_modules/undici/index.js')).href,
        },
        cwd: ROOT,
      });
      return JSON.parse(r.stdout) as Outcome;
    },
    'python requests (REQUESTS_CA_BUNDLE)': async (url, method, body) => {
      const r = await run('python3', [join(dir, 'client.py'), 'requests', url, method, ...(body ? [body] : [])], {
        env: { ...env, REQUESTS_CA_BUNDLE: ca.certFile },
      });
      return JSON.parse(r.stdout) as Outcome;
    },
    'python httpx (SSL_CERT_FILE)': async (url, method, body) => {
      const r = await run('python3', [join(dir, 'client.py'), 'httpx', url, method, ...(body ? [body] : [])], {
        env: { ...env, SSL_CERT_FILE: ca.certFile },
      });
      return JSON.parse(r.stdout) as Outcome;
    },
  };

  // Agents that offer ALPN h2 (curl does by default) get HTTP/2 from Tollgate, decided the same way.
  t.test('curl speaks HTTP/2 to Tollgate inside the tunnel', async (t) => {
    const ok = await run(
      'curl',
      [
        '-sS',
        '-m',
        '15',
        '--http2',
        '--cacert',
        ca.certFile,
        '-o',
        '/dev/null',
        '-w',
        '%{http_version} %{http_code}',
        'https://payments.internal/v1/refunds/r-9',
      ],
      { env },
    );
    t.equal(ok.stdout, '2 200');
    const denied = await run(
      'curl',
      [
        '-sS',
        '-m',
        '15',
        '--http2',
        '--cacert',
        ca.certFile,
        '-o',
        '/dev/null',
        '-w',
        '%{http_version} %{http_code}',
        '-H',
        'content-type: application/json',
        '--data-binary',
        '{"amount":900}',
        'https://payments.internal/v1/refunds',
      ],
      { env },
    );
    t.equal(denied.stdout, '2 403');
  });

  // An h2 upload of unknown length has no content-length: the policy still sees the body.
  t.test('curl over HTTP/2 streaming a body of unknown length', async (t) => {
    const upload = (amount: number) =>
      new Promise<string>((resolve, reject) => {
        const child = execFile(
          'curl',
          [
            '-sS',
            '-m',
            '15',
            '--http2',
            '--cacert',
            ca.certFile,
            '-X',
            'POST',
            '-H',
            'content-type: application/json',
            '-T',
            '-',
            '-o',
            '/dev/null',
            '-w',
            '%{http_version} %{http_code}',
            'https://payments.internal/v1/refunds',
          ],
          { env },
          (err, stdout) => (err ? reject(err) : resolve(stdout)),
        );
        child.stdin!.end(JSON.stringify({ order: 'o-2', amount }));
      });
    const before = upstream.received.length;
    t.equal(await upload(120), '2 200');
    t.equal(
      upstream.received.at(-1)!.body,
      JSON.stringify({ order: 'o-2', amount: 120 }),
      'the streamed body reached the tool',
    );
    t.equal(await upload(501), '2 403');
    t.equal(upstream.received.length, before + 1);
  });

  for (const [name, call] of Object.entries(clients)) {
    t.test(name, async (t) => {
      const before = upstream.received.length;
      const ok = await call('https://payments.internal/v1/refunds/r-1', 'GET');
      t.equal(ok.status, 200, `allowed GET: ${ok.body}`);
      t.equal(upstream.received.length, before + 1, 'the tool received the call');
      t.equal(upstream.received.at(-1)!.url, '/v1/refunds/r-1');
      t.equal(
        upstream.received.at(-1)!.headers['x-tollgate-agent'],
        'support-bot',
        'the policy headers were applied inside TLS',
      );

      const small = await call(
        'https://payments.internal/v1/refunds',
        'POST',
        JSON.stringify({ order: 'o-1', amount: 120 }),
      );
      t.equal(small.status, 200, 'a $120 refund over TLS is allowed');
      t.equal(upstream.received.at(-1)!.body, JSON.stringify({ order: 'o-1', amount: 120 }));

      const mid = upstream.received.length;
      const big = await call(
        'https://payments.internal/v1/refunds',
        'POST',
        JSON.stringify({ order: 'o-1', amount: 501 }),
      );
      t.equal(big.status, 403, 'a $501 refund over TLS is denied');
      t.match(big.body, /refund of 501 exceeds the support limit of 500/);
      t.equal(upstream.received.length, mid, 'the denied refund never reached the tool');

      const hr = await call('https://hr.internal/v1/employees', 'GET');
      t.not(hr.status, 200, 'hr.internal is refused at CONNECT');
      t.equal(upstream.received.length, mid, 'nothing reached the tool');
    });
  }
});
