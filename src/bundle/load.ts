/**
 * Reads an OPA bundle as `opa build -t wasm` writes it: a .tar.gz (or a directory)
 * holding /policy.wasm, /data.json and /.manifest. Malformed bundles are rejected
 * with TG_ERR_BUNDLE_INVALID naming the file and the problem.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { extract } from 'tar-stream';
import { TollgateError } from '../errors.ts';

/** The parts of an OPA bundle Tollgate uses. */
export interface Bundle {
  readonly source: string;
  readonly wasm: Buffer;
  readonly data: Record<string, unknown>;
  readonly manifest: { readonly revision: string; readonly roots: readonly string[]; readonly [key: string]: unknown };
}

function invalid(source: string, message: string, cause?: unknown): TollgateError {
  return new TollgateError('TG_ERR_BUNDLE_INVALID', `${source}: ${message}`, { cause });
}

async function untar(source: string, gz: Buffer): Promise<Map<string, Buffer>> {
  let tar: Buffer;
  try {
    tar = gunzipSync(gz);
  } catch (cause) {
    throw invalid(source, 'not a gzip file', cause);
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
    ex.on('error', (cause: Error) => reject(invalid(source, `truncated or corrupt tar archive (${cause.message})`, cause)));
  });
  ex.end(tar);
  await done;
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

/** Builds a Bundle from its files (keys are bundle paths such as "/policy.wasm"). */
export function bundleFromFiles(source: string, files: Map<string, Buffer>): Bundle {
  const wasm = files.get('/policy.wasm');
  if (wasm === undefined) throw invalid(source, 'has no /policy.wasm (build it with `opa build -t wasm`)');
  const data = parseJson(source, '/data.json', files.get('/data.json'), {});
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw invalid(source, '/data.json must be a JSON object');
  const manifest = parseJson(source, '/.manifest', files.get('/.manifest'), {}) as Record<string, unknown>;
  if (typeof manifest !== 'object' || manifest === null || Array.isArray(manifest)) throw invalid(source, '/.manifest must be a JSON object');
  const revision = manifest.revision ?? '';
  if (typeof revision !== 'string') throw invalid(source, '/.manifest revision must be a string');
  const roots = manifest.roots ?? [''];
  if (!Array.isArray(roots) || roots.some((r) => typeof r !== 'string')) throw invalid(source, '/.manifest roots must be an array of strings');
  return { source, wasm, data: data as Record<string, unknown>, manifest: { ...manifest, revision, roots: roots as string[] } };
}

/** Loads a bundle from a .tar.gz file or a directory. */
export async function loadBundle(path: string): Promise<Bundle> {
  let info;
  try {
    info = await stat(path);
  } catch (cause) {
    throw invalid(path, `cannot read the bundle (${(cause as NodeJS.ErrnoException).code ?? 'error'})`, cause);
  }
  if (info.isDirectory()) {
    const files = new Map<string, Buffer>();
    for (const name of ['/policy.wasm', '/data.json', '/.manifest']) {
      try {
        files.set(name, await readFile(join(path, name)));
      } catch {
        // absent optional files are handled by bundleFromFiles
      }
    }
    return bundleFromFiles(path, files);
  }
  return bundleFromFiles(path, await untar(path, await readFile(path)));
}
