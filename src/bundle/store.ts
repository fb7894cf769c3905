/**
 * Last-known-good persistence: the .tar.gz of the active bundle is written to the
 * persistence directory each time a bundle is activated (write to a temporary file,
 * fsync, rename: a crash leaves either the old or the new file, never half of one),
 * with a small JSON sidecar holding its revision and ETag. At start, when the bundle
 * server cannot be reached, the persisted bundle is verified and activated like a
 * download — so a restart never runs without a policy.
 */
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { TollgateError } from '../errors.ts';
import { parseBundleArchive, type Bundle } from './load.ts';

const BUNDLE_FILE = 'bundle.tar.gz';
const META_FILE = 'bundle.json';

/** What was persisted with the bundle. */
export interface StoredMeta {
  readonly revision: string;
  readonly etag?: string;
  readonly source: string;
  readonly savedAt: string;
}

async function writeAtomic(path: string, bytes: Buffer | string): Promise<void> {
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
  const handle = await open(tmp, 'w', 0o600);
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** The last-known-good store of one persistence directory. */
export interface BundleStore {
  /** Persists an activated bundle (no-op for bundles without archive bytes: directories are on disk already). */
  save(bundle: Bundle, etag: string | undefined): Promise<void>;
  /** Loads the persisted bundle, or undefined when none is stored; throws TG_ERR_BUNDLE_INVALID when it is corrupt. */
  load(): Promise<{ bundle: Bundle; meta: StoredMeta } | undefined>;
}

/** Creates the store over a directory (created on first save). */
export function createBundleStore(dir: string): BundleStore {
  const bundlePath = join(dir, BUNDLE_FILE);
  const metaPath = join(dir, META_FILE);
  return {
    async save(bundle, etag) {
      if (bundle.archive === undefined) return;
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const meta: StoredMeta = {
        revision: bundle.manifest.revision,
        ...(etag === undefined ? {} : { etag }),
        source: bundle.source,
        savedAt: new Date().toISOString(),
      };
      // Bundle first, then meta: a crash between them leaves meta describing the older bundle,
      // and the ETag in it only causes one extra download.
      await writeAtomic(bundlePath, bundle.archive);
      await writeAtomic(metaPath, `${JSON.stringify(meta)}\n`);
    },
    async load() {
      let bytes: Buffer;
      try {
        bytes = await readFile(bundlePath);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw new TollgateError('TG_ERR_BUNDLE_INVALID', `${bundlePath}: cannot read the last-known-good bundle`, {
          cause: err,
        });
      }
      let meta: StoredMeta = { revision: '', source: bundlePath, savedAt: '' };
      try {
        meta = JSON.parse(await readFile(metaPath, 'utf8')) as StoredMeta;
      } catch {
        // the bundle alone is enough; without meta there is no ETag to send
      }
      const bundle = await parseBundleArchive(`${bundlePath} (last-known-good of ${meta.source})`, bytes);
      // The ETag only describes the persisted bytes if the revisions agree.
      return {
        bundle,
        meta:
          meta.revision === bundle.manifest.revision
            ? meta
            : { revision: bundle.manifest.revision, source: meta.source, savedAt: meta.savedAt },
      };
    },
  };
}
