/**
 * Human approvals as approvers see them: list, inspect, approve, reject (the admin API
 * and `tollgate approvals` call this), plus what follows each event — a decision-log
 * record (path system/tollgate/approval, hash-chained with the decisions), the
 * approvals metrics, a span, and an optional webhook POST. A sweep marks lapsed
 * pending approvals expired (each exactly once across replicas: the store's script
 * decides which replica saw it).
 */
import { SpanKind, type Tracer } from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { DecisionLog } from '../audit/log.ts';
import type { StateMetrics } from './metrics.ts';
import type { ApprovalDecideResult, ApprovalRecord, ApprovalStatus, StateStore } from './types.ts';

/** Options of createApprovals. */
export interface ApprovalsOptions {
  readonly store: StateStore;
  readonly metrics: StateMetrics;
  readonly logger: Logger;
  readonly decisionLog?: DecisionLog;
  readonly tracer?: Tracer;
  /** Where an approval's status can be read, read per use (the admin port is known once it listens); the id is appended; "" : not shown. */
  readonly statusUrl: () => string;
  /** POSTed a JSON event for every request and answer. */
  readonly webhook?: {
    readonly url: string;
    readonly headers: Readonly<Record<string, string>>;
    readonly timeoutMs: number;
  };
  /** How often lapsed approvals are marked expired (0: never, tests). Default 5000. */
  readonly sweepMs?: number;
  /** Bundle revision recorded with approval events. */
  readonly revision?: () => string;
}

/** An approval event name. */
export type ApprovalEvent = 'requested' | 'approved' | 'rejected' | 'expired';

/** The approvals service. */
export interface Approvals {
  /** Where the agent (and its operator) can check an approval. */
  statusUrl(id: string): string;
  /** A call created a pending approval: log, metric, webhook. */
  requested(record: ApprovalRecord, decisionId: string): void;
  list(status: ApprovalStatus | undefined, limit: number): Promise<ApprovalRecord[]>;
  show(id: string): Promise<ApprovalRecord | undefined>;
  /** Approves or rejects; refuses an approver the policy did not name. */
  decide(
    id: string,
    outcome: 'approved' | 'rejected',
    approver: string,
    comment: string | undefined,
  ): Promise<
    ApprovalDecideResult | { readonly ok: false; readonly reason: 'not_an_approver'; readonly record: ApprovalRecord }
  >;
  close(): Promise<void>;
}

/** The record an approval event writes (also the webhook payload). */
export function approvalEvent(
  event: ApprovalEvent,
  record: ApprovalRecord,
  statusUrl: string,
): Record<string, unknown> {
  return {
    event: `approval.${event}`,
    approval: {
      ...record,
      created_at: new Date(record.created_at).toISOString(),
      expires_at: new Date(record.expires_at).toISOString(),
      ...(record.decided_at === undefined ? {} : { decided_at: new Date(record.decided_at).toISOString() }),
    },
    ...(statusUrl === '' ? {} : { status_url: statusUrl }),
  };
}

/** Creates the approvals service and starts its expiry sweep. */
export function createApprovals(options: ApprovalsOptions): Approvals {
  const { store, metrics } = options;
  const log = options.logger.child({ component: 'approvals' });
  const statusUrl = (id: string): string => {
    const base = options.statusUrl();
    return base === '' ? '' : `${base.replace(/\/$/, '')}/${id}`;
  };

  function emit(event: ApprovalEvent, record: ApprovalRecord, decisionId?: string): void {
    const body = approvalEvent(event, record, statusUrl(record.id));
    options.decisionLog?.write({
      decisionId: decisionId ?? `approval-${event}-${record.id}`,
      path: 'system/tollgate/approval',
      input: undefined,
      result: body,
      revision: options.revision?.() ?? '',
    });
    if (options.tracer !== undefined && event !== 'requested') {
      // Answers come through the admin API, outside any call: a span of their own.
      const span = options.tracer.startSpan(`tollgate.approval.${event}`, { kind: SpanKind.INTERNAL });
      span.setAttribute('tollgate.approval.id', record.id);
      span.setAttribute('tollgate.approval.status', record.status);
      span.setAttribute('tollgate.approval.agent', record.agent);
      if (record.decided_by !== undefined) span.setAttribute('tollgate.approval.decided_by', record.decided_by);
      span.end();
    }
    const hook = options.webhook;
    if (hook !== undefined && hook.url !== '') {
      fetch(hook.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...hook.headers },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(hook.timeoutMs),
      }).then(
        (res) => {
          void res.body?.cancel();
          if (!res.ok)
            log.warn({ status: res.status, event, id: record.id }, 'approval webhook answered with an error');
        },
        (err: unknown) =>
          log.warn(
            { err: err instanceof Error ? err.message : String(err), event, id: record.id },
            'approval webhook failed',
          ),
      );
    }
  }

  let sweeping = false;
  const sweepMs = options.sweepMs ?? 5000;
  const sweep =
    sweepMs > 0
      ? setInterval(() => {
          if (sweeping) return;
          sweeping = true;
          store
            .expireApprovals()
            .then(
              (expired) => {
                for (const record of expired) {
                  metrics.approvalDecided('expired');
                  emit('expired', record);
                }
              },
              () => undefined,
            )
            .finally(() => (sweeping = false));
        }, sweepMs)
      : undefined;
  sweep?.unref();

  return {
    statusUrl,
    requested(record, decisionId) {
      metrics.approvalRequested();
      log.info(
        {
          id: record.id,
          decisionId,
          agent: record.agent,
          method: record.method,
          authority: record.authority,
          path: record.path,
        },
        'approval requested',
      );
      emit('requested', record);
    },
    list: (status, limit) => store.listApprovals(status, limit),
    show: (id) => store.getApproval(id),
    async decide(id, outcome, approver, comment) {
      const current = await store.getApproval(id);
      if (current === undefined) return { ok: false, reason: 'not_found' };
      if (current.approvers.length > 0 && !current.approvers.includes(approver))
        return { ok: false, reason: 'not_an_approver', record: current };
      const result = await store.decideApproval(id, outcome, approver, comment);
      if (result.ok) {
        metrics.approvalDecided(outcome);
        log.info({ id, outcome, approver }, `approval ${outcome}`);
        emit(outcome, result.record);
      } else if (result.record?.status === 'expired' && current.status === 'pending') {
        metrics.approvalDecided('expired');
        emit('expired', result.record);
      }
      return result;
    },
    async close() {
      if (sweep !== undefined) clearInterval(sweep);
    },
  };
}
