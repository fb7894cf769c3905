// Bad bundles are rejected with TG_ERR_BUNDLE_INVALID before they can serve, and the
// active revision keeps enforcing.
import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';
import { loadBundle, parseBundleArchive, rootsOverlap } from '../../src/bundle/load.ts';
import { createSwappablePdp } from '../../src/pdp/swap.ts';
import { tempDir } from '../helpers/processes.ts';
import { buildSigned, requestInput } from './fixtures.ts';

async function tarGz(files: Record<string, string | Buffer>): Promise<Buffer> {
  const p = pack();
  for (const [name, bytes] of Object.entries(files)) p.entry({ name }, bytes);
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  return gzipSync(Buffer.concat(chunks));
}

const good = await buildSigned({ revision: 'good-1' });
const goodBytes = await readFile(good);
const wasm = (await loadBundle(good)).wasm;

t.test('reads revision, roots and every file of an opa-built bundle', async (t) => {
  const b = await loadBundle(good);
  t.equal(b.manifest.revision, 'good-1');
  t.same(b.manifest.roots, ['']);
  t.ok(b.files?.has('/policy.wasm'));
  t.ok(b.files?.has('/.manifest'));
  t.same(b.archive, goodBytes);
});

t.test('rejects a truncated archive', async (t) => {
  await t.rejects(parseBundleArchive('half', goodBytes.subarray(0, Math.floor(goodBytes.length / 2))), {
    code: 'TG_ERR_BUNDLE_INVALID',
    message: /truncated/,
  });
});

t.test('rejects bytes that are not gzip, and an empty archive', async (t) => {
  await t.rejects(parseBundleArchive('html', Buffer.from('<html>oops</html>')), {
    code: 'TG_ERR_BUNDLE_INVALID',
    message: /not a gzip file/,
  });
  await t.rejects(parseBundleArchive('empty', gzipSync(Buffer.alloc(1024))), {
    code: 'TG_ERR_BUNDLE_INVALID',
    message: /no files/,
  });
});

t.test('rejects a manifest with overlapping roots', async (t) => {
  const bytes = await tarGz({
    '/policy.wasm': wasm,
    '/data.json': '{}',
    '/.manifest': JSON.stringify({ revision: 'r', roots: ['tollgate', 'tollgate/authz'] }),
  });
  await t.rejects(parseBundleArchive('overlap', bytes), {
    code: 'TG_ERR_BUNDLE_INVALID',
    message: /overlapped roots: "tollgate" and "tollgate\/authz"/,
  });
  t.ok(rootsOverlap('', 'x'));
  t.ok(rootsOverlap('a/b', 'a'));
  t.notOk(rootsOverlap('a/b', 'a/bc'));
});

t.test('rejects data outside the manifest roots', async (t) => {
  const bytes = await tarGz({
    '/policy.wasm': wasm,
    '/data.json': '{"other": {"x": 1}}',
    '/.manifest': JSON.stringify({ revision: 'r', roots: ['tollgate'] }),
  });
  await t.rejects(parseBundleArchive('outside', bytes), {
    code: 'TG_ERR_BUNDLE_INVALID',
    message: /do not permit data at path \/other/,
  });
  const inside = await tarGz({
    '/policy.wasm': wasm,
    '/data.json': '{"tollgate": {"x": 1}}',
    '/.manifest': JSON.stringify({ revision: 'r', roots: ['tollgate/authz', 'tollgate/x'] }),
  });
  t.ok(await parseBundleArchive('inside', inside));
});

t.test('rejects a bundle without policy.wasm, with non-JSON data, or a bad manifest', async (t) => {
  await t.rejects(parseBundleArchive('nowasm', await tarGz({ '/data.json': '{}' })), { message: /no \/policy\.wasm/ });
  await t.rejects(parseBundleArchive('baddata', await tarGz({ '/policy.wasm': wasm, '/data.json': '{' })), {
    message: /data\.json is not valid JSON/,
  });
  await t.rejects(parseBundleArchive('arraydata', await tarGz({ '/policy.wasm': wasm, '/data.json': '[]' })), {
    message: /must be a JSON object/,
  });
  await t.rejects(
    parseBundleArchive('badrev', await tarGz({ '/policy.wasm': wasm, '/.manifest': '{"revision": 3}' })),
    { message: /revision must be a string/ },
  );
  await t.rejects(
    parseBundleArchive('badroots', await tarGz({ '/policy.wasm': wasm, '/.manifest': '{"roots": "x"}' })),
    { message: /roots must be an array/ },
  );
});

t.test('reads a directory bundle recursively', async (t) => {
  const dir = await tempDir('tollgate-dirbundle-');
  await writeFile(join(dir, 'policy.wasm'), wasm);
  await writeFile(join(dir, '.manifest'), JSON.stringify({ revision: 'dir-1', roots: [''] }));
  const b = await loadBundle(dir);
  t.equal(b.manifest.revision, 'dir-1');
  t.equal(b.archive, undefined);
  await t.rejects(loadBundle(join(dir, 'missing')), { code: 'TG_ERR_BUNDLE_INVALID', message: /ENOENT/ });
});

t.test('a bundle whose wasm does not instantiate is refused and the previous revision keeps enforcing', async (t) => {
  const rejected: string[] = [];
  const pdp = createSwappablePdp({
    decisionPath: 'tollgate/authz/decision',
    timeoutMs: 100,
    hooks: { onReject: (e) => rejected.push(e.reason) },
  });
  await pdp.activate(await loadBundle(good), 'startup');
  const broken = await tarGz({
    '/policy.wasm': Buffer.from('\0asm garbage that is not a module'),
    '/.manifest': JSON.stringify({ revision: 'broken' }),
  });
  await t.rejects(pdp.activate(await parseBundleArchive('broken', broken), 'poll'), {
    code: 'TG_ERR_BUNDLE_INVALID',
    message: /does not instantiate/,
  });
  const wrongEntry = await buildSigned({
    revision: 'wrong-entry',
    rego: 'package other\n\nimport rego.v1\n\ndecision := true\n',
  }).catch(() => undefined);
  t.equal(wrongEntry, undefined, 'opa refuses to build an entrypoint that does not exist');
  t.same(rejected, ['invalid']);
  t.equal(pdp.info()?.revision, 'good-1');
  t.equal((await pdp.decide(requestInput('GET', 'http://api.example/x'), 'd1')).revision, 'good-1');
});

t.test('a bundle whose decision path is not an entrypoint is refused', async (t) => {
  const pdp = createSwappablePdp({ decisionPath: 'tollgate/authz/allow', timeoutMs: 100 });
  await t.rejects(pdp.activate(await loadBundle(good), 'startup'), {
    code: 'TG_ERR_BUNDLE_INVALID',
    message: /not an entrypoint/,
  });
  t.equal(pdp.info(), undefined);
  await t.rejects(pdp.decide(requestInput('GET', 'http://api.example/x'), 'd1'), { code: 'TG_ERR_PDP_UNAVAILABLE' });
});
