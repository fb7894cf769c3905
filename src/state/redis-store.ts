/**
 * The Redis (or Valkey) store: budgets, rates and approvals shared by every replica.
 * Each check-and-consume is one server-side Lua script (redis-scripts.ts), sent with
 * EVALSHA (EVAL once after a NOSCRIPT). ioredis is imported only when this store is
 * configured. Connections are a small round-robin pool; commands are never queued
 * while disconnected nor resent after a reconnect (a consume that arrives late would
 * charge a call already answered), and every call runs under the guard's deadline and
 * circuit breaker (guard.ts).
 */
import { createHash } from 'node:crypto';
import type { Redis as RedisClient } from 'ioredis';
import { TollgateError } from '../errors.ts';
import { createGuard, type Guard } from './guard.ts';
import { approvalStatusAt } from './memory-store.ts';
import { CONSUME, DECIDE, EXPIRE, FIND, REFUND, REQUEST, USAGE, USE } from './redis-scripts.ts';
import type { ApprovalRecord, ApprovalStatus, BudgetCharge, ConsumeResult, StateStore } from './types.ts';

/** Options of createRedisStore. */
export interface RedisStoreOptions {
  /** redis://[user:password@]host:port[/db] or rediss://… */
  readonly url: string;
  /** Prefix of every key ("tollgate:"). */
  readonly keyPrefix: string;
  readonly connections: number;
  readonly timeoutMs: number;
  readonly circuitBreaker: { readonly failureThreshold: number; readonly openMs: number };
  /** Approvals kept after their answer stops applying. */
  readonly retainMs?: number;
  readonly onError?: (operation: string, error: TollgateError) => void;
  /** Tests: a fixed clock passed to the scripts (0: Redis's own TIME). */
  readonly now?: () => number;
  /** How long start-up waits for the first connection before serving anyway (failing closed). */
  readonly connectWaitMs?: number;
}

/** A Redis store, with its guard (for tests and the admin status). */
export interface RedisStore extends StateStore {
  readonly guard: Guard;
}

const sha1 = (text: string): string => createHash('sha1').update(text).digest('hex');
const SCRIPTS = { CONSUME, USAGE, REFUND, FIND, REQUEST, USE, DECIDE, EXPIRE } as const;
type ScriptName = keyof typeof SCRIPTS;
const SHAS = Object.fromEntries(Object.entries(SCRIPTS).map(([k, v]) => [k, sha1(v)])) as Record<ScriptName, string>;

/** The url without its password, for messages and logs. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = 'REDACTED';
    return `${u.protocol}//${u.username === '' ? '' : `${u.username}${u.password === '' ? '' : ':REDACTED'}@`}${u.host}${u.pathname === '/' ? '' : u.pathname}`;
  } catch {
    return '(unparseable redis url)';
  }
}

/** A flat HGETALL reply as a record. */
function hashRecord(flat: readonly string[]): ApprovalRecord {
  const h: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) h[flat[i]!] = flat[i + 1]!;
  const base = JSON.parse(h.json ?? '{}') as ApprovalRecord;
  return {
    ...base,
    reasons: Array.isArray(base.reasons) ? base.reasons : [],
    approvers: Array.isArray(base.approvers) ? base.approvers : [],
    status: (h.status ?? 'pending') as ApprovalStatus,
    created_at: Number(h.created_at),
    expires_at: Number(h.expires_at),
    uses_left: Number(h.uses_left ?? 0),
    ...(h.decided_by === undefined ? {} : { decided_by: h.decided_by }),
    ...(h.decided_at === undefined ? {} : { decided_at: Number(h.decided_at) }),
    ...(h.comment === undefined ? {} : { comment: h.comment }),
  };
}

