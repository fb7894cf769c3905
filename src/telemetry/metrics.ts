/**
 * Prometheus metrics for the admin `/metrics` endpoint.
 *
 * Why prom-client rather than OTel metrics + @opentelemetry/exporter-prometheus: the
 * admin listener already exists and owns the port, and prom-client renders the text
 * exposition format from a registry we hand it (`registry.metrics()`), while the OTel
 * exporter wants to run its own HTTP server (or be plumbed in through its request
 * handler) and translates OTel names (dots, units) into Prometheus ones on the way,
 * so the names users alert on would be a function of a translation layer. prom-client's
 * names are exactly what we write, it is the de-facto Node client, has no SDK on the
 * hot path (a counter increment is a map lookup), and its registry is per instance, so
 * tests and the sidecar never share global state. Outcome labels follow Envoy's
 * ext_authz stats: allow (ok), deny (denied), error, failure_mode_allowed.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** How a request's decision ended (Envoy's ext_authz stats: ok, denied, error, failure_mode_allowed). */
export type DecisionOutcomeLabel = 'allow' | 'deny' | 'error' | 'failure_mode_allowed';

/** One decision, as recordDecision takes it. */
export interface DecisionSample {
  readonly outcome: DecisionOutcomeLabel;
  /** Agent id ("" when unknown). */
  readonly agent: string;
  /** host:port the call was for. */
  readonly destination: string;
  /** MCP tool name ("" when the call is not an MCP tools/call). */
  readonly tool?: string;
  /** Time from asking the PDP to having a decision (or giving up). */
  readonly seconds: number;
  /** The TG_ERR_* code when no decision could be made (outcome error / failure_mode_allowed). */
  readonly errorCode?: string;
}

/** Options of createMetrics. */
export interface MetricsOptions {
  /** Also export process_* and nodejs_* metrics (CPU, memory, event-loop lag). Default true. */
  readonly processMetrics?: boolean;
  /** Decision-latency histogram buckets in seconds (default: 50 µs … 1 s; WASM decisions are sub-millisecond). */
  readonly decisionBuckets?: readonly number[];
  /** Upstream-latency histogram buckets in seconds (default: 1 ms … 30 s). */
  readonly upstreamBuckets?: readonly number[];
}

/** The metrics API the PEP, ext_authz server, bundle loader and decision log call. */
export interface Metrics {
  recordDecision(sample: DecisionSample): void;
  /** A PDP error outside a request (e.g. a failed bundle reload). Request-path errors go through recordDecision. */
  recordPdpError(code: string): void;
  /** Upstream round trip: `status` is the HTTP status, or undefined when no response came. */
  recordUpstream(destination: string, status: number | undefined, seconds: number): void;
  connectionOpened(listener: string): void;
  connectionClosed(listener: string): void;
  /** The policy now served; replaces the previous tollgate_policy_info series. */
  setPolicy(info: { readonly revision: string; readonly path: string }): void;
  /** A shadow (candidate) policy decided a request: whether it agreed with the active one, or how it disagreed. */
  recordShadow(outcome: 'agree' | 'allow-to-deny' | 'deny-to-allow' | 'error'): void;
  /** A bundle was refused (unsigned, tampered, invalid, failed smoke check ...). */
  recordBundleRejection(reason: string): void;
  /** Decision-log records dropped under back-pressure (the decision log's onDropped). */
  recordDecisionLogDropped(count: number): void;
  /** The text exposition format. */
  render(): Promise<string>;
  /** Content-Type of render()'s output. */
  readonly contentType: string;
}

const DECISION_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
const UPSTREAM_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** "2xx" … "5xx", or "error" when no response came: bounded label values. */
function statusClass(status: number | undefined): string {
  return status === undefined ? 'error' : `${Math.floor(status / 100)}xx`;
}

