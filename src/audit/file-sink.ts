/**
 * The decision log's file: append-only writes, size-based rotation by renaming the
 * current file to `<path>.<n>` (n increasing, so the oldest file has the lowest n and
 * nothing is renamed twice), pruning the oldest beyond maxFiles. The chain logic
 * (genesis records, hashes) lives in log.ts; this file only moves bytes.
 */
import { open, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** A rotated file of a decision log. */
export interface RotatedFile {
  readonly index: number;
  readonly path: string;
}

/** The rotated files of `path`, oldest first. */
export async function rotatedFiles(path: string): Promise<RotatedFile[]> {
  const dir = dirname(path);
  const base = basename(path);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const out: RotatedFile[] = [];
  for (const name of names) {
    if (!name.startsWith(`${base}.`)) continue;
    const suffix = name.slice(base.length + 1);
    if (/^[1-9]\d*$/.test(suffix)) out.push({ index: Number(suffix), path: join(dir, name) });
  }
  return out.sort((a, b) => a.index - b.index);
}

/** The last complete line of a file (reading backwards in chunks), and whether the file ends mid-line. */
export async function readLastLine(path: string): Promise<{ line: string | undefined; torn: boolean }> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    if (size === 0) return { line: undefined, torn: false };
    const last = Buffer.alloc(1);
    await fh.read(last, 0, 1, size - 1);
    const torn = last[0] !== 0x0a;
    // Scan back from before the final newline for the previous one.
    const end = torn ? size : size - 1;
    const chunks: Buffer[] = [];
    let pos = end;
    const chunkSize = 64 * 1024;
    while (pos > 0) {
      const start = Math.max(0, pos - chunkSize);
      const buf = Buffer.alloc(pos - start);
      await fh.read(buf, 0, buf.length, start);
      const nl = buf.lastIndexOf(0x0a);
      if (nl !== -1) {
        chunks.unshift(buf.subarray(nl + 1));
        break;
      }
      chunks.unshift(buf);
      pos = start;
    }
    return { line: Buffer.concat(chunks).toString('utf8'), torn };
  } finally {
    await fh.close();
  }
}

/** The first line of a file (at most its first 64 KiB), or undefined for an empty file. */
export async function readFirstLine(path: string): Promise<string | undefined> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(64 * 1024);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    if (bytesRead === 0) return undefined;
    const text = buf.subarray(0, bytesRead);
    const nl = text.indexOf(0x0a);
    return (nl === -1 ? text : text.subarray(0, nl)).toString('utf8');
  } finally {
    await fh.close();
  }
}

/** An open log file. */
export interface FileSink {
  /** Bytes in the current file. */
  readonly size: number;
  append(data: string | Uint8Array): Promise<void>;
  /** Renames the current file to `<path>.<n>`, prunes old ones, opens a fresh file; returns the rotated file's name. */
  rotate(): Promise<string>;
  close(): Promise<void>;
}

/** Opens (creating if needed) the log file for appending. */
export async function openFileSink(path: string, maxFiles: number): Promise<FileSink> {
  let fh: FileHandle = await open(path, 'a');
  let size = (await fh.stat()).size;
  return {
    get size() {
      return size;
    },
    async append(data) {
      const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      await fh.write(bytes);
      size += bytes.length;
    },
    async rotate() {
      await fh.sync();
      await fh.close();
      const existing = await rotatedFiles(path);
      const index = (existing.at(-1)?.index ?? 0) + 1;
      const target = `${path}.${index}`;
      await rename(path, target);
      if (maxFiles > 0) {
        const all = [...existing, { index, path: target }];
        for (const old of all.slice(0, Math.max(0, all.length - maxFiles))) await rm(old.path, { force: true });
      }
      fh = await open(path, 'a');
      size = 0;
      return basename(target);
    },
    async close() {
      await fh.sync().catch(() => undefined);
      await fh.close();
    },
  };
}

/** Whether a path exists and is a non-empty file. */
export async function nonEmptyFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).size > 0;
  } catch {
    return false;
  }
}
