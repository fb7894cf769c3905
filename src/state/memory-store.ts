/**
 * The in-memory store: the embedded default for one process. Same semantics as the
 * Redis store's Lua scripts (test/state/store-semantics.test.ts runs one suite against
 * both): a rolling-window budget is a log of charges whose costs inside the window are
 * summed; a rate is a token bucket refilled continuously; an approval moves
 * pending → approved | rejected | expired. JavaScript runs one call at a time, so each
 * method is atomic as the Lua scripts are. Memory is bounded: idle keys are swept.
 */
import type {
  ApprovalAsk,
  ApprovalDecideResult,
  ApprovalRecord,
  ApprovalRequest,
  ApprovalStatus,
  BudgetCharge,
  ConsumeResult,
  RateTake,
  StateStore,
} from './types.ts';

/** Options of createMemoryStore. */
export interface MemoryStoreOptions {
  /** The clock (tests). */
  readonly now?: () => number;
  /** Approvals kept after their answer stops applying (default 24 h), at most maxApprovals. */
  readonly retainMs?: number;
  readonly maxApprovals?: number;
}

interface Entry {
  readonly at: number;
  readonly cost: number;
  readonly id: string;
}

interface Log {
  entries: Entry[];
  windowMs: number;
  /** Sum of the entries' costs, kept so a check is not a walk over the window. */
  sum: number;
}

interface Bucket {
  tokens: number;
  at: number;
  rate: number;
  burst: number;
}

/** Seconds-level epsilon so 0.1 + 0.2 fits a 0.3 limit, as money users expect. */
const EPSILON = 1e-9;

/** Whether an approval is still in force at `now` (pending not lapsed; answer within validity). */
export function approvalLive(record: ApprovalRecord, now: number): boolean {
  return now <= record.expires_at;
}

/** The status an approval has at `now`: a pending one past its expiry reads as expired. */
export function approvalStatusAt(record: ApprovalRecord, now: number): ApprovalStatus {
  return record.status === 'pending' && !approvalLive(record, now) ? 'expired' : record.status;
}

/** Whether an approval can be used for a call at `now`. */
export function approvalUsable(record: ApprovalRecord, now: number): boolean {
  return record.status === 'approved' && approvalLive(record, now) && record.uses_left > 0;
}

/** The index key of (agent, digest). */
function indexKey(agent: string, digest: string): string {
  return `${agent}\n${digest}`;
}

