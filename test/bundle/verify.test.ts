// Signature verification against bundles built and signed by the real opa CLI
// (`opa build --signing-key`, `opa sign`), with node:crypto only.
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync, gzipSync } from 'node:zlib';
import { extract, pack } from 'tar-stream';
import { loadBundle, parseBundleArchive } from '../../src/bundle/load.ts';
import { createBundleVerifier, SignatureError, type VerificationKey } from '../../src/bundle/verify.ts';
import { canonicalJson } from '../../src/bundle/digest.ts';
import { OPA, tempDir } from '../helpers/processes.ts';
import { buildSigned, makeKeys } from './fixtures.ts';

const run = promisify(execFile);
const keys = await makeKeys();
const rsaKey: VerificationKey = { keyId: 'default', publicKey: keys.rsaPublicPem, algorithm: 'RS256', scope: '' };
const ecKey: VerificationKey = { keyId: 'default', publicKey: keys.ecPublicPem, algorithm: 'ES256', scope: '' };

async function untarAll(path: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  const ex = extract();
  ex.on('entry', (h, stream, next) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: unknown) => chunks.push(c as Buffer));
    stream.on('end', () => {
      files.set(`/${h.name.replace(/^\/+/, '')}`, Buffer.concat(chunks));
      next();
    });
  });
  const done = new Promise<void>((resolve) => ex.on('finish', () => resolve()));
  ex.end(gunzipSync(await readFile(path)));
  await done;
  return files;
}

async function retar(files: Map<string, Buffer>): Promise<Buffer> {
  const p = pack();
  for (const [name, bytes] of files) p.entry({ name }, bytes);
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  return gzipSync(Buffer.concat(chunks));
}

/** The SignatureError failure kind (with TG_ERR_BUNDLE_INVALID) a verification throws, or "accepted". */
function rejection(fn: () => void): string {
  try {
    fn();
    return 'accepted';
  } catch (err) {
    if (!(err instanceof SignatureError) || err.code !== 'TG_ERR_BUNDLE_INVALID') return `unexpected ${String(err)}`;
    return err.failure;
  }
}

t.test('accepts an RS256 bundle signed by opa build', async (t) => {
  const bundle = await loadBundle(await buildSigned({ revision: 'r1', signingKey: keys.rsaPrivate, alg: 'RS256' }));
  t.doesNotThrow(() => createBundleVerifier(rsaKey).verify(bundle));
});

t.test('accepts an ES256 bundle signed by opa build', async (t) => {
  const bundle = await loadBundle(await buildSigned({ revision: 'r1', signingKey: keys.ecPrivate, alg: 'ES256' }));
  t.doesNotThrow(() => createBundleVerifier(ecKey).verify(bundle));
});

t.test('accepts a directory bundle signed by opa sign', async (t) => {
  const built = await buildSigned({ revision: 'r-dir' });
  const dir = await tempDir('tollgate-signdir-');
  await run('tar', ['-xzf', built, '-C', dir]);
  await run(OPA, ['sign', '--bundle', dir, '--signing-key', keys.rsaPrivate, '--output-file-path', dir]);
  const bundle = await loadBundle(dir);
  t.ok(bundle.files?.has('/.signatures.json'));
  t.doesNotThrow(() => createBundleVerifier(rsaKey).verify(bundle));
});

t.test('rejects an unsigned bundle when a key is configured', async (t) => {
  const bundle = await loadBundle(await buildSigned({ revision: 'r1' }));
  t.equal(
    rejection(() => createBundleVerifier(rsaKey).verify(bundle)),
    'unsigned',
  );
});

t.test('rejects a bundle signed by an untrusted key', async (t) => {
  const bundle = await loadBundle(await buildSigned({ revision: 'r1', signingKey: keys.otherRsaPrivate }));
  t.equal(
    rejection(() => createBundleVerifier(rsaKey).verify(bundle)),
    'bad_signature',
  );
});

t.test('rejects a signature made for another key id or scope', async (t) => {
  const bundle = await loadBundle(await buildSigned({ revision: 'r1', signingKey: keys.rsaPrivate }));
  t.equal(
    rejection(() => createBundleVerifier({ ...rsaKey, keyId: 'prod' }).verify(bundle)),
    'bad_signature',
  );
  t.equal(
    rejection(() => createBundleVerifier({ ...rsaKey, scope: 'write' }).verify(bundle)),
    'bad_signature',
  );
  t.equal(
    rejection(() => createBundleVerifier({ ...ecKey }).verify(bundle)),
    'bad_signature',
  );
});

t.test('rejects a bundle whose data.json was changed after signing', async (t) => {
  const files = await untarAll(await buildSigned({ revision: 'r1', signingKey: keys.rsaPrivate }));
  files.set('/data.json', Buffer.from(JSON.stringify({ tollgate: { hosts: ['api.example', 'evil.example'] } })));
  const bundle = await parseBundleArchive('tampered', await retar(files));
  t.equal(
    rejection(() => createBundleVerifier(rsaKey).verify(bundle)),
    'digest_mismatch',
  );
});

