/**
 * The state port: budgets, rate limits and approvals that outlive one request and are
 * shared by every replica. Two implementations keep the same semantics: the in-memory
 * store (one process, the embedded default) and the Redis store (server-side Lua, so a
 * check-and-consume is one atomic step however many replicas ask at once).
 */

/** One budget charge: `cost` units against `limit` per rolling `windowMs`. */
export interface BudgetCharge {
  readonly key: string;
  readonly cost: number;
  readonly limit: number;
  readonly windowMs: number;
  /** Unique per charge, so a refund removes exactly this one. */
  readonly chargeId: string;
}

/** One token-bucket take: `rate` tokens per second, at most `burst` banked. */
export interface RateTake {
  readonly key: string;
  readonly rate: number;
  readonly burst: number;
}

/** A budget's state as the policy sees it in input.usage. */
export interface BudgetUsage {
  readonly used: number;
  readonly limit: number;
  readonly remaining: number;
  readonly window_seconds: number;
}

/** The result of an all-or-nothing consume. */
export type ConsumeResult =
  | {
      readonly ok: true;
      /** Units used in each budget's window after the charge, in request order. */
      readonly used: readonly number[];
      /** Tokens left in each bucket after the take, in request order. */
      readonly tokens: readonly number[];
    }
  | {
      readonly ok: false;
      readonly kind: 'budget' | 'rate';
      /** Index into budgets or rates of the first one that refused. */
      readonly index: number;
      /** budget: units already used in the window; rate: tokens in the bucket. */
      readonly level: number;
      /** When the refused charge could next succeed (rate: next token; budget: enough charges expired). */
      readonly retryAfterMs: number;
    };

/** Lifecycle state of an approval. */
export type ApprovalStatus = 'pending' | 'approved' | 'rejected' | 'expired';

/** A request for human approval and what became of it (field names as the admin API shows them). */
export interface ApprovalRecord {
  readonly id: string;
  readonly status: ApprovalStatus;
  readonly agent: string;
  readonly method: string;
  readonly authority: string;
  readonly path: string;
  /** sha256 of method, authority, path and body digest: what an approval is for. */
  readonly digest: string;
  readonly body_digest: string;
  readonly reasons: readonly string[];
  /** Who may approve (empty: anyone holding the approvals token). */
  readonly approvers: readonly string[];
  /** The decision that asked for it. */
  readonly decision_id: string;
  readonly created_at: number;
  /** Pending: when the request lapses; approved/rejected: when the answer stops applying. */
  readonly expires_at: number;
  /** How long the request stays pending, and an answer stays valid once given. */
  readonly ttl_ms: number;
  /** Calls an approval allows. */
  readonly uses: number;
  readonly uses_left: number;
  readonly decided_by?: string;
  readonly decided_at?: number;
  readonly comment?: string;
}

/** What a new approval request carries (the store assigns status and times). */
export type ApprovalRequest = Omit<
  ApprovalRecord,
  'status' | 'created_at' | 'expires_at' | 'uses_left' | 'decided_by' | 'decided_at' | 'comment'
>;

/** The outcome of asking for an approval. */
export interface ApprovalAsk {
  readonly record: ApprovalRecord;
  /** True when this call created it; false when an open one for the same call exists. */
  readonly created: boolean;
}

/** The outcome of deciding an approval. */
export type ApprovalDecideResult =
  | { readonly ok: true; readonly record: ApprovalRecord }
  | { readonly ok: false; readonly reason: 'not_found' | 'not_pending'; readonly record?: ApprovalRecord };

/** The store every replica shares. Every method rejects with TG_ERR_STATE_UNAVAILABLE when it cannot answer in time. */
export interface StateStore {
  readonly kind: 'memory' | 'redis';
  /** Units used now in each budget's rolling window (same order). */
  usage(budgets: readonly Pick<BudgetCharge, 'key' | 'windowMs'>[]): Promise<number[]>;
  /** Charges every budget and takes from every bucket, or none of them when one refuses. */
  consume(budgets: readonly BudgetCharge[], rates: readonly RateTake[]): Promise<ConsumeResult>;
  /** Removes charges (a failed upstream call); unknown charge ids are ignored. */
  refund(charges: readonly Pick<BudgetCharge, 'key' | 'chargeId' | 'cost'>[]): Promise<void>;
  /** The most relevant approval for this agent and request digest (usable, open or rejected), if any. */
  findApproval(agent: string, digest: string): Promise<ApprovalRecord | undefined>;
  /** Creates a pending approval, unless one for the same agent and digest is open (then returns it). */
  requestApproval(request: ApprovalRequest): Promise<ApprovalAsk>;
  /** Takes one use of an approved, unexpired approval; undefined when none is left. */
  useApproval(id: string): Promise<ApprovalRecord | undefined>;
  /** Approves or rejects a pending approval. */
  decideApproval(
    id: string,
    outcome: 'approved' | 'rejected',
    approver: string,
    comment: string | undefined,
  ): Promise<ApprovalDecideResult>;
  getApproval(id: string): Promise<ApprovalRecord | undefined>;
  /** Approvals, newest first (at most `limit`), optionally of one status. */
  listApprovals(status: ApprovalStatus | undefined, limit: number): Promise<ApprovalRecord[]>;
  /** Pending approvals that lapsed are marked expired; returns them (each exactly once across replicas). */
  expireApprovals(): Promise<ApprovalRecord[]>;
  /** Pending approvals not yet lapsed. */
  pendingCount(): Promise<number>;
  close(): Promise<void>;
}
