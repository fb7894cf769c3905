/**
 * The decision log: one JSON line per decision with OPA's decision-log fields
 * (decision_id, timestamp, path, input (masked), result, bundles, metrics, labels,
 * erased, trace_id, span_id, requested_by), hash-chained (seq, prev_hash, hash; see
 * chain.ts) from a genesis record written when a file is created. A rotated file's
 * genesis links to the previous file's last hash, so a rotated set is one chain. An
 * existing file is continued when it ends intact and its genesis names the scheme the
 * writer seals with; otherwise it is kept as it is and the chain goes on in a new file.
 *
 * The request path only calls write(), which pushes the event onto a bounded queue
 * and returns: masking, serialising and hashing happen later, off the request, in the
 * event loop turn after it (so the work stays spread out as requests are); the sealed
 * lines reach the file together, every fileFlushMs or at 64 KiB, in one write (as
 * Envoy's access log buffers its file writes), not one write per decision.
 * When the queue is full the event is dropped — never silently: onDropped counts it
 * (→ tollgate_decision_log_dropped_total), a rate-limited warn line says how many, and
 * a `gap` record in the chain itself says how many decisions are missing there, so
 * an auditor reading only the file sees the hole.
 *
 * Record types: genesis `{type:"genesis", chain_id, created, hash_scheme, prev_file?, seq, prev_hash}`,
 * decision (OPA's fields, no `type`), gap `{type:"gap", dropped, timestamp, seq, prev_hash}`.
 */
import { randomUUID } from 'node:crypto';
import { INPUT_FROM_TEXT, LINE_HASH_SCHEME, ZERO_HASH, sealRecord, sealRecordInto, type LineSpace } from './chain.ts';
import { DEFAULT_MASK, maskEvent } from './mask.ts';
import { readFile } from 'node:fs/promises';
import { nonEmptyFile, openFileSink, readFirstLine, readLastLine, type FileSink } from './file-sink.ts';
import { createHttpSink, type HttpSink, type HttpSinkOptions } from './http-sink.ts';

// Records sealed per turn of the event loop (~1 ms of work).
const SEAL_BATCH = 64;

// The write batch's buffer: the 64 KiB at which a batch is written, plus the line that crosses it.
const PENDING_BUFFER_BYTES = 128 * 1024;

/** One decision as the PEP / ext_authz server hands it over (unmasked; do not mutate it afterwards). */
export interface DecisionEvent {
  readonly decisionId: string;
  /** Default: when write() is called. */
  readonly timestamp?: Date;
  /** The decision path, e.g. "tollgate/authz/decision". */
  readonly path: string;
  readonly input: unknown;
  /** `input` as JSON text (what the policy evaluated): written as is when the mask erases nothing in it. */
  readonly inputJson?: string;
  /** The decision path's value (Decision.result); absent when no decision was made. */
  readonly result?: unknown;
  /** Bundle revision (Decision.revision). */
  readonly revision: string;
  /** Decision.evalNanos → metrics.timer_rego_query_eval_ns. */
  readonly evalNanos?: number;
  /** When no decision could be made: the error, and the failure mode applied. */
  readonly error?: { readonly code: string; readonly message: string; readonly failureMode: 'allow' | 'deny' };
  readonly traceId?: string;
  readonly spanId?: string;
  /** The client address (OPA's requested_by). */
  readonly requestedBy?: string;
  /** OPA's `custom` member: what a step after the PDP did (src/state: budgets, rates, approvals). */
  readonly custom?: unknown;
}

/** Where and how the log is written. */
export interface DecisionLogOptions {
  /** File sink; rotation when the file would pass maxBytes (default 100 MiB), keeping maxFiles rotated files (default 10; 0 keeps all). */
  readonly file?: { readonly path: string; readonly maxBytes?: number; readonly maxFiles?: number };
  /** HTTP sink in OPA's upload format. */
  readonly http?: Omit<HttpSinkOptions, 'onDropped' | 'warn'>;
  /** JSON pointers erased from each event (default DEFAULT_MASK). */
  readonly mask?: readonly string[];
  /** OPA's labels (e.g. id, version, agent); default {id: <random instance id>}. */
  readonly labels?: Readonly<Record<string, string>>;
  /** Bundle name under `bundles` (default "tollgate"). */
  readonly bundleName?: string;
  /** Events waiting to be written; beyond it they are dropped. Default 10000. */
  readonly maxQueue?: number;
  /** Longest time a sealed record waits for the file write (at 64 KiB it is written at once). Default 200. */
  readonly fileFlushMs?: number;
  /** Called with the number of records dropped (file queue or HTTP buffer). */
  readonly onDropped?: (count: number) => void;
  readonly logger?: { warn(obj: object, msg: string): void };
  /** Least time between two "dropped" warn lines. Default 5000. */
  readonly warnIntervalMs?: number;
  /** Tests: the clock. */
  readonly now?: () => Date;
}

