/**
 * The composition root: builds every long-lived component from a validated Config,
 * starts them in dependency order and closes them in reverse.
 */
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { ChainStageConfig, Config } from './config/schema.ts';
import { TollgateError, wrapError } from './errors.ts';
import { createChainPdp, type ChainStage } from './pdp/chain.ts';
import { loadBundle } from './bundle/load.ts';
import { createWasmPdp } from './pdp/wasm.ts';
import type { Pdp } from './pdp/types.ts';
import { registerOwnListener, unregisterOwnListener, type ListenerAddress } from './upstream/loop-guard.ts';
import { createDecisionStep, decisionStepOptionsFrom, type DecisionStep } from './enforce/decide.ts';
import { createAdmin } from './admin/server.ts';
import { VERSION } from './version.ts';
import { propagation, trace, type TextMapPropagator, type Tracer } from '@opentelemetry/api';
import { createTracing } from './telemetry/spans.ts';
import { createBehaviourTracker } from './behaviour/tracker.ts';
import { createMetrics, type Metrics } from './telemetry/metrics.ts';
import type { Observer } from './telemetry/observer.ts';
import { createDecisionLog, type DecisionLog } from './audit/log.ts';
import { createPolicyLifecycle, type PolicyLifecycle } from './bundle/lifecycle.ts';
import { DEFAULT_MASK, maskedHeaderNames, maskInput } from './audit/mask.ts';
import { createState } from './state/create.ts';
import { createPinStore, type PinStore } from './mcp/pins.ts';
import { lowerBackgroundPriority } from './runtime/thread-priority.ts';
import { createIdleCollector } from './runtime/idle-collect.ts';
import { keepTickEntryShape } from './runtime/tick-shape.ts';

/** The embedded default bundle, built from policies/ and committed. */
export const DEFAULT_BUNDLE = fileURLToPath(new URL('../policies/dist/bundle.tar.gz', import.meta.url));

/** Addresses the sidecar listens on once started. */
export interface SidecarAddresses {
  /** The outbound proxy listener, unless proxy.enabled is false. */
  readonly proxy?: AddressInfo;
  readonly admin: AddressInfo;
  /** The ext_authz gRPC listener, when enabled. */
  readonly extAuthz?: AddressInfo;
  /** The transparent (iptables REDIRECT) listener, when enabled. */
  readonly transparent?: AddressInfo;
}

/** What the CLI hands the sidecar: the tracer and propagator from telemetry/setup.ts. */
export interface SidecarDeps {
  readonly tracer?: Tracer;
  readonly propagator?: TextMapPropagator;
  /** The behaviour signals' clock (ms since the epoch); tests move it through hours and days. */
  readonly now?: () => number;
}

/** A running sidecar. */
export interface Sidecar {
  readonly addresses: SidecarAddresses;
  readonly pdp: Pdp;
  readonly metrics: Metrics;
  /** The policy lifecycle (bundle source, hot swap, rollback, live data, shadow) of the wasm PDP. */
  readonly lifecycle?: PolicyLifecycle;
  close(): Promise<void>;
}

/** Creates one PDP of a kind other than chain (a lone PDP, or a chain stage). */
async function createLeafPdp(pdp: Exclude<Config['pdp'], { type: 'chain' }> | ChainStageConfig): Promise<Pdp> {
  switch (pdp.type) {
    case 'extauthz': {
      // gRPC and the Envoy protos (~+30 MB RSS) are loaded only when an ext_authz PDP or server is configured.
      const { createExtAuthzPdp } = await import('./pdp/extauthz-client.ts');
      return createExtAuthzPdp({ target: pdp.target, timeoutMs: pdp.timeoutMs, circuitBreaker: pdp.circuitBreaker });
    }
    case 'cedar': {
      // Imported here, not at the top: cedar-wasm is loaded only when Cedar is configured.
      const { createCedarPdp } = await import('./pdp/cedar.ts');
      return createCedarPdp(pdp);
    }
    case 'wasm': {
      const bundle = await loadBundle(pdp.bundle === '' ? DEFAULT_BUNDLE : pdp.bundle);
      return createWasmPdp({ bundle, decisionPath: pdp.decisionPath, data: pdp.data, timeoutMs: pdp.timeoutMs });
    }
    default:
      return pdp satisfies never;
  }
}

