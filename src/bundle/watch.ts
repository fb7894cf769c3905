/**
 * Watches a file or directory for changes by polling (fs.watch misses renames over
 * the file and is unreliable on network and container filesystems). A file's
 * fingerprint is the SHA-256 of its content; a directory's is its files' names,
 * sizes and modification times. onChange runs once per new fingerprint, never
 * concurrently with itself.
 */
import { createHash } from 'node:crypto';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** Computes the fingerprint of a path; throws when it cannot be read. */
export async function fingerprint(path: string): Promise<string> {
  const info = await stat(path);
  const hash = createHash('sha256');
  if (!info.isDirectory()) return hash.update(await readFile(path)).digest('hex');
  const entries = await readdir(path, { recursive: true, withFileTypes: true });
  const lines: string[] = [];
  for (const e of entries) {
    if (!e.isFile()) continue;
    const full = join(e.parentPath, e.name);
    const s = await stat(full);
    lines.push(`${full}\0${s.size}\0${s.mtimeMs}`);
  }
  return hash.update(lines.sort().join('\n')).digest('hex');
}

/** Options of watchPath. */
export interface WatchOptions {
  readonly path: string;
  readonly intervalMs: number;
  /** Fingerprint already handled (the content loaded at start). */
  readonly initial?: string;
  onChange(fingerprint: string): Promise<void>;
  onError(error: Error): void;
}

/** A running watcher. */
export interface Watcher {
  close(): Promise<void>;
}

/** Polls a path and calls onChange when its fingerprint changes. */
export function watchPath(options: WatchOptions): Watcher {
  let last = options.initial;
  let lastError = '';
  let running: Promise<void> | undefined;
  const tick = async (): Promise<void> => {
    try {
      const now = await fingerprint(options.path);
      lastError = '';
      if (now === last) return;
      last = now;
      await options.onChange(now);
    } catch (err) {
      // Report a persistent problem once, not every interval.
      const message = (err as Error).message;
      if (message !== lastError) options.onError(err as Error);
      lastError = message;
    }
  };
  const timer = setInterval(() => {
    if (running === undefined) running = tick().finally(() => (running = undefined));
  }, options.intervalMs);
  timer.unref();
  return {
    async close() {
      clearInterval(timer);
      await running;
    },
  };
}