/** Creates a metrics registry of its own (no global state). */
export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry });
  const registers = [registry];

  const decisions = new Counter({
    name: 'tollgate_decisions_total',
    help: 'Policy decisions by outcome (allow, deny, error, failure_mode_allowed), agent, destination host:port and MCP tool.',
    labelNames: ['decision', 'agent', 'destination', 'tool'] as const,
    registers,
  });
  const decisionDuration = new Histogram({
    name: 'tollgate_decision_duration_seconds',
    help: 'Time to obtain a policy decision (or to give up on one), by outcome.',
    labelNames: ['decision'] as const,
    buckets: [...(options.decisionBuckets ?? DECISION_BUCKETS)],
    registers,
  });
  const upstreamDuration = new Histogram({
    name: 'tollgate_upstream_duration_seconds',
    help: 'Upstream round trip until response headers, by destination and status class (error: no response).',
    labelNames: ['destination', 'status_class'] as const,
    buckets: [...(options.upstreamBuckets ?? UPSTREAM_BUCKETS)],
    registers,
  });
  const pdpErrors = new Counter({
    name: 'tollgate_pdp_errors_total',
    help: 'Times no policy decision could be made, by error code (TG_ERR_*).',
    labelNames: ['code'] as const,
    registers,
  });
  const failOpen = new Counter({
    name: 'tollgate_failure_mode_allowed_total',
    help: 'Requests allowed without a decision because the failure mode is allow (fail-open).',
    labelNames: ['destination'] as const,
    registers,
  });
  const connections = new Gauge({
    name: 'tollgate_active_connections',
    help: 'Open client connections, by listener.',
    labelNames: ['listener'] as const,
    registers,
  });
  const policyInfo = new Gauge({
    name: 'tollgate_policy_info',
    help: 'The policy served: always 1, labelled with the bundle revision and decision path.',
    labelNames: ['revision', 'path'] as const,
    registers,
  });
  const shadow = new Counter({
    name: 'tollgate_shadow_decisions_total',
    help: 'Requests the shadow (candidate) policy also decided, by outcome: agree, allow-to-deny, deny-to-allow, error.',
    labelNames: ['outcome'] as const,
    registers,
  });
  const bundleRejections = new Counter({
    name: 'tollgate_bundle_rejections_total',
    help: 'Bundles refused before activation, by reason; the previous revision kept enforcing.',
    labelNames: ['reason'] as const,
    registers,
  });
  const logDropped = new Counter({
    name: 'tollgate_decision_log_dropped_total',
    help: 'Decision-log records dropped because the log could not keep up (never silent: the log also records a gap).',
    registers,
  });

  return {
    recordDecision(sample) {
      const tool = sample.tool ?? '';
      decisions.inc({ decision: sample.outcome, agent: sample.agent, destination: sample.destination, tool });
      decisionDuration.observe({ decision: sample.outcome }, sample.seconds);
      if (sample.outcome === 'error' || sample.outcome === 'failure_mode_allowed') pdpErrors.inc({ code: sample.errorCode ?? 'unknown' });
      if (sample.outcome === 'failure_mode_allowed') failOpen.inc({ destination: sample.destination });
    },
    recordPdpError(code) {
      pdpErrors.inc({ code });
    },
    recordUpstream(destination, status, seconds) {
      upstreamDuration.observe({ destination, status_class: statusClass(status) }, seconds);
    },
    connectionOpened(listener) {
      connections.inc({ listener });
    },
    connectionClosed(listener) {
      connections.dec({ listener });
    },
    setPolicy(info) {
      policyInfo.reset();
      policyInfo.set({ revision: info.revision, path: info.path }, 1);
    },
    recordShadow(outcome) {
      shadow.inc({ outcome });
    },
    recordBundleRejection(reason) {
      bundleRejections.inc({ reason });
    },
    recordDecisionLogDropped(count) {
      if (count > 0) logDropped.inc(count);
    },
    render: () => registry.metrics(),
    contentType: registry.contentType,
  };
}
