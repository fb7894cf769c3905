/**
 * Reads an OPA bundle as `opa build -t wasm` writes it: a .tar.gz (or a directory)
 * holding /policy.wasm, /data.json, /.manifest and optionally /.signatures.json and
 * the Rego sources. Malformed bundles are rejected with TG_ERR_BUNDLE_INVALID naming
 * the file and the problem. Every file is kept so that signatures can be checked
 * over exactly what was read (src/bundle/verify.ts).
 */
import { readFile, readdir, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { gunzip } from 'node:zlib';
import { promisify } from 'node:util';
import { extract } from 'tar-stream';
import { TollgateError } from '../errors.ts';

/** The parts of an OPA bundle Tollgate uses. */
export interface Bundle {
  readonly source: string;
  readonly wasm: Buffer;
  readonly data: Record<string, unknown>;
  readonly manifest: { readonly revision: string; readonly roots: readonly string[]; readonly [key: string]: unknown };
  /** Every file of the bundle by bundle path ("/policy.wasm", "/.signatures.json", …). */
  readonly files?: ReadonlyMap<string, Buffer>;
  /** The .tar.gz bytes the bundle was read from (absent for directories); persisted as last-known-good. */
  readonly archive?: Buffer;
}

/** Largest decompressed bundle accepted (OPA's default bundle size limit is 1 GiB; ours is smaller). */
export const MAX_BUNDLE_BYTES = 512 * 1024 * 1024;

const gunzipAsync = promisify(gunzip);

function invalid(source: string, message: string, cause?: unknown): TollgateError {
  return new TollgateError('TG_ERR_BUNDLE_INVALID', `${source}: ${message}`, { cause });
}

async function untar(source: string, gz: Buffer): Promise<Map<string, Buffer>> {
  let tar: Buffer;
  try {
    // zlib's thread pool, not the event loop: a bundle arriving never stalls requests.
    tar = await gunzipAsync(gz, { maxOutputLength: MAX_BUNDLE_BYTES });
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw invalid(
      source,
      code === 'Z_BUF_ERROR'
        ? 'truncated gzip stream'
        : code === 'ERR_BUFFER_TOO_LARGE'
          ? `larger than ${MAX_BUNDLE_BYTES} bytes uncompressed`
          : 'not a gzip file',
      cause,
    );
  }
  const files = new Map<string, Buffer>();
  const ex = extract();
  const done = new Promise<void>((resolve, reject) => {
    ex.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => chunks.push(c as Buffer));
      stream.on('end', () => {
        if (header.type === 'file') files.set(`/${header.name.replace(/^\.?\/+/, '')}`, Buffer.concat(chunks));
        next();
      });
      stream.on('error', reject);
    });
    ex.on('finish', resolve);
    ex.on('error', (cause: Error) =>
      reject(invalid(source, `truncated or corrupt tar archive (${cause.message})`, cause)),
    );
  });
  ex.end(tar);
  await done;
  if (files.size === 0) throw invalid(source, 'the tar archive holds no files');
  return files;
}

function parseJson(source: string, name: string, bytes: Buffer | undefined, fallback: unknown): unknown {
  if (bytes === undefined) return fallback;
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (cause) {
    throw invalid(source, `${name} is not valid JSON`, cause);
  }
}

function segments(root: string): string[] {
  const trimmed = root.replace(/^\/+|\/+$/g, '');
  return trimmed === '' ? [] : trimmed.split('/');
}

/** True when one root is a prefix of the other, segment by segment (OPA's RootPathsOverlap). */
export function rootsOverlap(a: string, b: string): boolean {
  const x = segments(a);
  const y = segments(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return false;
  return true;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Data paths (leaves of nested objects down to a root's depth) must lie under some root, as OPA requires. */
function checkDataWithinRoots(source: string, data: Record<string, unknown>, roots: readonly string[]): void {
  const rootSegs = roots.map(segments);
  if (rootSegs.some((r) => r.length === 0)) return;
  const walk = (node: Record<string, unknown>, path: string[]): void => {
    for (const [key, value] of Object.entries(node)) {
      const p = [...path, key];
      const under = rootSegs.some((r) => r.length <= p.length && r.every((s, i) => s === p[i]));
      if (under) continue;
      const prefixOfRoot = rootSegs.some((r) => r.length > p.length && p.every((s, i) => s === r[i]));
      if (prefixOfRoot && isObject(value)) walk(value, p);
      else throw invalid(source, `manifest roots ${JSON.stringify(roots)} do not permit data at path /${p.join('/')}`);
    }
  };
  walk(data, []);
}

/** Builds a Bundle from its files (keys are bundle paths such as "/policy.wasm"). */
export function bundleFromFiles(source: string, files: Map<string, Buffer>, archive?: Buffer): Bundle {
  const wasm = files.get('/policy.wasm');
  if (wasm === undefined) throw invalid(source, 'has no /policy.wasm (build it with `opa build -t wasm`)');
  const data = parseJson(source, '/data.json', files.get('/data.json'), {});
  if (!isObject(data)) throw invalid(source, '/data.json must be a JSON object');
  const manifest = parseJson(source, '/.manifest', files.get('/.manifest'), {}) as Record<string, unknown>;
  if (!isObject(manifest)) throw invalid(source, '/.manifest must be a JSON object');
  const revision = manifest.revision ?? '';
  if (typeof revision !== 'string') throw invalid(source, '/.manifest revision must be a string');
  const roots = manifest.roots ?? [''];
  if (!Array.isArray(roots) || roots.some((r) => typeof r !== 'string'))
    throw invalid(source, '/.manifest roots must be an array of strings');
  // OPA's Manifest.validateAndInjectDefaults: roots of one bundle may not overlap.
  for (let i = 0; i < roots.length; i++) {
    for (let j = i + 1; j < roots.length; j++) {
      if (rootsOverlap(roots[i] as string, roots[j] as string))
        throw invalid(source, `manifest has overlapped roots: "${roots[i]}" and "${roots[j]}"`);
    }
  }
  checkDataWithinRoots(source, data, roots as string[]);
  return {
    source,
    wasm,
    data,
    manifest: { ...manifest, revision, roots: roots as string[] },
    files,
    ...(archive === undefined ? {} : { archive }),
  };
}

/** Parses a bundle from .tar.gz bytes (a download, a file). */
export async function parseBundleArchive(source: string, gz: Buffer): Promise<Bundle> {
  return bundleFromFiles(source, await untar(source, gz), gz);
}

async function readTree(dir: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    const full = join(entry.parentPath, entry.name);
    files.set(`/${relative(dir, full).split(sep).join('/')}`, await readFile(full));
  }
  return files;
}

/** Loads a bundle from a .tar.gz file or a directory. */
export async function loadBundle(path: string): Promise<Bundle> {
  let info;
  try {
    info = await stat(path);
  } catch (cause) {
    throw invalid(path, `cannot read the bundle (${(cause as NodeJS.ErrnoException).code ?? 'error'})`, cause);
  }
  if (info.isDirectory()) return bundleFromFiles(path, await readTree(path));
  return parseBundleArchive(path, await readFile(path));
}
