/**
 * Verifies a decision log (a file, or a rotated set `<path>.<n>` … `<path>`) against its
 * hash chain and says where it breaks: an edited record (its hash no longer matches
 * its content), a removed one (seq jumps), a reordered one (seq goes back, or the
 * missing seq turns up later), an inserted one (a seq repeats), a record replaced with
 * a recomputed hash (the next record's prev_hash no longer matches), a file that does
 * not start with a genesis record or whose genesis does not continue the previous file.
 *
 * After a problem the walk resynchronises on the record it stopped at, so one removal
 * is one problem, not a cascade. What no hash chain can show alone: removal of the
 * newest records, or a rewrite of the whole tail with recomputed hashes — compare
 * `head` (the last hash) with a copy kept elsewhere (the HTTP sink's receiver).
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { LINE_HASH_SCHEME, ZERO_HASH, lineHashMatches, recomputeHash } from './chain.ts';
import { rotatedFiles } from './file-sink.ts';
import { parseJson } from '../input/exact-json.ts';

/** What is wrong at one line. */
export type ProblemKind =
  'malformed' | 'edited' | 'removed' | 'reordered' | 'inserted' | 'broken-link' | 'genesis' | 'file-link';

/** One problem, located. */
export interface VerifyProblem {
  readonly file: string;
  /** 1-based line number in `file`. */
  readonly line: number;
  readonly kind: ProblemKind;
  readonly message: string;
}

/** The verdict on a log. */
export interface VerifyReport {
  readonly ok: boolean;
  /** The files verified, oldest first. */
  readonly files: readonly string[];
  /** Records read (all types). */
  readonly records: number;
  readonly decisions: number;
  /** Gap records: decisions dropped under back-pressure, recorded in the chain. */
  readonly gaps: readonly { readonly file: string; readonly line: number; readonly dropped: number }[];
  readonly problems: readonly VerifyProblem[];
  /** The hash of the last record: anchor it elsewhere to detect tail truncation. */
  readonly head?: string;
  /** Facts that are not problems (e.g. the chain continues from files no longer present). */
  readonly notes: readonly string[];
}

interface Entry {
  readonly file: string;
  readonly fileIndex: number;
  readonly line: number;
  readonly malformed?: string;
  readonly type?: string;
  readonly seq?: number;
  readonly prevHash?: string;
  readonly hash?: string;
  readonly hashOk?: boolean;
  readonly dropped?: number;
}

/**
 * Whether a record's hash is right, in the scheme its file's genesis names (chain.ts);
 * in a file that lost its genesis, in either scheme.
 */
function hashMatches(
  text: string,
  record: Readonly<Record<string, unknown>>,
  hash: string,
  scheme: 'line' | 'jcs' | undefined,
): boolean {
  if (scheme !== 'jcs' && lineHashMatches(text, hash)) return true;
  return scheme !== 'line' && recomputeHash(record) === hash;
}

async function readEntries(file: string, fileIndex: number): Promise<Entry[]> {
  const entries: Entry[] = [];
  let scheme: 'line' | 'jcs' | undefined;
  const rl = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  let line = 0;
  for await (const text of rl) {
    line++;
    if (text === '') {
      entries.push({ file, fileIndex, line, malformed: 'empty line' });
      continue;
    }
    let record: Record<string, unknown>;
    try {
      const parsed: unknown = parseJson(text);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
      record = parsed as Record<string, unknown>;
    } catch {
      entries.push({ file, fileIndex, line, malformed: 'not a JSON object (truncated or corrupted line)' });
      continue;
    }
    const { seq, prev_hash: prevHash, hash, type, dropped } = record;
    if (line === 1 && type === 'genesis') scheme = record.hash_scheme === LINE_HASH_SCHEME ? 'line' : 'jcs';
    if (typeof seq !== 'number' || typeof prevHash !== 'string' || typeof hash !== 'string') {
      entries.push({ file, fileIndex, line, malformed: 'missing seq, prev_hash or hash' });
      continue;
    }
    entries.push({
      file,
      fileIndex,
      line,
      seq,
      prevHash,
      hash,
      hashOk: hashMatches(text, record, hash, scheme),
      ...(typeof type === 'string' ? { type } : {}),
      ...(typeof dropped === 'number' ? { dropped } : {}),
    });
  }
  return entries;
}