t.test('rejects a bundle whose policy.wasm was swapped after signing', async (t) => {
  const signed = await untarAll(await buildSigned({ revision: 'r1', signingKey: keys.rsaPrivate }));
  const other = await untarAll(await buildSigned({ revision: 'r1', rule: 'something else' }));
  signed.set('/policy.wasm', other.get('/policy.wasm')!);
  t.equal(
    rejection(() => createBundleVerifier(rsaKey).verify(bundleFrom(signed))),
    'digest_mismatch',
  );
  function bundleFrom(files: Map<string, Buffer>) {
    return {
      source: 'x',
      wasm: files.get('/policy.wasm')!,
      data: {},
      manifest: { revision: 'r1', roots: [''] },
      files,
    };
  }
});

t.test('rejects a bundle with an extra file not covered by the signature, or a listed file missing', async (t) => {
  const files = await untarAll(await buildSigned({ revision: 'r1', signingKey: keys.rsaPrivate }));
  const extra = new Map(files).set('/extra.rego', Buffer.from('package x\n'));
  t.equal(
    rejection(() => createBundleVerifier(rsaKey).verify(bundleOf(extra))),
    'digest_mismatch',
  );
  const missing = new Map(files);
  missing.delete([...files.keys()].find((k) => k.endsWith('.rego'))!);
  t.equal(
    rejection(() => createBundleVerifier(rsaKey).verify(bundleOf(missing))),
    'digest_mismatch',
  );
  function bundleOf(f: Map<string, Buffer>) {
    return { source: 'x', wasm: f.get('/policy.wasm')!, data: {}, manifest: { revision: 'r1', roots: [''] }, files: f };
  }
});

t.test('accepts a re-formatted data.json: structured files are hashed in canonical form, as OPA does', async (t) => {
  const files = await untarAll(
    await buildSigned({
      revision: 'r1',
      signingKey: keys.rsaPrivate,
      data: { tollgate: { hosts: ['api.example'], limit: 1.0, note: 'a<b & \u2028' } },
    }),
  );
  const data = JSON.parse(files.get('/data.json')!.toString());
  files.set('/data.json', Buffer.from(`\n${JSON.stringify(data, null, 7)}\n`));
  const bundle = await parseBundleArchive('reformatted', await retar(files));
  t.doesNotThrow(() => createBundleVerifier(rsaKey).verify(bundle));
});

t.test('canonical JSON sorts keys bytewise and escapes as Go does', async (t) => {
  t.equal(
    canonicalJson(Buffer.from('{"b": [1.50, "x"], "a": {"<": "\\u2028\\n\\u0001"}}')),
    '{"a":{"<":"\\u2028\\n\\u0001"},"b":[1.50,"x"]}',
  );
  t.throws(() => canonicalJson(Buffer.from('{"a": }')));
});

t.test('rejects a malformed .signatures.json', async (t) => {
  const files = await untarAll(await buildSigned({ revision: 'r1', signingKey: keys.rsaPrivate }));
  for (const [content, kind] of [
    ['not json', 'malformed'],
    ['{"signatures": []}', 'unsigned'],
    ['{"signatures": ["a.b"]}', 'malformed'],
    ['{"signatures": ["x","y"]}', 'malformed'],
  ] as const) {
    const f = new Map(files).set('/.signatures.json', Buffer.from(content));
    t.equal(
      rejection(() =>
        createBundleVerifier(rsaKey).verify({
          source: 'x',
          wasm: Buffer.alloc(0),
          data: {},
          manifest: { revision: '', roots: [''] },
          files: f,
        }),
      ),
      kind,
    );
  }
});

t.test('refuses a verification key that is not PEM', async (t) => {
  t.throws(() => createBundleVerifier({ ...rsaKey, publicKey: 'nope' }), { code: 'TG_ERR_CONFIG_INVALID' });
});

t.test('verifies an opa sign signature over files in nested directories', async (t) => {
  const dir = await tempDir('tollgate-nested-');
  await mkdir(join(dir, 'tollgate', 'authz'), { recursive: true });
  const built = await buildSigned({ revision: 'nested' });
  await run('tar', ['-xzf', built, '-C', dir]);
  await writeFile(join(dir, 'tollgate', 'authz', 'notes.rego'), 'package tollgate.notes\n\nx := 1\n');
  await run(OPA, [
    'sign',
    '--bundle',
    dir,
    '--signing-key',
    keys.ecPrivate,
    '--signing-alg',
    'ES256',
    '--output-file-path',
    dir,
  ]);
  const bundle = await loadBundle(dir);
  t.ok(bundle.files?.has('/tollgate/authz/notes.rego'));
  t.doesNotThrow(() => createBundleVerifier(ecKey).verify(bundle));
});
