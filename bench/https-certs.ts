// Writes the HTTPS benchmark's upstream CA and its leaf for payments.internal into a
// directory (bench/https.sh): upstream-ca.crt, upstream.crt, upstream.key.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateCa, generateLeafKey, issueLeaf, loadCa } from '../src/tls/ca.ts';

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: https-certs.ts <dir>');
const pair = generateCa({ commonName: 'bench upstream CA' });
const key = generateLeafKey();
writeFileSync(join(dir, 'upstream-ca.crt'), pair.certPem);
writeFileSync(
  join(dir, 'upstream.crt'),
  issueLeaf(loadCa(pair.certPem, pair.keyPem), 'payments.internal', key.key).certPem,
);
writeFileSync(join(dir, 'upstream.key'), key.keyPem, { mode: 0o600 });