/** Creates the configured PDP (loading its bundle, Cedar policies, or every stage of a chain). */
export async function createPdp(config: Config): Promise<Pdp> {
  if (config.pdp.type !== 'chain') return createLeafPdp(config.pdp);
  const stages: ChainStage[] = [];
  try {
    for (const stage of config.pdp.stages) {
      const pdp = await createLeafPdp(stage).catch((err: unknown) => {
        // The stage's own error code, its message prefixed with the stage that failed to load.
        const error = wrapError('TG_ERR_CONFIG_INVALID', 'cannot load', err);
        throw new TollgateError(error.code, `pdp chain stage ${stage.name}: ${error.message}`, { cause: err });
      });
      stages.push({
        name: stage.name,
        type: stage.type,
        pdp,
        timeoutMs: stage.timeoutMs,
        failureModeAllow: stage.failureModeAllow,
        // In-process stages check their deadline on CPU time themselves (wasm.ts, cedar.ts).
        selfTimed: stage.type !== 'extauthz',
      });
    }
    return createChainPdp({ stages, combine: config.pdp.combine });
  } catch (err) {
    await Promise.all(stages.map((s) => s.pdp.close()));
    throw err;
  }
}

/** The decision-log mask: the configured one, plus the agent token header when tokens are on. */
function decisionLogMask(config: Config): string[] {
  const mask = [...(config.decisionLog.mask ?? DEFAULT_MASK)];
  const headers = new Set<string>();
  if (config.agent.token !== undefined) headers.add(config.agent.token.header.toLowerCase());
  if (config.agent.identity.jwt !== undefined) headers.add(config.agent.identity.jwt.header.toLowerCase());
  for (const header of headers) mask.push(`/input/attributes/request/http/headers/${header}`);
  return mask;
}

/** Creates the observer (spans, metrics, decision log) both doors record into. */
async function createObserver(
  config: Config,
  logger: Logger,
  deps: SidecarDeps,
): Promise<Observer & { readonly metrics: Metrics; readonly decisionLog?: DecisionLog }> {
  const mask = decisionLogMask(config);
  const metrics = createMetrics({
    maxLabelValues: config.metrics.maxLabelValues,
    maxLabelValueLength: config.metrics.maxLabelValueLength,
    maxSeriesPerMetric: config.metrics.maxSeriesPerMetric,
  });
  const log = config.decisionLog;
  const decisionLog =
    log.file === '' && log.url === ''
      ? undefined
      : await createDecisionLog({
          ...(log.file === '' ? {} : { file: { path: log.file, maxBytes: log.maxBytes, maxFiles: log.maxFiles } }),
          ...(log.url === '' ? {} : { http: { url: log.url, headers: log.headers } }),
          mask,
          maxQueue: log.maxQueue,
          fileFlushMs: log.fileFlushMs,
          labels: { app: 'tollgate', version: VERSION, agent: config.agent.id },
          onDropped: (count) => metrics.recordDecisionLogDropped(count),
          logger: logger.child({ component: 'decision-log' }),
        });
  const tracing = createTracing({
    tracer: deps.tracer ?? trace.getTracer('tollgate'),
    propagator: deps.propagator ?? propagation,
    pdpKind: config.pdp.type === 'extauthz' ? 'ext_authz' : config.pdp.type,
    recordRequestHeaders: config.tracing.recordRequestHeaders,
    maskedHeaders: maskedHeaderNames(mask),
    recordInput: config.tracing.recordInput,
    maskInput: (input) => maskInput(input, mask),
  });
  return { tracing, metrics, ...(decisionLog === undefined ? {} : { decisionLog }) };
}

