// Compiles the sidecar for deployment: every src/**/*.ts to dist/src/**/*.js with Node's own
// type stripping (module.stripTypeScriptTypes: the same transform Node applies at run time,
// so the code that runs is the code the tests ran), relative ".ts" specifiers rewritten to
// ".js". bin/tollgate.js runs dist/ when it is present and not older than src/; tests and
// `node src/cli/main.ts` keep running the TypeScript. Running compiled JS saves the type
// stripper (a WebAssembly module, ~+15 MB RSS) and the per-start stripping.
// Usage: node scripts/build.mjs  (npm run build); rm -rf dist/src to go back to the sources.
import { mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { stripTypeScriptTypes } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = join(root, 'dist');

async function* sources(dir) {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* sources(path);
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) yield path;
  }
}

// Relative specifiers only (static imports/exports, dynamic import(), new URL(...)); packages are untouched.
const SPECIFIER = /((?:from|import)\s*\(?\s*|new URL\(\s*)(['"])(\.{1,2}\/[^'"]+)\.ts\2/g;

await rm(join(out, 'src'), { recursive: true, force: true });
let count = 0;
for await (const file of sources(join(root, 'src'))) {
  const code = stripTypeScriptTypes(await readFile(file, 'utf8'), { mode: 'strip' });
  const target = join(out, relative(root, file)).replace(/\.ts$/, '.js');
  await mkdir(dirname(target), { recursive: true });
  await writeFile(target, code.replace(SPECIFIER, '$1$2$3.js$2'));
  count += 1;
}
// Files the sources find relative to themselves (the default bundle, the Envoy protos, opa).
for (const name of ['policies', 'proto', '.tools']) {
  await rm(join(out, name), { force: true });
  await symlink(join('..', name), join(out, name));
}
await writeFile(join(out, 'BUILT'), `${new Date().toISOString()}\n`);
process.stdout.write(`built ${count} files into ${relative(root, out)}/src\n`);