/** Verifies a list of files as one chain, oldest first. */
export async function verifyFiles(files: readonly string[]): Promise<VerifyReport> {
  const entries: Entry[] = [];
  for (const [index, file] of files.entries()) entries.push(...(await readEntries(file, index)));

  const problems: VerifyProblem[] = [];
  const notes: string[] = [];
  const gaps: { file: string; line: number; dropped: number }[] = [];
  const problem = (e: Entry, kind: ProblemKind, message: string): void => {
    problems.push({ file: e.file, line: e.line, kind, message });
  };
  // Where each seq appears, to tell "removed" (never appears) from "reordered" (appears later).
  const positions = new Map<number, number[]>();
  entries.forEach((e, i) => {
    if (e.seq !== undefined && e.hashOk === true) positions.set(e.seq, [...(positions.get(e.seq) ?? []), i]);
  });
  const seen = new Map<number, Entry>();
  let expectedSeq: number | undefined;
  let expectedPrev: string | undefined;
  let previous: Entry | undefined;
  let decisions = 0;

  entries.forEach((e, i) => {
    if (e.malformed !== undefined) {
      problem(e, 'malformed', e.malformed);
      // The next record links to a hash we cannot know; resume on it.
      expectedPrev = undefined;
      expectedSeq = undefined;
      return;
    }
    const seq = e.seq!;
    if (e.type === 'gap') gaps.push({ file: e.file, line: e.line, dropped: e.dropped ?? 0 });
    else if (e.type !== 'genesis') decisions++;
    if (!e.hashOk) problem(e, 'edited', `record content does not match its hash: the record was edited`);

    const firstOfFile = e.line === 1;
    if (e.type === 'genesis' && !firstOfFile) problem(e, 'genesis', 'genesis record in the middle of a file');
    if (firstOfFile && e.type !== 'genesis')
      problem(e, 'genesis', 'file does not start with a genesis record: its first records were removed');
    if (firstOfFile && e.type === 'genesis') {
      if (e.fileIndex === 0) {
        if (e.prevHash !== ZERO_HASH)
          notes.push(`${e.file} continues a chain from earlier files not given (prev_hash ${e.prevHash}, seq ${seq})`);
        expectedPrev = undefined;
        expectedSeq = undefined;
      } else if (expectedPrev !== undefined && e.prevHash !== expectedPrev) {
        problem(
          e,
          'file-link',
          `genesis does not continue ${previous?.file ?? 'the previous file'}: its last records were removed, or the files are out of order`,
        );
        expectedPrev = undefined;
        expectedSeq = undefined;
      }
    }

    if (expectedSeq !== undefined && seq !== expectedSeq && e.hashOk) {
      if (seq > expectedSeq) {
        const later = (positions.get(expectedSeq) ?? []).some((p) => p > i);
        if (later)
          problem(
            e,
            'reordered',
            `seq ${seq} where ${expectedSeq} was expected; ${expectedSeq} comes later: records were reordered`,
          );
        else
          problem(
            e,
            'removed',
            `seq jumps from ${expectedSeq - 1} to ${seq}: ${seq - expectedSeq} record(s) removed before this line`,
          );
      } else {
        const earlier = seen.get(seq);
        if (earlier !== undefined)
          problem(
            e,
            'inserted',
            `seq ${seq} already appeared at ${earlier.file}:${earlier.line}: a record was inserted`,
          );
        else problem(e, 'reordered', `seq ${seq} after ${expectedSeq - 1}: records were reordered`);
        // Going backwards: skip this record and keep expecting what came before it.
        seen.set(seq, e);
        return;
      }
    } else if (
      expectedPrev !== undefined &&
      e.prevHash !== expectedPrev &&
      e.hashOk &&
      !(firstOfFile && e.type === 'genesis')
    ) {
      problem(
        e,
        'broken-link',
        `prev_hash does not match the hash of ${previous !== undefined ? `${previous.file}:${previous.line}` : 'the previous record'}: a record before this line was replaced or inserted with a recomputed hash`,
      );
    }
    seen.set(seq, e);
    expectedSeq = seq + 1;
    expectedPrev = e.hash;
    previous = e;
  });

  const last = [...entries].reverse().find((e) => e.hash !== undefined);
  return {
    ok: problems.length === 0,
    files,
    records: entries.length,
    decisions,
    gaps,
    problems,
    ...(last?.hash !== undefined ? { head: last.hash } : {}),
    notes,
  };
}

/**
 * Verifies the log at `path`: the file and, when it is the live file of a rotated
 * set, its rotated predecessors `<path>.<n>` (oldest first). A rotated file given by
 * name (`<path>.<n>`) is verified alone.
 */
export async function verifyDecisionLog(path: string): Promise<VerifyReport> {
  const rotated = /\.[1-9]\d*$/.test(path) ? [] : (await rotatedFiles(path)).map((r) => r.path);
  const live = await stat(path).then(
    () => [path],
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' && rotated.length > 0) return [];
      throw err;
    },
  );
  return verifyFiles([...rotated, ...live]);
}