/** The running decision log. */
export interface DecisionLog {
  /** Queues one decision; never blocks, never throws. */
  write(event: DecisionEvent): void;
  /** Resolves when everything queued so far is written (and uploaded, if HTTP is on). */
  flush(): Promise<void>;
  /** Flushes, then closes the sinks; later writes are dropped and counted. */
  close(): Promise<void>;
  /** Counters for tests and the admin endpoint. */
  stats(): { readonly queued: number; readonly written: number; readonly dropped: number };
}

type Item =
  | { readonly kind: 'event'; readonly event: DecisionEvent; readonly at: Date }
  | { kind: 'gap'; dropped: number; readonly at: Date };

interface ChainState {
  chainId: string;
  seq: number;
  hash: string;
}

type ChainRecord = { seq?: unknown; hash?: unknown; chain_id?: unknown; hash_scheme?: unknown };

function chainState(last: ChainRecord, genesis: ChainRecord | undefined): ChainState | undefined {
  if (typeof last.seq !== 'number' || typeof last.hash !== 'string') return undefined;
  return {
    chainId: typeof genesis?.chain_id === 'string' ? genesis.chain_id : randomUUID(),
    seq: last.seq,
    hash: last.hash,
  };
}

function parseRecord(line: string | undefined): ChainRecord | undefined {
  try {
    return line === undefined ? undefined : (JSON.parse(line) as ChainRecord);
  } catch {
    return undefined;
  }
}

/**
 * Where an existing file's chain ends (undefined when its last line is damaged), and whether
 * the file is sealed as the writer seals (else the chain goes on in a new file).
 */
async function existingChain(path: string): Promise<{ state: ChainState; sameScheme: boolean } | undefined> {
  const { line, torn } = await readLastLine(path);
  if (line === undefined || torn) return undefined;
  const last = parseRecord(line);
  if (last === undefined) return undefined;
  const genesis = parseRecord(await readFirstLine(path));
  const state = chainState(last, genesis);
  return state === undefined ? undefined : { state, sameScheme: genesis?.hash_scheme === LINE_HASH_SCHEME };
}

/** The last intact record of a damaged file (a rare recovery path: reads the whole file). */
async function lastIntactRecord(path: string): Promise<ChainState | undefined> {
  const lines = (await readFile(path, 'utf8')).split('\n');
  const genesis = parseRecord(lines[0]);
  for (let i = lines.length - 1; i >= 0; i--) {
    const record = parseRecord(lines[i]);
    const state = record === undefined ? undefined : chainState(record, genesis);
    if (state !== undefined) return state;
  }
  return undefined;
}

