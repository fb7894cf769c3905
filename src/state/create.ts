/**
 * Builds the state components from config: the store (in memory, or Redis when
 * state.redis is set — ioredis is imported only then), the approvals service, the
 * governance step the decision step calls, and the state metrics.
 */
import type { Tracer } from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { DecisionLog } from '../audit/log.ts';
import type { Config } from '../config/schema.ts';
import { createApprovals, type Approvals } from './approvals.ts';
import { createGovernance, type Governance } from './governance.ts';
import { createMemoryStore } from './memory-store.ts';
import { createStateMetrics } from './metrics.ts';
import type { StateStore } from './types.ts';

/** The running state components. */
export interface State {
  readonly store: StateStore;
  readonly approvals: Approvals;
  readonly governance: Governance;
  /** Tells the state where the admin listener ended up (the default status URL points there). */
  adminListening(address: { readonly address: string; readonly port: number }): void;
  close(): Promise<void>;
}

/** What createState needs besides the config. */
export interface StateDeps {
  readonly logger: Logger;
  readonly registry?: Registry;
  readonly decisionLog?: DecisionLog;
  readonly tracer?: Tracer;
  /** The bundle revision now served (recorded with approval events). */
  readonly revision?: () => string;
}

/** Creates the store and the steps around it. */
export async function createState(config: Config, deps: StateDeps): Promise<State> {
  const settings = config.state;
  const metrics = createStateMetrics({
    ...(deps.registry === undefined ? {} : { registry: deps.registry }),
    maxLabelValues: config.metrics.maxLabelValues,
    maxLabelValueLength: config.metrics.maxLabelValueLength,
  });
  const log = deps.logger.child({ component: 'state' });
  let store: StateStore;
  if (settings.redis === '') {
    store = createMemoryStore();
  } else {
    const { createRedisStore, redactRedisUrl } = await import('./redis-store.ts');
    store = await createRedisStore({
      url: settings.redis,
      keyPrefix: settings.keyPrefix,
      connections: settings.connections,
      timeoutMs: settings.timeoutMs,
      circuitBreaker: settings.circuitBreaker,
      onError: (operation, error) => {
        metrics.stateError(operation);
        log.debug({ operation, code: error.code, err: error.message }, 'state store call failed');
      },
    });
    log.info({ redis: redactRedisUrl(settings.redis) }, 'state shared through redis');
  }
  metrics.observePending(() => store.pendingCount());
  let statusBase =
    settings.approvals.statusUrl !== '' ? settings.approvals.statusUrl : `http://${config.admin.listen}/v1/approvals`;
  const approvals = createApprovals({
    store,
    metrics,
    logger: deps.logger,
    statusUrl: () => statusBase,
    ...(deps.decisionLog === undefined ? {} : { decisionLog: deps.decisionLog }),
    ...(deps.tracer === undefined ? {} : { tracer: deps.tracer }),
    ...(deps.revision === undefined ? {} : { revision: deps.revision }),
    ...(settings.approvals.webhook === ''
      ? {}
      : {
          webhook: {
            url: settings.approvals.webhook,
            headers: settings.approvals.webhookHeaders,
            timeoutMs: settings.approvals.webhookTimeoutMs,
          },
        }),
  });
  const governance = createGovernance({
    store,
    approvals,
    metrics,
    logger: deps.logger,
    failureModeAllow: settings.failureModeAllow,
    failureModeAllowHosts: settings.failureModeAllowHosts,
  });
  return {
    store,
    approvals,
    governance,
    adminListening(address) {
      if (settings.approvals.statusUrl !== '') return;
      const host = address.address.includes(':') ? `[${address.address}]` : address.address;
      statusBase = `http://${host}:${address.port}/v1/approvals`;
    },
    async close() {
      await approvals.close();
      await store.close();
    },
  };
}
