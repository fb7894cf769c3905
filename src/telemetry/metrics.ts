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
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { Histogram, type HistogramSeries } from './histogram.ts';

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
  /** The policy's reasons (counted for denials in tollgate_deny_reasons_total). */
  readonly reasons?: readonly string[];
}

/** What a response decision did (allow, filter, redact, block), or error / failure_mode_allowed, or uninspectable. */
export type ResponseOutcomeLabel =
  | 'allow'
  | 'filter'
  | 'redact'
  | 'block'
  | 'error'
  | 'failure_mode_allowed'
  | 'uninspectable_blocked'
  | 'uninspectable_passed';

/** Options of createMetrics. */
export interface MetricsOptions {
  /**
   * Distinct values each agent-influenced label (agent, destination, tool) keeps as its own
   * series; later values are counted under OVERFLOW_LABEL_VALUE. Default 100.
   */
  readonly maxLabelValues?: number;
  /** Longest label value kept (characters); longer values are cut. Default 128. */
  readonly maxLabelValueLength?: number;
  /**
   * Series tollgate_decisions_total keeps (label combinations); a new combination past it is
   * counted with every agent-influenced label set to OVERFLOW_LABEL_VALUE. Default 2000.
   */
  readonly maxSeriesPerMetric?: number;
  /** Also export process_* and nodejs_* metrics (CPU, memory, event-loop lag). Default true. */
  readonly processMetrics?: boolean;
  /** Decision-latency histogram buckets in seconds (default: 50 µs … 1 s; WASM decisions are sub-millisecond). */
  readonly decisionBuckets?: readonly number[];
  /** Upstream-latency histogram buckets in seconds (default: 1 ms … 30 s). */
  readonly upstreamBuckets?: readonly number[];
}

/** What the upstream pool registry tells the metrics about itself. */
export interface UpstreamPoolCounts {
  /** Pools currently kept. */
  size(): number;
  /** Pools closed so far because they were idle or past the cap. */
  evicted(): number;
}

/** One agent's behaviour signals at scrape time (src/behaviour/tracker.ts). */
export interface BehaviourSeries {
  readonly agent: string;
  readonly signals: readonly {
    /** "calls", "denies", or a configured value signal's name. */
    readonly signal: string;
    /** Sliding 60-minute sum. */
    readonly hour: number;
    /** Mean hourly sum over the baseline window; undefined before one complete hour. */
    readonly baselineHourlyAvg: number | undefined;
  }[];
  readonly newDestinations: number;
  readonly newTools: number;
}

/** What the behaviour tracker tells the metrics about itself (read at scrape time). */
export interface BehaviourMetricsSource {
  /** Every tracked agent's signals (at most behaviour.maxAgents agents). */
  behaviourSeries(): Iterable<BehaviourSeries>;
  /** Agents tracked now. */
  behaviourAgents(): number;
  /** Agents forgotten so far because more than behaviour.maxAgents were seen. */
  behaviourEvicted(): number;
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
  /** Exports the number of per-origin upstream pools kept and closed (read at scrape time). */
  observeUpstreamPools(pools: UpstreamPoolCounts): void;
  /** Exports the behaviour tracker's per-agent signals (tollgate_behaviour_*, read at scrape time). */
  observeBehaviour(source: BehaviourMetricsSource): void;
  /** A response decision on an MCP message: what it did, or how it failed. */
  recordResponseDecision(outcome: ResponseOutcomeLabel): void;
  /** A tool definition that differs from its pin, seen in a server's tools/list answer. */
  recordToolChange(server: string): void;
  /** The text exposition format. */
  render(): Promise<string>;
  /** Content-Type of render()'s output. */
  readonly contentType: string;
  /** The registry, so a feature module can register its own metrics (src/state). */
  readonly registry: Registry;
}

/**
 * The label value that stands for every value past a label's cap: one series for "the rest",
 * like OpenTelemetry's cardinality limit (the otel.metric.overflow attribute set).
 */
export const OVERFLOW_LABEL_VALUE = '__other__';

/** Labels whose values come from the agent's requests (destination, MCP tool, deny reason) or its token (agent id). */
export type BoundedLabel = 'agent' | 'destination' | 'tool' | 'reason';

/** Default of MetricsOptions.maxLabelValues. */
export const DEFAULT_MAX_LABEL_VALUES = 100;
/** Default of MetricsOptions.maxLabelValueLength. */
export const DEFAULT_MAX_LABEL_VALUE_LENGTH = 128;
/** Default of MetricsOptions.maxSeriesPerMetric (OpenTelemetry's default cardinality limit). */
export const DEFAULT_MAX_SERIES_PER_METRIC = 2000;

// Control characters (C0, DEL, C1) print as nothing or move the cursor in a terminal or a
// log viewer; the text format would carry them, but an operator must read what is there.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const CONTROLS = /[\u0000-\u001f\u007f-\u009f]/g;