/** The tool pins (mcp.pins.enabled), each change counted and recorded in the decision log. */
function createPins(config: Config, observer: Observer): PinStore | undefined {
  const settings = config.mcp.pins;
  if (!settings.enabled) return undefined;
  return createPinStore({
    file: settings.file,
    writeBack: settings.writeBack,
    maxServers: settings.maxServers,
    maxToolsPerServer: settings.maxToolsPerServer,
    onChange: (change) => {
      observer.metrics.recordToolChange(change.server);
      // Its own record (no input: replay skips it), like a live-data change.
      observer.decisionLog?.write({
        decisionId: `mcp-tool-change-${change.server}-${change.tool}-${change.observedSha256.slice(0, 12)}`,
        path: 'system/tollgate/mcp_tool_change',
        input: undefined,
        result: {
          server: change.server,
          tool: change.tool,
          pinned_sha256: change.pinnedSha256,
          observed_sha256: change.observedSha256,
          definition: change.definition,
        },
        revision: '',
      });
    },
  });
}

/** The outbound side: upstream pools, the proxy listener, CONNECT/interception/upgrade hooks, transparent mode. */
interface Outbound {
  readonly proxy: { listen(): Promise<AddressInfo>; close(): Promise<void> };
  readonly transparent?: { listen(): Promise<AddressInfo> };
  /** Closes the egress parts and the upstream pools (after the listeners). */
  closePools(): Promise<void>;
}

/**
 * Creates the outbound side. Imported here, not at the top: an ext_authz-only sidecar
 * (proxy.enabled: false) never loads undici, the HTTP/TLS data path or the MCP relay.
 */
async function createOutbound(
  config: Config,
  pdp: Pdp,
  step: DecisionStep,
  logger: Logger,
  observer: Observer & { readonly metrics: Metrics },
  pins: PinStore | undefined,
): Promise<Outbound> {
  const [{ createUpstreams }, { createProxy }, { createEgress }, { createResponseStage }] = await Promise.all([
    import('./upstream/pool.ts'),
    import('./pep/proxy.ts'),
    import('./pep/egress.ts'),
    import('./mcp/response-relay.ts'),
  ]);
  const upstreams = createUpstreams({
    resolve: config.proxy.resolve,
    headersTimeoutMs: config.proxy.upstreamTimeoutMs,
    connectTimeoutMs: config.proxy.upstreamConnectTimeoutMs,
    idleMs: config.proxy.upstreamPoolIdleMs,
    maxPools: config.proxy.upstreamPoolMax,
  });
  observer.metrics.observeUpstreamPools(upstreams);
  const responses =
    config.mcp.response.decisionPath === '' && pins === undefined
      ? undefined
      : createResponseStage({ pdp, config: config.mcp, logger, observer, ...(pins === undefined ? {} : { pins }) });
  const withResponses = responses === undefined ? {} : { responses };
  let egress;
  try {
    // CONNECT / TLS interception / upgrade hooks and the transparent listener.
    egress = createEgress({ config, step, upstreams, logger, observer, ...withResponses });
  } catch (err) {
    await upstreams.close();
    throw err;
  }
  const proxy = createProxy({ config, step, upstreams, logger, observer, hooks: egress.hooks, ...withResponses });
  return {
    proxy,
    ...(egress.transparent === undefined ? {} : { transparent: egress.transparent }),
    async closePools() {
      await egress.close();
      await upstreams.close();
    },
  };
}

