/**
 * Per-agent behaviour signals: rolling statistics of each agent's calls, denials,
 * destinations, MCP tools and configured values (refund amounts, order notionals),
 * compared with the agent's own baseline. Before the PDP, `observe` puts them in
 * `input.behaviour` so a rule can say "deny when this agent's order notional this hour
 * is over four times its hourly average"; after the verdict, `settle` records the call.
 * /metrics reads the same numbers (tollgate_behaviour_*).
 *
 * Statistics, per agent and signal: an hourly ring (hourly-ring.ts) over the current
 * hour and `baselineHours` complete hours before it. `hour` is a sliding 60-minute
 * estimate; `baseline_hourly_avg` the mean hourly sum over the complete hours the agent
 * has been seen (at most baselineHours); `ratio` = hour ÷ baseline, absent until there
 * is a non-zero baseline. `calls.hour` and `values.<name>.hour` include the request
 * being decided; `denies` counts decided denials only. Values count every request
 * the signal measures, denied ones included: they describe what the agent asks for.
 *
 * Memory bound: maxAgents × ((2 + values) × (baselineHours + 1) × 8 bytes + at most
 * maxDestinationsPerAgent + maxToolsPerAgent remembered names). Past maxAgents the
 * least recently seen agent is forgotten (tollgate_behaviour_agents_evicted_total): its
 * baseline starts again if it returns. State is per process: replicas learn separately.
 */
import type { PolicyInput } from '../input/build.ts';
import type { Decision, Pdp } from '../pdp/types.ts';
import type { BehaviourMetricsSource, BehaviourSeries } from '../telemetry/metrics.ts';
import { HOUR_MS, addToRing, createHourlyRing, readRing, type HourlyRing, type RingReading } from './hourly-ring.ts';
import { compileValueSignal, type ValueSignalConfig } from './value-signals.ts';

/** Options of createBehaviourTracker (the `behaviour` config section). */
export interface BehaviourOptions {
  readonly maxAgents: number;
  readonly baselineHours: number;
  readonly maxDestinationsPerAgent: number;
  readonly maxToolsPerAgent: number;
  readonly values: readonly ValueSignalConfig[];
  /** The clock (ms since the epoch); tests inject one. */
  readonly now?: () => number;
}

/** One signal as the policy sees it under input.behaviour. */
export interface SignalDocument {
  hour: number;
  baseline_hourly_avg?: number;
  baseline_hours: number;
  ratio?: number;
}

/** input.behaviour. */
export interface BehaviourDocument {
  calls: SignalDocument;
  denies: SignalDocument;
  /** denies.hour ÷ calls.hour, and the same over the baseline. */
  deny_ratio: { hour: number; baseline?: number };
  destination: { name: string; new: boolean; seen: number };
  tool?: { name: string; new: boolean; seen: number };
  values: Record<string, SignalDocument & { value?: number }>;
}

/** A call between observe and its verdict. */
export interface Observation {
  /** Records the call once its outcome is known ("error": no decision was made). */
  settle(outcome: 'allow' | 'deny' | 'error'): void;
}

/** The tracker. */
export interface BehaviourTracker extends BehaviourMetricsSource {
  /** Sets input.behaviour from the agent's statistics; settle the returned observation after the verdict. */
  observe(input: PolicyInput): Observation;
}

interface AgentState {
  readonly firstHour: number;
  readonly calls: HourlyRing;
  readonly denies: HourlyRing;
  readonly values: HourlyRing[];
  readonly destinations: Set<string>;
  readonly tools: Set<string>;
  newDestinations: number;
  newTools: number;
}

function signalDocument(reading: RingReading, extra = 0): SignalDocument {
  const hour = reading.hour + extra;
  const doc: SignalDocument = { hour, baseline_hours: reading.baselineHours };
  if (reading.baselineHourlyAvg !== undefined) {
    doc.baseline_hourly_avg = reading.baselineHourlyAvg;
    if (reading.baselineHourlyAvg > 0) doc.ratio = hour / reading.baselineHourlyAvg;
  }
  return doc;
}

function mcpToolName(input: PolicyInput): string | undefined {
  const mcp = input.mcp;
  return mcp !== undefined && 'tool' in mcp ? mcp.tool?.name : undefined;
}