/** Opens the sinks (continuing an existing file's chain) and starts the writer. */
export async function createDecisionLog(options: DecisionLogOptions): Promise<DecisionLog> {
  const now = options.now ?? (() => new Date());
  const mask = options.mask ?? DEFAULT_MASK;
  const labels = options.labels ?? { id: randomUUID() };
  const bundleName = options.bundleName ?? 'tollgate';
  const maxQueue = options.maxQueue ?? 10000;
  const fileFlushMs = options.fileFlushMs ?? 200;
  const warnInterval = options.warnIntervalMs ?? 5000;
  const onDropped = options.onDropped ?? (() => undefined);
  const warn = (obj: object, msg: string): void => options.logger?.warn(obj, msg);

  let chain: ChainState = { chainId: randomUUID(), seq: -1, hash: ZERO_HASH };
  let file: FileSink | undefined;

  function genesisRecord(prevFile?: string): Record<string, unknown> {
    return {
      type: 'genesis',
      chain_id: chain.chainId,
      created: now().toISOString(),
      hash_scheme: LINE_HASH_SCHEME,
      ...(prevFile !== undefined ? { prev_file: prevFile } : {}),
    };
  }

  /** Moves the chain on by one record: sets its seq and prev_hash, seals it, keeps its hash. */
  function onChain<T extends { readonly hash: string }>(
    record: Record<string, unknown>,
    sealWith: (record: Record<string, unknown>) => T,
  ): T {
    const seq = chain.seq + 1;
    record.seq = seq;
    record.prev_hash = chain.hash;
    const sealed = sealWith(record);
    chain = { ...chain, seq, hash: sealed.hash };
    return sealed;
  }

  if (options.file !== undefined) {
    const { path } = options.file;
    const exists = await nonEmptyFile(path);
    const existing = exists ? await existingChain(path) : undefined;
    let rotated: string | undefined;
    if (existing !== undefined) chain = existing.state;
    if (exists && existing?.sameScheme !== true) {
      // Damaged tail (e.g. a crash mid-write), or records hashed the earlier way: leave the
      // file as it is for the auditor and continue the chain in a fresh file (from the last
      // intact record).
      if (existing === undefined) {
        const recovered = await lastIntactRecord(path);
        if (recovered !== undefined) chain = recovered;
      }
      const aside = await openFileSink(path, 0);
      rotated = await aside.rotate();
      await aside.close();
      warn(
        { component: 'decision-log', file: path, rotated },
        existing === undefined
          ? 'decision log file ends in a damaged record; kept it as is and continued the chain in a new file'
          : `decision log file hashes its records the earlier way (sha256-jcs); kept it as is and continued the chain in a new file (${LINE_HASH_SCHEME})`,
      );
    }
    file = await openFileSink(path, options.file.maxFiles ?? 10);
    if (existing === undefined || rotated !== undefined)
      await file.append(`${onChain(genesisRecord(rotated), sealRecord).line}\n`);
  }
  const maxBytes = options.file?.maxBytes ?? 100 * 1024 * 1024;

  let droppedTotal = 0;
  let written = 0;
  let unwarned = 0;
  let lastWarn = 0;
  let warnTimer: NodeJS.Timeout | undefined;
  const emitWarn = (): void => {
    warnTimer = undefined;
    if (unwarned === 0) return;
    lastWarn = Date.now();
    warn(
      { component: 'decision-log', dropped: unwarned, droppedTotal },
      `decision log queue full: dropped ${unwarned} records`,
    );
    unwarned = 0;
  };
  const dropped = (count: number): void => {
    droppedTotal += count;
    unwarned += count;
    try {
      onDropped(count);
    } catch {
      // A metrics callback must not break the log.
    }
    if (warnTimer === undefined) {
      warnTimer = setTimeout(emitWarn, Math.max(0, lastWarn + warnInterval - Date.now()));
      warnTimer.unref();
    }
  };

  const http: HttpSink | undefined =
    options.http !== undefined ? createHttpSink({ ...options.http, onDropped: dropped, warn }) : undefined;

  const queue: Item[] = [];
  let draining: Promise<void> | undefined;
  let closed = false;

  /** A record to seal, and the JSON text its `input` member is written from (see sealRecordInto). */
  interface Unsealed {
    readonly record: Record<string, unknown>;
    readonly inputJson?: string;
  }

  function decisionRecord(event: DecisionEvent, at: Date): Unsealed {
    const { event: masked, erased } = maskEvent({ input: event.input, result: event.result }, mask);
    // The input's own text when nothing in it was erased (copy-on-write: the same object).
    const inputJson = masked.input === event.input ? event.inputJson : undefined;
    // Built member by member rather than spread: one object per record, which sealing completes.
    const record: Record<string, unknown> = {
      decision_id: event.decisionId,
      timestamp: (event.timestamp ?? at).toISOString(),
      path: event.path,
      input: inputJson === undefined ? masked.input : INPUT_FROM_TEXT,
      result: masked.result,
      bundles: { [bundleName]: { revision: event.revision } },
      metrics: event.evalNanos !== undefined ? { timer_rego_query_eval_ns: event.evalNanos } : {},
      labels,
    };
    if (erased.length > 0) record.erased = erased;
    if (event.error !== undefined)
      record.error = { code: event.error.code, message: event.error.message, failure_mode: event.error.failureMode };
    if (event.traceId !== undefined) record.trace_id = event.traceId;
    if (event.spanId !== undefined) record.span_id = event.spanId;
    if (event.requestedBy !== undefined) record.requested_by = event.requestedBy;
    if (event.custom !== undefined) record.custom = event.custom;
    return inputJson === undefined ? { record } : { record, inputJson };
  }

  /** The record an item becomes (before sealing). */
  function recordOf(item: Item): Unsealed {
    return item.kind === 'gap'
      ? { record: { type: 'gap', dropped: item.dropped, timestamp: item.at.toISOString() } }
      : decisionRecord(item.event, item.at);
  }

  // Sealed lines not yet in the file, UTF-8 encoded where they were sealed: the first
  // pendingBytes bytes of `pending`, written together (see the header). Only the writer's one
  // turn at a time (schedule) touches it, so it is reused once a write has completed.
  let pending = Buffer.allocUnsafe(PENDING_BUFFER_BYTES);
  let pendingBytes = 0;
  let pendingDecisions = 0;
  let writeNow = false;
  let fileTimer: NodeJS.Timeout | undefined;

  /** Room for one more line at the end of `pending` (grown for a record larger than it). */
  function room(maxBytes: number): LineSpace {
    if (pendingBytes + maxBytes > pending.length) {
      const larger = Buffer.allocUnsafe(Math.max(pending.length * 2, pendingBytes + maxBytes));
      pending.copy(larger, 0, 0, pendingBytes);
      pending = larger;
    }
    return { bytes: pending, at: pendingBytes };
  }

  /** Seals a record onto the chain into `pending`; the line is kept by advancing pendingBytes. */
  function sealLine({ record, inputJson }: Unsealed): { start: number; end: number } {
    return onChain(record, (r) => sealRecordInto(r, room, inputJson));
  }

  async function writePending(): Promise<void> {
    if (file === undefined || pendingBytes === 0) return;
    const decisions = pendingDecisions;
    try {
      await file.append(pending.subarray(0, pendingBytes));
      written += decisions;
    } catch (err) {
      warn(
        { component: 'decision-log', err: err instanceof Error ? err.message : String(err) },
        'decision log file write failed',
      );
      dropped(decisions);
    } finally {
      pendingBytes = 0;
      pendingDecisions = 0;
      // A record far larger than usual grew the buffer: not kept for the next ones.
      if (pending.length > PENDING_BUFFER_BYTES) pending = Buffer.allocUnsafe(PENDING_BUFFER_BYTES);
    }
  }

  /**
   * Seals up to SEAL_BATCH queued items onto the chain: into `pending` for the file, to the
   * HTTP sink. One batch per turn of the event loop: what piled up while the file was
   * rotating is sealed a batch at a time between requests, not in one long turn.
   */
  async function drain(): Promise<void> {
    const batch = queue.splice(0, SEAL_BATCH);
    const decisionLines: string[] = [];
    for (const item of batch) {
      let unsealed: Unsealed;
      const before = chain;
      let line: { start: number; end: number };
      try {
        unsealed = recordOf(item);
        line = sealLine(unsealed);
      } catch (err) {
        // An event that cannot be serialised is dropped and counted, not thrown (seal moved no chain).
        warn(
          { component: 'decision-log', err: err instanceof Error ? err.message : String(err) },
          'decision could not be serialised for the log',
        );
        dropped(1);
        continue;
      }
      const bytes = line.end - line.start;
      if (file !== undefined && file.size + pendingBytes + bytes > maxBytes && file.size + pendingBytes > 0) {
        // Rotate before this record: it is sealed again after the new file's genesis.
        chain = before;
        await writePending();
        try {
          const rotated = await file.rotate();
          pendingBytes = sealLine({ record: genesisRecord(rotated) }).end;
        } catch (err) {
          warn(
            { component: 'decision-log', err: err instanceof Error ? err.message : String(err) },
            'decision log file rotation failed',
          );
        }
        line = sealLine(unsealed);
      }
      if (item.kind === 'event') {
        if (http !== undefined) decisionLines.push(pending.toString('utf8', line.start, line.end - 1));
        pendingDecisions++;
      }
      // Without a file the line was only needed for the HTTP sink.
      pendingBytes = file !== undefined ? line.end : 0;
    }
    if (file === undefined) {
      written += pendingDecisions;
      pendingDecisions = 0;
    }
    http?.add(decisionLines);
  }

  /** One turn of the writer: seal a batch of what is queued, then write the file when it is due. */
  async function step(): Promise<void> {
    await drain();
    if (writeNow || pendingBytes >= 64 * 1024) {
      writeNow = false;
      await writePending();
    } else if (pendingBytes > 0 && fileTimer === undefined) {
      fileTimer = setTimeout(() => {
        fileTimer = undefined;
        writeNow = true;
        void schedule();
      }, fileFlushMs);
    }
  }

  function schedule(): Promise<void> {
    draining ??= new Promise<void>((resolve) => setImmediate(resolve)).then(step).finally(() => {
      draining = undefined;
      if (queue.length > 0 || writeNow) void schedule();
    });
    return draining;
  }

  async function flushQueue(): Promise<void> {
    while (draining !== undefined || queue.length > 0 || pendingBytes > 0) {
      writeNow = true;
      await schedule();
    }
  }

  return {
    write(event) {
      const at = now();
      if (closed) {
        dropped(1);
        return;
      }
      if (queue.length >= maxQueue) {
        const last = queue.at(-1);
        // One gap record per run of drops, allowed past the bound so the chain records the hole.
        if (last?.kind === 'gap') last.dropped++;
        else queue.push({ kind: 'gap', dropped: 1, at });
        dropped(1);
        void schedule();
        return;
      }
      queue.push({ kind: 'event', event, at });
      void schedule();
    },
    async flush() {
      await flushQueue();
      await http?.flush();
    },
    async close() {
      if (closed) return;
      closed = true;
      await flushQueue();
      if (fileTimer !== undefined) clearTimeout(fileTimer);
      await http?.close();
      await file?.close();
      if (warnTimer !== undefined) clearTimeout(warnTimer);
      emitWarn();
    },
    stats: () => ({ queued: queue.length, written, dropped: droppedTotal }),
  };
}