/** A label value as the exposition may carry it: control characters replaced, at most maxLength characters, never half a surrogate pair. */
export function sanitizeLabelValue(value: string, maxLength: number): string {
  let out = CONTROL.test(value) ? value.replace(CONTROLS, '\ufffd') : value;
  if (out.length > maxLength) {
    out = out.slice(0, maxLength);
    const last = out.charCodeAt(out.length - 1);
    if (last >= 0xd800 && last <= 0xdbff) out = out.slice(0, -1);
  }
  return out;
}

/**
 * The first `max` distinct (sanitised) values of one label map to themselves, every later
 * one to OVERFLOW_LABEL_VALUE. Memory is bounded by `max` entries plus a small cache of
 * raw → kept value, cleared when full, so the hot path is one Map lookup.
 */
interface LabelBound {
  map(raw: string): string;
  readonly kept: number;
  readonly overflowed: number;
}

// Cached for a raw value that overflowed (and is counted each time it recurs); no sanitised
// value can equal it, since control characters are replaced.
const COUNTED_OVERFLOW = '\u0000overflow';

function createLabelBound(max: number, maxLength: number): LabelBound {
  const kept = new Set<string>();
  // raw → mapped: saves sanitising the same raw value again (most requests repeat a few values).
  const seen = new Map<string, string>();
  let overflowed = 0;
  return {
    map(raw) {
      let mapped = seen.get(raw);
      if (mapped === undefined) {
        const value = sanitizeLabelValue(raw, maxLength);
        mapped = value;
        // A value spelled like the overflow value joins that series and takes no slot.
        if (value !== OVERFLOW_LABEL_VALUE && !kept.has(value)) {
          if (kept.size < max) kept.add(value);
          else mapped = COUNTED_OVERFLOW;
        }
        // Bounded too: a stream of distinct hostile values must not grow the cache.
        if (seen.size >= 4 * max + 64) seen.clear();
        seen.set(raw, mapped);
      }
      if (mapped === COUNTED_OVERFLOW) {
        overflowed += 1;
        return OVERFLOW_LABEL_VALUE;
      }
      return mapped;
    },
    get kept() {
      return kept.size;
    },
    get overflowed() {
      return overflowed;
    },
  };
}

const DECISION_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
const UPSTREAM_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** A deny reason as a label value: numbers become "#" ("refund of 600 exceeds …" → "refund of # exceeds …"). */
export function reasonLabel(reason: string): string {
  return reason.replace(/-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?/g, '#');
}

/** "2xx" … "5xx", or "error" when no response came: bounded label values. */
function statusClass(status: number | undefined): string {
  return status === undefined ? 'error' : `${Math.floor(status / 100)}xx`;
}

