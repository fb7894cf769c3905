/**
 * Tracing off, without the OpenTelemetry SDK: whether the configuration and the OTEL_*
 * variables turn tracing on, and the no-op telemetry used when they do not (the API's
 * no-op tracer plus the configured propagators, so an agent's trace context still reaches
 * the upstream). The CLI imports setup.ts (the SDK and its exporter, ~+4 MB RSS idle) only
 * when tracingEnabled() says so.
 */
import { propagation, ProxyTracerProvider, type TextMapPropagator, type Tracer } from '@opentelemetry/api';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { B3InjectEncoding, B3Propagator } from '@opentelemetry/propagator-b3';
import { TRACER_NAME } from './semconv.ts';

/** Propagators (OTEL_PROPAGATORS values Tollgate supports). */
export type PropagatorName = 'tracecontext' | 'baggage' | 'b3' | 'b3multi';

/** Environment variables as read by telemetry. */
export type Env = Readonly<Record<string, string | undefined>>;

/** What setupTelemetry returns: hand tracer + propagator to createTracing (spans.ts). */
export interface Telemetry {
  /** Whether spans are exported. */
  readonly enabled: boolean;
  readonly tracer: Tracer;
  readonly propagator: TextMapPropagator;
  /** A description for the start-up log line: protocol, endpoint, sampler. */
  readonly description: string;
  forceFlush(): Promise<void>;
  /** Flushes and stops exporting; never rejects, never takes longer than shutdownTimeoutMs. */
  shutdown(): Promise<void>;
}

/** The options tracingEnabled and disabledTelemetry read (a subset of setup.ts's TelemetryOptions). */
export interface TelemetrySwitch {
  readonly enabled?: boolean;
  readonly exporter?: unknown;
  readonly propagators?: readonly PropagatorName[];
  readonly env?: Env;
  readonly registerGlobal?: boolean;
}

const DEFAULT_PROPAGATORS: readonly PropagatorName[] = ['tracecontext', 'baggage'];

/** The first non-empty value among the named variables. */
export function envString(env: Env, ...names: string[]): string | undefined {
  for (const name of names) {
    const value = env[name]?.trim();
    if (value !== undefined && value !== '') return value;
  }
  return undefined;
}

/** Whether spans are exported: OTEL_SDK_DISABLED / OTEL_TRACES_EXPORTER=none turn it off; the config, an exporter or an OTLP endpoint in the env turn it on. */
export function tracingEnabled(options: TelemetrySwitch): boolean {
  const env = options.env ?? {};
  const tracesExporter = envString(env, 'OTEL_TRACES_EXPORTER');
  const disabled = envString(env, 'OTEL_SDK_DISABLED')?.toLowerCase() === 'true' || tracesExporter === 'none';
  return (
    !disabled &&
    (options.exporter !== undefined ||
      options.enabled === true ||
      envString(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', 'OTEL_EXPORTER_OTLP_ENDPOINT') !== undefined ||
      tracesExporter === 'otlp')
  );
}

/** OTEL_PROPAGATORS, else the configured list, else tracecontext + baggage. */
export function propagatorNamesOf(options: TelemetrySwitch): readonly string[] {
  return (
    envString(options.env ?? {}, 'OTEL_PROPAGATORS')
      ?.split(',')
      .map((p) => p.trim()) ??
    options.propagators ??
    DEFAULT_PROPAGATORS
  );
}

/** The composite propagator for the given names (unknown names are skipped). */
export function buildPropagator(names: readonly string[]): TextMapPropagator {
  const propagators: TextMapPropagator[] = [];
  for (const name of names) {
    if (name === 'tracecontext') propagators.push(new W3CTraceContextPropagator());
    else if (name === 'baggage') propagators.push(new W3CBaggagePropagator());
    else if (name === 'b3') propagators.push(new B3Propagator({ injectEncoding: B3InjectEncoding.SINGLE_HEADER }));
    else if (name === 'b3multi') propagators.push(new B3Propagator({ injectEncoding: B3InjectEncoding.MULTI_HEADER }));
  }
  return new CompositePropagator({ propagators });
}

/** No SDK: the API's no-op tracer. Spans are non-recording but carry the incoming context, so the agent's traceparent still reaches the upstream unchanged. */
export function disabledTelemetry(options: TelemetrySwitch): Telemetry {
  const propagator = buildPropagator(propagatorNamesOf(options));
  const registerGlobal = options.registerGlobal ?? true;
  if (registerGlobal) propagation.setGlobalPropagator(propagator);
  return {
    enabled: false,
    tracer: new ProxyTracerProvider().getTracer(TRACER_NAME),
    propagator,
    description: 'tracing off',
    forceFlush: async () => undefined,
    shutdown: async () => {
      if (registerGlobal) propagation.disable();
    },
  };
}