/** Creates the in-memory store. */
export function createMemoryStore(options: MemoryStoreOptions = {}): StateStore {
  const now = options.now ?? Date.now;
  const retainMs = options.retainMs ?? 24 * 3600 * 1000;
  const maxApprovals = options.maxApprovals ?? 10_000;
  const logs = new Map<string, Log>();
  const buckets = new Map<string, Bucket>();
  const approvals = new Map<string, ApprovalRecord>();
  const index = new Map<string, string>();

  function prune(log: Log, at: number): number {
    const cutoff = at - log.windowMs;
    let drop = 0;
    while (drop < log.entries.length && log.entries[drop]!.at <= cutoff) log.sum -= log.entries[drop++]!.cost;
    if (drop > 0) log.entries.splice(0, drop);
    // Exactly zero when empty, so float residue never outlives the charges.
    if (log.entries.length === 0) log.sum = 0;
    return log.sum;
  }

  function logOf(key: string, windowMs: number): Log {
    let log = logs.get(key);
    if (log === undefined) logs.set(key, (log = { entries: [], windowMs, sum: 0 }));
    // A policy that changes a key's window changes it for the whole log.
    log.windowMs = windowMs;
    return log;
  }

  function refill(key: string, take: RateTake, at: number): Bucket {
    let bucket = buckets.get(key);
    if (bucket === undefined) {
      bucket = { tokens: take.burst, at, rate: take.rate, burst: take.burst };
      buckets.set(key, bucket);
    } else {
      const elapsed = Math.max(0, at - bucket.at) / 1000;
      bucket.tokens = Math.min(take.burst, bucket.tokens + elapsed * take.rate);
      bucket.at = at;
      bucket.rate = take.rate;
      bucket.burst = take.burst;
    }
    return bucket;
  }

  /** Time until enough of the oldest charges leave the window for `cost` to fit. */
  function budgetRetry(log: Log, used: number, charge: BudgetCharge, at: number): number {
    let remaining = used;
    for (const e of log.entries) {
      remaining -= e.cost;
      if (remaining + charge.cost <= charge.limit + EPSILON) return Math.max(1, e.at + log.windowMs - at + 1);
    }
    // Larger than the limit itself: it never fits.
    return charge.windowMs;
  }

  // Idle keys are forgotten: a budget whose window emptied, a bucket that refilled.
  const sweep = setInterval(() => {
    const at = now();
    for (const [key, log] of logs) if (prune(log, at) === 0 && log.entries.length === 0) logs.delete(key);
    for (const [key, b] of buckets) if (b.tokens + ((at - b.at) / 1000) * b.rate >= b.burst) buckets.delete(key);
    for (const [id, r] of approvals) {
      if (at > r.expires_at + retainMs) {
        approvals.delete(id);
        if (index.get(indexKey(r.agent, r.digest)) === id) index.delete(indexKey(r.agent, r.digest));
      }
    }
  }, 10_000);
  sweep.unref();

  function store(record: ApprovalRecord): ApprovalRecord {
    approvals.set(record.id, record);
    if (approvals.size > maxApprovals) {
      const oldest = approvals.keys().next().value!;
      approvals.delete(oldest);
    }
    return record;
  }

  /** Marks a lapsed pending approval expired; true when this call did it. */
  function expire(record: ApprovalRecord, at: number): ApprovalRecord | undefined {
    if (record.status !== 'pending' || approvalLive(record, at)) return undefined;
    return store({ ...record, status: 'expired' });
  }

  const api: StateStore = {
    kind: 'memory',
    async usage(budgets) {
      const at = now();
      return budgets.map((b) => {
        const log = logs.get(b.key);
        if (log === undefined) return 0;
        log.windowMs = b.windowMs;
        return prune(log, at);
      });
    },
    async consume(budgetCharges, rates): Promise<ConsumeResult> {
      const at = now();
      const used: number[] = [];
      for (let i = 0; i < budgetCharges.length; i++) {
        const charge = budgetCharges[i]!;
        const log = logOf(charge.key, charge.windowMs);
        const sum = prune(log, at);
        if (sum + charge.cost > charge.limit + EPSILON)
          return { ok: false, kind: 'budget', index: i, level: sum, retryAfterMs: budgetRetry(log, sum, charge, at) };
        used.push(sum);
      }
      const tokens: number[] = [];
      for (let i = 0; i < rates.length; i++) {
        const take = rates[i]!;
        const bucket = refill(take.key, take, at);
        if (bucket.tokens < 1)
          return {
            ok: false,
            kind: 'rate',
            index: i,
            level: bucket.tokens,
            retryAfterMs: Math.ceil(((1 - bucket.tokens) / take.rate) * 1000),
          };
        tokens.push(bucket.tokens);
      }
      // Every check passed: now apply them all (nothing above has changed a budget).
      for (let i = 0; i < budgetCharges.length; i++) {
        const charge = budgetCharges[i]!;
        const log = logOf(charge.key, charge.windowMs);
        log.entries.push({ at, cost: charge.cost, id: charge.chargeId });
        log.sum += charge.cost;
        used[i] = used[i]! + charge.cost;
      }
      for (let i = 0; i < rates.length; i++) {
        buckets.get(rates[i]!.key)!.tokens -= 1;
        tokens[i] = tokens[i]! - 1;
      }
      return { ok: true, used, tokens };
    },
    async refund(charges) {
      for (const c of charges) {
        const log = logs.get(c.key);
        if (log === undefined) continue;
        // Newest first: a refund follows its charge closely.
        const i = log.entries.findLastIndex((e) => e.id === c.chargeId);
        if (i === -1) continue;
        log.sum -= log.entries[i]!.cost;
        log.entries.splice(i, 1);
        if (log.entries.length === 0) log.sum = 0;
      }
    },
    async findApproval(agent, digest) {
      const id = index.get(indexKey(agent, digest));
      const record = id === undefined ? undefined : approvals.get(id);
      if (record === undefined) return undefined;
      const at = now();
      const status = approvalStatusAt(record, at);
      if (status === 'expired' || !approvalLive(record, at)) return undefined;
      if (status === 'approved' && record.uses_left <= 0) return undefined;
      return record;
    },
    async requestApproval(request): Promise<ApprovalAsk> {
      const open = await api.findApproval(request.agent, request.digest);
      if (open !== undefined) return { record: open, created: false };
      const at = now();
      const record: ApprovalRecord = {
        ...request,
        status: 'pending',
        created_at: at,
        expires_at: at + request.ttl_ms,
        uses_left: 0,
      };
      store(record);
      index.set(indexKey(request.agent, request.digest), record.id);
      return { record, created: true };
    },
    async useApproval(id) {
      const record = approvals.get(id);
      if (record === undefined || !approvalUsable(record, now())) return undefined;
      return store({ ...record, uses_left: record.uses_left - 1 });
    },
    async decideApproval(id, outcome, approver, comment): Promise<ApprovalDecideResult> {
      const record = approvals.get(id);
      if (record === undefined) return { ok: false, reason: 'not_found' };
      const at = now();
      const expired = expire(record, at);
      if (expired !== undefined || record.status !== 'pending')
        return { ok: false, reason: 'not_pending', record: expired ?? record };
      const decided: ApprovalRecord = {
        ...record,
        status: outcome,
        decided_by: approver,
        decided_at: at,
        expires_at: at + record.ttl_ms,
        uses_left: outcome === 'approved' ? record.uses : 0,
        ...(comment === undefined ? {} : { comment }),
      };
      return { ok: true, record: store(decided) };
    },
    async getApproval(id) {
      const record = approvals.get(id);
      if (record === undefined) return undefined;
      const at = now();
      return approvalStatusAt(record, at) === record.status ? record : { ...record, status: 'expired' };
    },
    async listApprovals(status, limit) {
      const at = now();
      const out: ApprovalRecord[] = [];
      for (const r of [...approvals.values()].reverse()) {
        const s = approvalStatusAt(r, at);
        if (status !== undefined && s !== status) continue;
        out.push(s === r.status ? r : { ...r, status: s });
        if (out.length >= limit) break;
      }
      return out;
    },
    async expireApprovals() {
      const at = now();
      const out: ApprovalRecord[] = [];
      for (const r of approvals.values()) {
        const expired = expire(r, at);
        if (expired !== undefined) out.push(expired);
      }
      return out;
    },
    async pendingCount() {
      const at = now();
      let n = 0;
      for (const r of approvals.values()) if (approvalStatusAt(r, at) === 'pending') n++;
      return n;
    },
    async close() {
      clearInterval(sweep);
    },
  };
  return api;
}
