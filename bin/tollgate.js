#!/usr/bin/env node
// Tollgate runs its TypeScript sources directly on Node 24 (type stripping).
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(
    `tollgate needs Node.js 24 or later (this is ${process.version}); run it through npm (npm start, npx tollgate) which uses the node@24 dev dependency\n`,
  );
  process.exit(1);
}
await import('../src/cli/main.ts');