/** Connects to Redis (lazy-loading ioredis) and returns the store. */
export async function createRedisStore(options: RedisStoreOptions): Promise<RedisStore> {
  const { Redis } = await import('ioredis');
  const target = `redis ${redactRedisUrl(options.url)}`;
  const prefix = options.keyPrefix;
  const retainMs = options.retainMs ?? 24 * 3600 * 1000;
  const clock = options.now ?? (() => 0);
  const guard = createGuard({
    timeoutMs: options.timeoutMs,
    failureThreshold: options.circuitBreaker.failureThreshold,
    openMs: options.circuitBreaker.openMs,
    target,
    ...(options.onError === undefined ? {} : { onError: options.onError }),
  });
  const clients: RedisClient[] = [];
  for (let i = 0; i < Math.max(1, options.connections); i++) {
    const client = new Redis(options.url, {
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
      commandTimeout: options.timeoutMs,
      connectTimeout: Math.max(1000, options.timeoutMs * 4),
      // Reconnect soon and keep trying: recovery must not wait for a human.
      retryStrategy: (times) => Math.min(50 * times, 1000),
      lazyConnect: false,
    });
    // Errors surface per call through the guard; an unhandled 'error' event would crash.
    client.on('error', () => undefined);
    clients.push(client);
  }
  // Serve at once if Redis is down at start: the failure mode applies until it is back.
  await Promise.race([
    Promise.all(clients.map((c) => new Promise((resolve) => c.once('ready', resolve)))),
    new Promise((resolve) => setTimeout(resolve, options.connectWaitMs ?? 2000).unref()),
  ]);
  let next = 0;
  const client = (): RedisClient => {
    // Round robin over the ready connections; any if none is.
    for (let i = 0; i < clients.length; i++) {
      const c = clients[(next + i) % clients.length]!;
      if (c.status === 'ready') {
        next = (next + i + 1) % clients.length;
        return c;
      }
    }
    return clients[0]!;
  };

  async function script(
    name: ScriptName,
    keys: readonly string[],
    args: readonly (string | number)[],
  ): Promise<unknown> {
    const c = client();
    try {
      return await c.evalsha(SHAS[name], keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return c.eval(SCRIPTS[name], keys.length, ...keys, ...args);
    }
  }

  const budgetKeys = (key: string): [string, string] => [`${prefix}b:{${key}}`, `${prefix}b:{${key}}:sum`];
  const member = (b: Pick<BudgetCharge, 'chargeId' | 'cost'>): string => `${b.chargeId}|${b.cost}`;
  const approvalPrefix = `${prefix}{ap}:rec:`;
  const pendingKey = `${prefix}{ap}:pending`;
  const allKey = `${prefix}{ap}:all`;
  const indexKey = (agent: string, digest: string): string =>
    `${prefix}{ap}:idx:${createHash('sha256').update(`${agent}\n${digest}`).digest('hex')}`;
  // The scripts' clock (Redis TIME, or the test clock) read here for lazily expired views.
  const wallNow = (): number => clock() || Date.now();
  const withStatus = (record: ApprovalRecord): ApprovalRecord => {
    const status = approvalStatusAt(record, wallNow());
    return status === record.status ? record : { ...record, status };
  };

  const store: RedisStore = {
    kind: 'redis',
    guard,
    usage: (budgets) =>
      guard.run('usage', async () => {
        if (budgets.length === 0) return [];
        const reply = (await script(
          'USAGE',
          budgets.flatMap((b) => budgetKeys(b.key)),
          [clock(), ...budgets.map((b) => b.windowMs)],
        )) as string[];
        return reply.map(Number);
      }),
    consume: (budgets, rates) =>
      guard.run('consume', async (): Promise<ConsumeResult> => {
        const keys = [...budgets.flatMap((b) => budgetKeys(b.key)), ...rates.map((r) => `${prefix}r:{${r.key}}`)];
        const args: (string | number)[] = [clock(), budgets.length, rates.length];
        for (const b of budgets) args.push(b.cost, b.limit, b.windowMs, member(b));
        for (const r of rates) args.push(r.rate, r.burst);
        let reply: (string | number)[];
        try {
          reply = (await script('CONSUME', keys, args)) as (string | number)[];
        } catch (err) {
          // The script may have run although its answer never came: give the charges back.
          if (budgets.length > 0) void store.refund(budgets).catch(() => undefined);
          throw err;
        }
        if (Number(reply[0]) === 1) {
          const values = reply.slice(1).map(Number);
          return { ok: true, used: values.slice(0, budgets.length), tokens: values.slice(budgets.length) };
        }
        return {
          ok: false,
          kind: reply[1] === 'rate' ? 'rate' : 'budget',
          index: Number(reply[2]),
          level: Number(reply[3]),
          retryAfterMs: Number(reply[4]),
        };
      }),
    refund: (charges) =>
      guard.run('refund', async () => {
        if (charges.length === 0) return;
        await script(
          'REFUND',
          charges.flatMap((c) => budgetKeys(c.key)),
          charges.map((c) => member(c)),
        );
      }),
    findApproval: (agent, digest) =>
      guard.run('approval_find', async () => {
        const reply = (await script('FIND', [indexKey(agent, digest)], [clock(), approvalPrefix])) as string[] | null;
        return reply === null ? undefined : withStatus(hashRecord(reply));
      }),
    requestApproval: (request) =>
      guard.run('approval_request', async () => {
        const reply = (await script(
          'REQUEST',
          [indexKey(request.agent, request.digest), pendingKey, allKey],
          [
            clock(),
            approvalPrefix,
            request.id,
            JSON.stringify(request),
            request.ttl_ms,
            retainMs,
            10_000,
            request.uses,
          ],
        )) as (string | number)[];
        return { created: Number(reply[0]) === 1, record: hashRecord(reply.slice(1).map(String)) };
      }),
    useApproval: (id) =>
      guard.run('approval_use', async () => {
        const reply = (await script('USE', [approvalPrefix + id], [clock()])) as string[] | null;
        return reply === null ? undefined : hashRecord(reply);
      }),
    decideApproval: (id, outcome, approver, comment) =>
      guard.run('approval_decide', async () => {
        const reply = (await script(
          'DECIDE',
          [approvalPrefix + id, pendingKey],
          [clock(), id, outcome, approver, comment ?? '', retainMs],
        )) as string[];
        const tag = reply[0];
        if (tag === 'not_found') return { ok: false, reason: 'not_found' } as const;
        const record = hashRecord(reply.slice(1));
        return tag === 'ok' ? ({ ok: true, record } as const) : ({ ok: false, reason: 'not_pending', record } as const);
      }),
    getApproval: (id) =>
      guard.run('approval_get', async () => {
        const flat = await client().hgetall(approvalPrefix + id);
        return Object.keys(flat).length === 0 ? undefined : withStatus(hashRecord(Object.entries(flat).flat()));
      }),
    listApprovals: (status, limit) =>
      guard.run('approval_list', async () => {
        const ids = await client().zrevrange(allKey, 0, 999);
        if (ids.length === 0) return [];
        const pipeline = client().pipeline();
        for (const id of ids) pipeline.hgetall(approvalPrefix + id);
        const replies = (await pipeline.exec()) ?? [];
        const out: ApprovalRecord[] = [];
        for (const [err, flat] of replies) {
          if (err !== null || flat === null || Object.keys(flat as object).length === 0) continue;
          const record = withStatus(hashRecord(Object.entries(flat as Record<string, string>).flat()));
          if (status !== undefined && record.status !== status) continue;
          out.push(record);
          if (out.length >= limit) break;
        }
        return out;
      }),
    expireApprovals: () =>
      guard.run('approval_expire', async () => {
        const ids = (await script('EXPIRE', [pendingKey], [clock(), approvalPrefix])) as string[];
        const out: ApprovalRecord[] = [];
        for (const id of ids) {
          const flat = await client().hgetall(approvalPrefix + id);
          if (Object.keys(flat).length > 0) out.push(hashRecord(Object.entries(flat).flat()));
        }
        return out;
      }),
    pendingCount: () => guard.run('approval_count', async () => client().zcount(pendingKey, wallNow(), '+inf')),
    async close() {
      await Promise.all(clients.map((c) => c.quit().catch(() => c.disconnect())));
    },
  };
  return store;
}