/** Creates a tracker; nothing is kept until the first call. */
export function createBehaviourTracker(options: BehaviourOptions): BehaviourTracker {
  const now = options.now ?? Date.now;
  const hours = options.baselineHours;
  const signals = options.values.map(compileValueSignal);
  // Insertion order is recency order: a seen agent is moved to the end, the first is the eviction candidate.
  const agents = new Map<string, AgentState>();
  let evicted = 0;

  function state(agent: string, at: number): AgentState {
    let s = agents.get(agent);
    if (s !== undefined) {
      agents.delete(agent);
      agents.set(agent, s);
      return s;
    }
    s = {
      firstHour: Math.floor(at / HOUR_MS),
      calls: createHourlyRing(hours, at),
      denies: createHourlyRing(hours, at),
      values: signals.map(() => createHourlyRing(hours, at)),
      destinations: new Set(),
      tools: new Set(),
      newDestinations: 0,
      newTools: 0,
    };
    agents.set(agent, s);
    while (agents.size > options.maxAgents) {
      agents.delete(agents.keys().next().value!);
      evicted += 1;
    }
    return s;
  }

  return {
    observe(input) {
      const at = now();
      const s = state(input.agent.id, at);
      const calls = readRing(s.calls, at, s.firstHour);
      const denies = readRing(s.denies, at, s.firstHour);
      const destination = input.attributes.request.http.host;
      const tool = mcpToolName(input);
      const newDestination = !s.destinations.has(destination);
      const newTool = tool !== undefined && !s.tools.has(tool);
      const measured = signals.map((signal) => signal.measure(input));
      const values: BehaviourDocument['values'] = {};
      signals.forEach((signal, i) => {
        const value = measured[i];
        const doc: SignalDocument & { value?: number } = signalDocument(
          readRing(s.values[i]!, at, s.firstHour),
          value ?? 0,
        );
        if (value !== undefined) doc.value = value;
        values[signal.name] = doc;
      });
      const callsDoc = signalDocument(calls, 1);
      const deniesDoc = signalDocument(denies);
      const document: BehaviourDocument = {
        calls: callsDoc,
        denies: deniesDoc,
        deny_ratio: {
          hour: deniesDoc.hour / callsDoc.hour,
          ...(calls.baselineHourlyAvg !== undefined && calls.baselineHourlyAvg > 0
            ? { baseline: (denies.baselineHourlyAvg ?? 0) / calls.baselineHourlyAvg }
            : {}),
        },
        destination: { name: destination, new: newDestination, seen: s.destinations.size },
        ...(tool === undefined ? {} : { tool: { name: tool, new: newTool, seen: s.tools.size } }),
        values,
      };
      (input as PolicyInput & { behaviour?: BehaviourDocument }).behaviour = document;
      let settled = false;
      return {
        settle(outcome) {
          if (settled) return;
          settled = true;
          const t = now();
          // Learning hour: everything an agent touches first is new; only later novelty is counted.
          const learning = Math.floor(t / HOUR_MS) <= s.firstHour;
          addToRing(s.calls, t, 1);
          if (outcome === 'deny') addToRing(s.denies, t, 1);
          // Every decided request counts, denied ones too: the signal is what the agent asks for, so
          // an agent that keeps asking for outsized orders stays anomalous while each one is refused.
          measured.forEach((value, i) => {
            if (value !== undefined) addToRing(s.values[i]!, t, value);
          });
          if (
            newDestination &&
            s.destinations.size < options.maxDestinationsPerAgent &&
            !s.destinations.has(destination)
          ) {
            s.destinations.add(destination);
            if (!learning) s.newDestinations += 1;
          }
          if (newTool && s.tools.size < options.maxToolsPerAgent && !s.tools.has(tool)) {
            s.tools.add(tool);
            if (!learning) s.newTools += 1;
          }
        },
      };
    },
    *behaviourSeries(): Iterable<BehaviourSeries> {
      const at = now();
      for (const [agent, s] of agents) {
        const signalsOut: BehaviourSeries['signals'] = [
          { signal: 'calls', ...readRing(s.calls, at, s.firstHour) },
          { signal: 'denies', ...readRing(s.denies, at, s.firstHour) },
          ...signals.map((signal, i) => ({ signal: signal.name, ...readRing(s.values[i]!, at, s.firstHour) })),
        ];
        yield { agent, signals: signalsOut, newDestinations: s.newDestinations, newTools: s.newTools };
      }
    },
    behaviourAgents: () => agents.size,
    behaviourEvicted: () => evicted,
  };
}

/**
 * The PDP seen through the tracker: each decide() first sets input.behaviour, then
 * records the call with the PDP's answer (or "error" when it gave none). Without a
 * tracker, the PDP itself.
 */
export function watchBehaviour(
  pdp: Pick<Pdp, 'decide' | 'decideNow' | 'info'>,
  tracker: BehaviourTracker | undefined,
): Pick<Pdp, 'decide' | 'decideNow' | 'info'> {
  if (tracker === undefined) return pdp;
  return {
    info: () => pdp.info(),
    async decide(input: PolicyInput, decisionId: string): Promise<Decision> {
      const observation = tracker.observe(input);
      let decision: Decision;
      try {
        decision = await pdp.decide(input, decisionId);
      } catch (err) {
        observation.settle('error');
        throw err;
      }
      observation.settle(decision.allowed ? 'allow' : 'deny');
      return decision;
    },
  };
}
