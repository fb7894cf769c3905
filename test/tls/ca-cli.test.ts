// `tollgate ca init --out DIR` as a user runs it: an ECDSA P-256 CA, key 0600,
// no silent overwrite, and a config pointing at it starts a sidecar.
import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { CLI, startTollgate, tempDir } from '../helpers/processes.ts';

const run = promisify(execFile);

t.test('tollgate ca init', async (t) => {
  const dir = join(await tempDir(), 'ca');
  const out = await run(process.execPath, [CLI, 'ca', 'init', '--out', dir]);
  t.match(out.stdout, /SHA-256\s+([0-9A-F]{2}:){31}[0-9A-F]{2}/);
  const cert = new X509Certificate(await readFile(join(dir, 'ca.crt')));
  const key = createPrivateKey(await readFile(join(dir, 'ca.key')));
  t.ok(cert.ca, 'basicConstraints CA:TRUE');
  t.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1', 'ECDSA P-256');
  t.ok(cert.checkPrivateKey(key));
  t.equal((await stat(join(dir, 'ca.key'))).mode & 0o777, 0o600, 'the key file is 0600');

  const again = await run(process.execPath, [CLI, 'ca', 'init', '--out', dir]).then(
    () => 0,
    (err: { code: number; stderr: string }) => {
      t.match(err.stderr, /exists; pass --force/);
      return err.code;
    },
  );
  t.equal(again, 1, 'an existing CA is never overwritten silently');
  t.equal(new X509Certificate(await readFile(join(dir, 'ca.crt'))).fingerprint256, cert.fingerprint256);
  await run(process.execPath, [CLI, 'ca', 'init', '--out', dir, '--force', '--cn', 'Team CA', '--days', '30']);
  const replaced = new X509Certificate(await readFile(join(dir, 'ca.crt')));
  t.match(replaced.subject, /CN=Team CA/);
  t.equal((await stat(join(dir, 'ca.key'))).mode & 0o777, 0o600);

  const bad = await run(process.execPath, [CLI, 'ca', 'init']).then(
    () => 0,
    (err: { code: number }) => err.code,
  );
  t.equal(bad, 1, 'usage error without --out');

  const tg = await startTollgate(t, { tls: { caCertFile: join(dir, 'ca.crt'), caKeyFile: join(dir, 'ca.key') } });
  t.ok(tg.proxyPort > 0, 'a sidecar starts with the CA');
});

t.test('refuses to start with intercept mode and no CA, or a CA key that does not match', async (t) => {
  const noCa = await run(process.execPath, [CLI, 'config', 'validate', '/dev/null']).then(
    () => 0,
    () => 1,
  );
  t.equal(noCa, 0);
  const a = join(await tempDir(), 'a');
  const b = join(await tempDir(), 'b');
  await run(process.execPath, [CLI, 'ca', 'init', '--out', a]);
  await run(process.execPath, [CLI, 'ca', 'init', '--out', b]);
  for (const config of [
    { connect: { defaultMode: 'intercept' } },
    { tls: { caCertFile: join(a, 'ca.crt'), caKeyFile: join(b, 'ca.key') } },
    { tls: { caCertFile: join(a, 'ca.crt') } },
  ]) {
    await t.rejects(startTollgate(t, config), /TG_ERR_CONFIG_INVALID/, JSON.stringify(config));
  }
});