/** Creates a metrics registry of its own (no global state). */
export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const maxLabelValues = options.maxLabelValues ?? DEFAULT_MAX_LABEL_VALUES;
  const maxLength = options.maxLabelValueLength ?? DEFAULT_MAX_LABEL_VALUE_LENGTH;
  const maxSeries = options.maxSeriesPerMetric ?? DEFAULT_MAX_SERIES_PER_METRIC;

  // The hot path counts in plain objects; prom-client sees the counts when scraped (collect),
  // because its own inc() hashes the label object on every call, a cached child included.
  const bounds: Record<BoundedLabel, LabelBound> = {
    agent: createLabelBound(maxLabelValues, maxLength),
    destination: createLabelBound(maxLabelValues, maxLength),
    tool: createLabelBound(maxLabelValues, maxLength),
    reason: createLabelBound(maxLabelValues, maxLength),
  };
  let seriesOverflowed = 0;
  new Counter({
    name: 'tollgate_metric_label_overflow_total',
    help: `Recordings whose agent-influenced label value (agent, destination, tool, reason) was past the label's cap of distinct values and was counted as "${OVERFLOW_LABEL_VALUE}"; label="series" when a new label combination was past the per-metric series cap.`,
    labelNames: ['label'] as const,
    registers,
    collect() {
      // Exported from the start at 0, so an alert on the rate sees the series before the first overflow.
      this.reset();
      for (const [label, bound] of Object.entries(bounds)) this.inc({ label }, bound.overflowed);
      this.inc({ label: 'series' }, seriesOverflowed);
    },
  });
  new Gauge({
    name: 'tollgate_metric_label_values',
    help: 'Distinct values an agent-influenced label keeps as their own series (at most metrics.maxLabelValues).',
    labelNames: ['label'] as const,
    registers,
    collect() {
      for (const [label, bound] of Object.entries(bounds)) this.set({ label }, bound.kept);
    },
  });

  // tollgate_decisions_total by decision → agent → destination → tool (no key string built per
  // request), at most maxSeries combinations: destination × tool × agent can multiply past each
  // label's own cap. Past it a new combination counts in its decision's overflow series.
  type DecisionLabels = { decision: string; agent: string; destination: string; tool: string };
  interface Series {
    readonly labels: DecisionLabels;
    value: number;
  }
  const allSeries: Series[] = [];
  const tree = new Map<string, Map<string, Map<string, Map<string, Series>>>>();
  const overflowSeries = new Map<string, Series>();
  const newSeries = (labels: DecisionLabels): Series => {
    const series = { labels, value: 0 };
    allSeries.push(series);
    return series;
  };
  const decisionSeries = (decision: string, agent: string, destination: string, tool: string): Series => {
    const byTool = tree.get(decision)?.get(agent)?.get(destination);
    const hit = byTool?.get(tool);
    if (hit !== undefined) return hit;
    if (allSeries.length - overflowSeries.size < maxSeries) {
      let byAgent = tree.get(decision);
      if (byAgent === undefined) tree.set(decision, (byAgent = new Map()));
      let byDestination = byAgent.get(agent);
      if (byDestination === undefined) byAgent.set(agent, (byDestination = new Map()));
      let leaf = byDestination.get(destination);
      if (leaf === undefined) byDestination.set(destination, (leaf = new Map()));
      const series = newSeries({ decision, agent, destination, tool });
      leaf.set(tool, series);
      return series;
    }
    seriesOverflowed += 1;
    let series = overflowSeries.get(decision);
    if (series === undefined) {
      series = newSeries({
        decision,
        agent: OVERFLOW_LABEL_VALUE,
        destination: OVERFLOW_LABEL_VALUE,
        tool: OVERFLOW_LABEL_VALUE,
      });
      overflowSeries.set(decision, series);
    }
    return series;
  };
  new Counter({
    name: 'tollgate_decisions_total',
    help: 'Policy decisions by outcome (allow, deny, error, failure_mode_allowed), agent, destination host:port and MCP tool.',
    labelNames: ['decision', 'agent', 'destination', 'tool'] as const,
    registers,
    collect() {
      this.reset();
      for (const series of allSeries) this.inc(series.labels, series.value);
    },
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
  // Series by label value (labels are bounded, so these maps are too).
  const upstreamChildren = new Map<string, Map<string, HistogramSeries>>();
  const decisionDurationChildren = new Map<string, HistogramSeries>();
  const denyReasons = new Counter({
    name: 'tollgate_deny_reasons_total',
    help: 'Reasons the policy gave for denials, with numbers replaced by # (so amounts and limits do not make new series).',
    labelNames: ['reason'] as const,
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
  let upstreamPools: UpstreamPoolCounts | undefined;
  new Gauge({
    name: 'tollgate_upstream_pools',
    help: 'Per-origin upstream connection pools kept (idle ones are closed after proxy.upstreamPoolIdleMs, and past proxy.upstreamPoolMax).',
    registers,
    collect() {
      this.set(upstreamPools?.size() ?? 0);
    },
  });
  new Counter({
    name: 'tollgate_upstream_pools_evicted_total',
    help: 'Per-origin upstream connection pools closed because they were idle or past proxy.upstreamPoolMax.',
    registers,
    collect() {
      this.reset();
      this.inc(upstreamPools?.evicted() ?? 0);
    },
  });
  // Behaviour signals: agents are bounded by behaviour.maxAgents (least recently seen evicted),
  // signals by the configuration (calls, denies and the configured values).
  let behaviour: BehaviourMetricsSource | undefined;
  const behaviourAgent = (agent: string): string => sanitizeLabelValue(agent, maxLength);
  new Gauge({
    name: 'tollgate_behaviour_hour',
    help: "An agent's behaviour signal over the last 60 minutes (sliding estimate): calls, denies, or a configured value's sum.",
    labelNames: ['agent', 'signal'] as const,
    registers,
    collect() {
      this.reset();
      for (const series of behaviour?.behaviourSeries() ?? [])
        for (const s of series.signals) this.set({ agent: behaviourAgent(series.agent), signal: s.signal }, s.hour);
    },
  });
  new Gauge({
    name: 'tollgate_behaviour_baseline_hourly_avg',
    help: "An agent's mean hourly behaviour signal over its baseline window (behaviour.baselineHours); absent before one complete hour.",
    labelNames: ['agent', 'signal'] as const,
    registers,
    collect() {
      this.reset();
      for (const series of behaviour?.behaviourSeries() ?? [])
        for (const s of series.signals)
          if (s.baselineHourlyAvg !== undefined)
            this.set({ agent: behaviourAgent(series.agent), signal: s.signal }, s.baselineHourlyAvg);
    },
  });
  new Gauge({
    name: 'tollgate_behaviour_ratio',
    help: "An agent's behaviour signal over the last 60 minutes divided by its baseline hourly average; absent while the baseline is 0 or unknown.",
    labelNames: ['agent', 'signal'] as const,
    registers,
    collect() {
      this.reset();
      for (const series of behaviour?.behaviourSeries() ?? [])
        for (const s of series.signals)
          if (s.baselineHourlyAvg !== undefined && s.baselineHourlyAvg > 0)
            this.set({ agent: behaviourAgent(series.agent), signal: s.signal }, s.hour / s.baselineHourlyAvg);
    },
  });
  new Counter({
    name: 'tollgate_behaviour_new_destinations_total',
    help: 'Destinations an agent reached for the first time, after its first (learning) hour.',
    labelNames: ['agent'] as const,
    registers,
    collect() {
      this.reset();
      for (const series of behaviour?.behaviourSeries() ?? [])
        this.inc({ agent: behaviourAgent(series.agent) }, series.newDestinations);
    },
  });
  new Counter({
    name: 'tollgate_behaviour_new_tools_total',
    help: 'MCP tools an agent called for the first time, after its first (learning) hour.',
    labelNames: ['agent'] as const,
    registers,
    collect() {
      this.reset();
      for (const series of behaviour?.behaviourSeries() ?? [])
        this.inc({ agent: behaviourAgent(series.agent) }, series.newTools);
    },
  });
  new Gauge({
    name: 'tollgate_behaviour_agents',
    help: 'Agents whose behaviour is tracked (at most behaviour.maxAgents).',
    registers,
    collect() {
      this.set(behaviour?.behaviourAgents() ?? 0);
    },
  });
  new Counter({
    name: 'tollgate_behaviour_agents_evicted_total',
    help: 'Agents forgotten because more than behaviour.maxAgents were seen (least recently seen first).',
    registers,
    collect() {
      this.reset();
      this.inc(behaviour?.behaviourEvicted() ?? 0);
    },
  });
  const logDropped = new Counter({
    name: 'tollgate_decision_log_dropped_total',
    help: 'Decision-log records dropped because the log could not keep up (never silent: the log also records a gap).',
    registers,
  });

  const responseDecisions = new Counter({
    name: 'tollgate_mcp_response_decisions_total',
    help: 'Response decisions on MCP messages, by outcome: allow, filter (tools/list entries removed), redact, block, error (blocked without a decision), failure_mode_allowed, uninspectable_blocked / uninspectable_passed (past mcp.response.maxMessageBytes, compressed or not JSON).',
    labelNames: ['outcome'] as const,
    registers,
  });
  const toolChanges = new Counter({
    name: 'tollgate_mcp_tool_changes_total',
    help: 'Tool definitions seen in a tools/list answer that differ from their pin, by server (destination authority); counted once per new definition.',
    labelNames: ['server'] as const,
    registers,
  });

  return {
    recordResponseDecision(outcome) {
      responseDecisions.inc({ outcome });
    },
    recordToolChange(server) {
      toolChanges.inc({ server: bounds.destination.map(server) });
    },
    recordDecision(sample) {
      const destination = bounds.destination.map(sample.destination);
      decisionSeries(
        sample.outcome,
        bounds.agent.map(sample.agent),
        destination,
        bounds.tool.map(sample.tool ?? ''),
      ).value += 1;
      let durationChild = decisionDurationChildren.get(sample.outcome);
      if (durationChild === undefined) {
        durationChild = decisionDuration.series({ decision: sample.outcome });
        decisionDurationChildren.set(sample.outcome, durationChild);
      }
      durationChild.observe(sample.seconds);
      if (sample.outcome === 'deny')
        for (const reason of sample.reasons ?? []) denyReasons.inc({ reason: bounds.reason.map(reasonLabel(reason)) });
      if (sample.outcome === 'error' || sample.outcome === 'failure_mode_allowed')
        pdpErrors.inc({ code: sample.errorCode ?? 'unknown' });
      if (sample.outcome === 'failure_mode_allowed') failOpen.inc({ destination });
    },
    recordPdpError(code) {
      pdpErrors.inc({ code });
    },
    recordUpstream(destination, status, seconds) {
      const label = bounds.destination.map(destination);
      let byClass = upstreamChildren.get(label);
      if (byClass === undefined) {
        byClass = new Map();
        upstreamChildren.set(label, byClass);
      }
      const cls = statusClass(status);
      let child = byClass.get(cls);
      if (child === undefined) {
        child = upstreamDuration.series({ destination: label, status_class: cls });
        byClass.set(cls, child);
      }
      child.observe(seconds);
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
    observeUpstreamPools(pools) {
      upstreamPools = pools;
    },
    observeBehaviour(source) {
      behaviour = source;
    },
    render: () => registry.metrics(),
    contentType: registry.contentType,
    registry,
  };
}