/** Starts the sidecar: PDP, decision step, the proxy side (unless disabled), ext_authz server, admin listener. */
export async function startSidecar(config: Config, logger: Logger, deps: SidecarDeps = {}): Promise<Sidecar> {
  if (
    config.mcp.response.decisionPath !== '' &&
    config.pdp.type !== 'wasm' &&
    !(config.pdp.type === 'chain' && config.pdp.stages.some((s) => s.type === 'wasm'))
  )
    throw new TollgateError(
      'TG_ERR_CONFIG_INVALID',
      '/mcp/response/decisionPath: response decisions need a wasm bundle (the wasm PDP, or a wasm stage of a chain); an ext_authz or Cedar PDP has one decision per request',
    );
  if (!config.proxy.enabled) {
    const needsProxy: Array<[boolean, string]> = [
      [!config.extAuthz.enabled, '/proxy/enabled: false needs extAuthz.enabled: no door would be left to decide calls'],
      [
        config.transparent.enabled,
        '/transparent/enabled: transparent mode hands connections to the proxy; it needs proxy.enabled',
      ],
      [
        config.mcp.response.decisionPath !== '',
        '/mcp/response/decisionPath: response decisions run on answers relayed by the proxy; they need proxy.enabled (Envoy does not send answers to ext_authz)',
      ],
    ];
    for (const [wrong, message] of needsProxy) if (wrong) throw new TollgateError('TG_ERR_CONFIG_INVALID', message);
  }
  const observer = await createObserver(config, logger, deps);
  let pins: PinStore | undefined;
  try {
    pins = createPins(config, observer);
  } catch (err) {
    await observer.decisionLog?.close();
    throw err;
  }
  let lifecycle: PolicyLifecycle | undefined;
  let pdp: Pdp;
  if (config.pdp.type === 'wasm') {
    const decisionPath = config.pdp.decisionPath;
    lifecycle = await createPolicyLifecycle({
      pdp: config.pdp,
      bundle: config.bundle,
      shadow: config.shadow,
      data: config.data,
      defaultBundle: DEFAULT_BUNDLE,
      logger,
      hooks: {
        onActivate: (e) => observer.metrics.setPolicy({ revision: e.revision, path: decisionPath }),
        onReject: (e) => observer.metrics.recordBundleRejection(e.reason),
        onShadowCompared: (agreed) => {
          if (agreed) observer.metrics.recordShadow('agree');
        },
        onShadowDisagreement: (d) => {
          observer.metrics.recordShadow(d.kind);
          logger.warn(
            { component: 'shadow', decisionId: d.decisionId, kind: d.kind, active: d.active, candidate: d.candidate },
            'shadow policy disagrees with the active policy',
          );
        },
        onSourceError: (error) => observer.metrics.recordPdpError(error.code),
        // Every live-data change is its own decision-log record (no input: replay skips it).
        onDataChange: (e) =>
          observer.decisionLog?.write({
            decisionId: `data-change-${e.dataVersion}-${e.origin}`,
            timestamp: new Date(e.timestamp),
            path: 'system/tollgate/data_change',
            input: undefined,
            result: {
              origin: e.origin,
              patch: e.patch,
              data_version: e.dataVersion,
              ...(e.error === undefined ? {} : { error: e.error }),
            },
            revision: e.revision,
          }),
      },
    });
    try {
      // Rejects when no policy at all can be activated: never "no policy = allow".
      await lifecycle.start();
    } catch (err) {
      await lifecycle.close();
      await observer.decisionLog?.close();
      throw err;
    }
    pdp = lifecycle.pdp;
  } else {
    pdp = await createPdp(config);
    const info = pdp.info();
    if (info !== undefined) observer.metrics.setPolicy({ revision: info.revision, path: info.decisionPath });
  }
  // One decision step for every door: proxy, tunnels, upgrades and the ext_authz server.
  const behaviour = config.behaviour.enabled
    ? createBehaviourTracker({ ...config.behaviour, ...(deps.now === undefined ? {} : { now: deps.now }) })
    : undefined;
  if (behaviour !== undefined) observer.metrics.observeBehaviour(behaviour);
  const state = await createState(config, {
    logger,
    registry: observer.metrics.registry,
    ...(observer.decisionLog === undefined ? {} : { decisionLog: observer.decisionLog }),
    ...(deps.tracer === undefined ? {} : { tracer: deps.tracer }),
    revision: () => pdp.info()?.revision ?? '',
  });
  const idle = createIdleCollector({
    quietMs: config.memory.idleCollectSeconds * 1000,
    onCollect: (ms) => logger.debug({ component: 'memory', ms }, 'memory-reducing collection'),
  });
  const step = createDecisionStep({
    pdp,
    logger,
    observer,
    governance: state.governance,
    activity: idle.touch,
    ...decisionStepOptionsFrom(config),
    ...(behaviour === undefined ? {} : { behaviour }),
    ...(pins === undefined ? {} : { pins }),
  });
  const outbound = config.proxy.enabled ? await createOutbound(config, pdp, step, logger, observer, pins) : undefined;
  const admin = createAdmin({
    listen: config.admin.listen,
    pdp,
    version: VERSION,
    metrics: observer.metrics,
    ...(lifecycle === undefined
      ? {}
      : { policy: { lifecycle, token: config.data.token, allowRemote: config.data.allowRemote } }),
    approvals: {
      approvals: state.approvals,
      token: config.state.approvals.token,
      allowRemote: config.state.approvals.allowRemote,
    },
    ...(pins === undefined
      ? {}
      : {
          mcp: {
            pins,
            token: config.data.token,
            allowRemote: config.data.allowRemote,
            writesFile: config.mcp.pins.writeBack && config.mcp.pins.file !== '',
            onAccept: (server, tool, entry) =>
              observer.decisionLog?.write({
                decisionId: `mcp-tool-accept-${crypto.randomUUID()}`,
                path: 'system/tollgate/mcp_tool_accept',
                input: undefined,
                result: { server, ...(tool === undefined ? {} : { tool }), accepted: entry },
                revision: '',
              }),
          },
        }),
  });
  // Closed in reverse: listeners first, then pools and the PDP, the decision log last.
  const closers: Array<() => Promise<void>> = [
    async () => observer.decisionLog?.close(),
    async () => idle.close(),
    () => (lifecycle ?? pdp).close(),
    () => state.close(),
  ];
  if (outbound !== undefined) closers.push(() => outbound.closePools());
  // Every listener is registered as soon as it listens: no upstream connection reaches one.
  const own = (address: ListenerAddress): void => {
    registerOwnListener(address);
    closers.push(async () => unregisterOwnListener(address));
  };
  try {
    let proxyAddress: AddressInfo | undefined;
    let transparentAddress: AddressInfo | undefined;
    if (outbound !== undefined) {
      proxyAddress = await outbound.proxy.listen();
      closers.push(() => outbound.proxy.close());
      own(proxyAddress);
      transparentAddress = await outbound.transparent?.listen();
      if (transparentAddress !== undefined) own(transparentAddress);
    }
    let extAuthzAddress: AddressInfo | undefined;
    if (config.extAuthz.enabled) {
      const { createExtAuthzServer } = await import('./extauthz/server.ts');
      const extAuthz = createExtAuthzServer({
        listen: config.extAuthz.listen,
        step,
        dryRun: config.extAuthz.dryRun,
        maxReceiveBytes: config.extAuthz.maxReceiveBytes,
        logger,
      });
      extAuthzAddress = await extAuthz.listen();
      closers.push(() => extAuthz.close());
      own(extAuthzAddress);
    }
    const adminAddress = await admin.listen();
    closers.push(() => admin.close());
    state.adminListening(adminAddress);
    own(adminAddress);
    // Before any full collection, so that nextTick's entries keep one shape (runtime/tick-shape.ts).
    keepTickEntryShape();
    // Start-up garbage (config, bundle, module loading) is gone before the first request.
    idle.collectNow();
    const background = lowerBackgroundPriority(config.runtime.backgroundThreadNice);
    if (background.nice !== undefined)
      logger.debug({ component: 'runtime', ...background }, "V8's worker threads run nicer than request handling");
    return {
      addresses: {
        ...(proxyAddress === undefined ? {} : { proxy: proxyAddress }),
        admin: adminAddress,
        ...(extAuthzAddress === undefined ? {} : { extAuthz: extAuthzAddress }),
        ...(transparentAddress === undefined ? {} : { transparent: transparentAddress }),
      },
      pdp,
      metrics: observer.metrics,
      ...(lifecycle === undefined ? {} : { lifecycle }),
      async close() {
        for (const close of closers.reverse()) await close();
      },
    };
  } catch (err) {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    throw err;
  }
}
