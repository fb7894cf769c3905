/**
 * The one file that sets up the OpenTelemetry SDK: tracer provider, OTLP exporter
 * (gRPC, HTTP/protobuf or HTTP/JSON), sampler, span limits, propagators. Everything
 * else uses `@opentelemetry/api` through the Tracing API in spans.ts; the protobuf
 * exporters' wire encoding is in otlp-protobuf.ts.
 *
 * Configuration: the config file's values, overridden by the standard OTEL_* variables
 * (the same way TOLLGATE_* variables override the file). The OTLP exporters also read
 * OTEL_EXPORTER_OTLP_* (endpoint, headers, certificates, timeout) themselves.
 *
 * Telemetry never throws into the host: export failures go to a rate-limited warn
 * line, a dead collector only fills (then overflows) the batch queue, and shutdown()
 * gives up after shutdownTimeoutMs.
 *
 * "Denied decisions are always sampled": a call's span is started once its decision
 * is known (spans.ts), a deny (tollgate.decision.outcome) among its start attributes, and
 * the sampler samples every deny before asking the head sampler (parent-based ratio)
 * about the rest. An allowed call head sampling drops is never recorded, so a low
 * ratio really is cheap. A denied call in an unsampled agent trace is exported with the
 * sampled flag; it never reaches the upstream, so the flag never leaks a lie
 * downstream. `alwaysSampleDenied: false` leaves the head sampler alone.
 */
import {
  context,
  diag,
  propagation,
  trace,
  DiagLogLevel,
  type TextMapPropagator,
  type Tracer,
} from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { ExportResultCode, setGlobalErrorHandler, loggingErrorHandler } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  SimpleSpanProcessor,
  TraceIdRatioBasedSampler,
  TracerProvider,
  SamplingDecision,
  type IdGenerator,
  type Sampler,
  type ReadableSpan,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace';
import type { OTLPExporterNodeConfigBase } from '@opentelemetry/otlp-exporter-base/node-http';
import { randomHex } from '../runtime/uuid.ts';
import {
  createGrpcSpanExporter,
  createProtoSpanExporter,
  EncodingBatchSpanProcessor,
  ENCODED_BATCH_DEFAULTS,
} from './otlp-export.ts';
import { Metadata } from '@grpc/grpc-js';
import {
  buildPropagator,
  disabledTelemetry,
  envString,
  propagatorNamesOf,
  tracingEnabled,
  type Env,
  type PropagatorName,
  type Telemetry,
} from './off.ts';

export type { PropagatorName, Telemetry } from './off.ts';
import {
  ATTR_DECISION_OUTCOME,
  ATTR_RESOURCE_AGENT_ID,
  ATTR_SERVICE_NAME,
  ATTR_SERVICE_VERSION,
  OUTCOME_DENY,
  TRACER_NAME,
} from './semconv.ts';

/** OTLP transports (OTEL_EXPORTER_OTLP_PROTOCOL values). */
export type OtlpProtocol = 'grpc' | 'http/protobuf' | 'http/json';

/** The warn-level logger telemetry reports to (pino's shape). */
export interface TelemetryLogger {
  warn(obj: object, msg: string): void;
}

/** Options of setupTelemetry; every field has a default. */
export interface TelemetryOptions {
  /** Export spans at all (OTEL_SDK_DISABLED=true / OTEL_TRACES_EXPORTER=none turn it off; an OTLP endpoint in the env turns it on). */
  readonly enabled?: boolean;
  /** Default "tollgate"; OTEL_SERVICE_NAME and service.name in OTEL_RESOURCE_ATTRIBUTES win. */
  readonly serviceName?: string;
  readonly serviceVersion?: string;
  /** Resource attribute tollgate.agent.id (omitted when empty). */
  readonly agentId?: string;
  /** Extra resource attributes (OTEL_RESOURCE_ATTRIBUTES adds to and overrides them). */
  readonly resourceAttributes?: Readonly<Record<string, string>>;
  /** Default "grpc" (Jaeger, the collector and Tempo all take it); OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL wins. */
  readonly protocol?: OtlpProtocol;
  /** Collector base URL ("http://127.0.0.1:4317" for gRPC, "http://127.0.0.1:4318" for HTTP; "/v1/traces" is appended for HTTP). "" = SDK default / env. */
  readonly endpoint?: string;
  /** Headers (gRPC metadata) sent with every export, e.g. an API key. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Ratio of new traces sampled, for roots (calls with no trace context); children follow their parent's flag. Default 0.1; denied decisions are sampled regardless (alwaysSampleDenied). */
  readonly samplerRatio?: number;
  /** Export the spans of denied decisions even when head sampling dropped them. Default true. */
  readonly alwaysSampleDenied?: boolean;
  /** Default ["tracecontext", "baggage"]; OTEL_PROPAGATORS wins. */
  readonly propagators?: readonly PropagatorName[];
  /** Longest string attribute value; longer ones are truncated. Default 4096. */
  readonly attributeValueLengthLimit?: number;
  /** Most attributes per span. Default 128. */
  readonly attributeCountLimit?: number;
  /** Batch processor: queue bound (spans beyond it are dropped), batch size, delay, export timeout. Queue and batch default to 8192/2048 for gRPC and HTTP/protobuf (encoded spans), 2048/512 for HTTP/JSON. */
  readonly maxQueueSize?: number;
  readonly maxExportBatchSize?: number;
  readonly scheduledDelayMs?: number;
  readonly exportTimeoutMs?: number;
  /** shutdown() resolves after at most this long, flushed or not. Default 5000. */
  readonly shutdownTimeoutMs?: number;
  /** The OTEL_* variables (the CLI passes process.env; only cli/ reads the environment). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly logger?: TelemetryLogger;
  /** Register the provider, propagator and an AsyncLocalStorage context manager as the API globals. Default true. */
  readonly registerGlobal?: boolean;
  /** Tests: export to this exporter instead of OTLP, span by span (no batching). */
  readonly exporter?: SpanExporter;
}

/**
 * Trace and span ids from the CSPRNG, drawn in batches (the SDK's default draws each byte with
 * Math.random and builds its hex string a character at a time: ~1.2 µs of a call). W3C Trace
 * Context makes an all-zero id invalid: such an id is drawn again.
 */
const ZERO_TRACE_ID = '0'.repeat(32);
const ZERO_SPAN_ID = '0'.repeat(16);
const ID_GENERATOR: IdGenerator = {
  generateTraceId() {
    let id = randomHex(32);
    while (id === ZERO_TRACE_ID) id = randomHex(32);
    return id;
  },
  generateSpanId() {
    let id = randomHex(16);
    while (id === ZERO_SPAN_ID) id = randomHex(16);
    return id;
  },
};

const DEFAULTS = {
  serviceName: 'tollgate',
  protocol: 'grpc' as OtlpProtocol,
  samplerRatio: 0.1,
  alwaysSampleDenied: true,
  attributeValueLengthLimit: 4096,
  attributeCountLimit: 128,
  // BatchSpanProcessor's (span objects wait in its queue): the HTTP/JSON export. The
  // protobuf exports queue encoded bytes and default larger (ENCODED_BATCH_DEFAULTS).
  maxQueueSize: 2048,
  maxExportBatchSize: 512,
  scheduledDelayMs: 5000,
  exportTimeoutMs: 10000,
  shutdownTimeoutMs: 5000,
};

function envNumber(env: Env, ...names: string[]): number | undefined {
  const raw = envString(env, ...names);
  if (raw === undefined) return undefined;
  const value = Number(raw);
  return Number.isFinite(value) && value >= 0 ? value : undefined;
}

/** OTEL_RESOURCE_ATTRIBUTES: "k=v,k2=v2", percent-encoded (W3C baggage octets). */
function parseResourceAttributes(raw: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (raw === undefined) return out;
  for (const pair of raw.split(',')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) continue;
    try {
      out[decodeURIComponent(pair.slice(0, eq).trim())] = decodeURIComponent(pair.slice(eq + 1).trim());
    } catch {
      // A malformed pair is skipped, as the SDK's env detector does.
    }
  }
  return out;
}

/** Head sampler from OTEL_TRACES_SAMPLER(_ARG), else parent-based ratio. */
function headSampler(env: Env, ratio: number): { sampler: Sampler; name: string } {
  const argRaw = envString(env, 'OTEL_TRACES_SAMPLER_ARG');
  const arg =
    argRaw !== undefined && Number.isFinite(Number(argRaw)) ? Math.min(1, Math.max(0, Number(argRaw))) : ratio;
  const ratioSampler = (r: number): Sampler =>
    r >= 1 ? new AlwaysOnSampler() : r <= 0 ? new AlwaysOffSampler() : new TraceIdRatioBasedSampler(r);
  switch (envString(env, 'OTEL_TRACES_SAMPLER')) {
    case 'always_on':
      return { sampler: new AlwaysOnSampler(), name: 'always_on' };
    case 'always_off':
      return { sampler: new AlwaysOffSampler(), name: 'always_off' };
    case 'traceidratio':
      return { sampler: ratioSampler(arg), name: `traceidratio(${arg})` };
    case 'parentbased_always_on':
      return { sampler: new ParentBasedSampler({ root: new AlwaysOnSampler() }), name: 'parentbased_always_on' };
    case 'parentbased_always_off':
      return { sampler: new ParentBasedSampler({ root: new AlwaysOffSampler() }), name: 'parentbased_always_off' };
    default:
      // parentbased_traceidratio, unset or unknown: the configured ratio (or the env's arg).
      return { sampler: new ParentBasedSampler({ root: ratioSampler(arg) }), name: `parentbased_traceidratio(${arg})` };
  }
}

/**
 * Samples every span whose start attributes say tollgate.decision.outcome=deny; the
 * head sampler decides the rest. spans.ts starts a call's span once its decision is
 * known, with a deny among the start attributes, so this sees it.
 */
export function createDeniedDecisionSampler(head: Sampler): Sampler {
  return {
    shouldSample(context, traceId, spanName, spanKind, attributes, links) {
      if (attributes[ATTR_DECISION_OUTCOME] === OUTCOME_DENY) return { decision: SamplingDecision.RECORD_AND_SAMPLED };
      return head.shouldSample(context, traceId, spanName, spanKind, attributes, links);
    },
    toString: () => `DeniedDecisionSampler{${head.toString()}}`,
  };
}

/**
 * The export processor for a protocol: gRPC and HTTP/protobuf encode each span as it
 * ends and batch the bytes (otlp-export.ts); HTTP/JSON uses the SDK's BatchSpanProcessor
 * with the upstream JSON exporter.
 */
function createExportProcessor(
  protocol: OtlpProtocol,
  endpoint: string | undefined,
  headers: Readonly<Record<string, string>>,
  batch: {
    maxQueueSize: number;
    maxExportBatchSize: number;
    scheduledDelayMillis: number;
    exportTimeoutMillis: number;
  },
): SpanProcessor {
  const base = endpoint?.replace(/\/+$/, '');
  const timeoutMillis = batch.exportTimeoutMillis;
  switch (protocol) {
    case 'grpc': {
      let metadata: Metadata | undefined;
      if (Object.keys(headers).length > 0) {
        metadata = new Metadata();
        for (const [k, v] of Object.entries(headers)) metadata.set(k, v);
      }
      const exporter = createGrpcSpanExporter({
        timeoutMillis,
        ...(base !== undefined ? { url: base } : {}),
        ...(metadata !== undefined ? { metadata } : {}),
      });
      return connected(new EncodingBatchSpanProcessor(exporter, batch));
    }
    case 'http/protobuf':
    case 'http/json': {
      const url = base === undefined ? undefined : base.endsWith('/v1/traces') ? base : `${base}/v1/traces`;
      const config = { timeoutMillis, headers: { ...headers }, ...(url !== undefined ? { url } : {}) };
      return protocol === 'http/json'
        ? new BatchSpanProcessor({ exporter: jsonExporter(config), ...batch })
        : connected(new EncodingBatchSpanProcessor(createProtoSpanExporter(config), batch));
    }
    default:
      return protocol satisfies never;
  }
}

/**
 * The upstream HTTP/JSON exporter, imported when this protocol is chosen: its package loads
 * otlp-transformer, whose index brings every signal's serializers and the metrics SDK (~70
 * modules), which the gRPC and HTTP/protobuf paths do without. Spans that end before the import
 * finishes wait for it in the batch processor's queue.
 */
function jsonExporter(config: OTLPExporterNodeConfigBase): SpanExporter {
  const ready = import('@opentelemetry/exporter-trace-otlp-http').then(
    ({ OTLPTraceExporter }) => new OTLPTraceExporter(config),
  );
  // A failed import (or an exporter that throws) is reported by each export (FAILED, to the
  // global error handler), never as an unhandled rejection that would end the process.
  ready.catch(() => undefined);
  return {
    export(spans: ReadableSpan[], done) {
      ready
        .then((exporter) => exporter.export(spans, done))
        .catch((error: unknown) =>
          done({ code: ExportResultCode.FAILED, error: error instanceof Error ? error : new Error(String(error)) }),
        );
    },
    shutdown: () => ready.then((exporter) => exporter.shutdown()),
    forceFlush: () => ready.then((exporter) => exporter.forceFlush()),
  };
}

/** The processor, its exporter connecting now rather than at the first export. */
function connected(processor: EncodingBatchSpanProcessor): EncodingBatchSpanProcessor {
  processor.connect();
  return processor;
}

/** A warn line at most every 30 s, saying how many failures it stands for. */
function rateLimitedWarn(logger: TelemetryLogger | undefined): (err: unknown) => void {
  let last = 0;
  let suppressed = 0;
  return (err) => {
    const now = Date.now();
    if (now - last < 30_000) {
      suppressed++;
      return;
    }
    last = now;
    const message = err instanceof Error ? err.message : typeof err === 'string' ? err : JSON.stringify(err);
    logger?.warn({ component: 'telemetry', err: message, suppressed }, 'span export failed; spans are being dropped');
    suppressed = 0;
  };
}

/** Builds the tracer provider from options and OTEL_* env; never throws on bad telemetry config. */
export function setupTelemetry(options: TelemetryOptions = {}): Telemetry {
  const env = options.env ?? {};
  if (!tracingEnabled(options)) return disabledTelemetry(options);
  const propagator = buildPropagator(propagatorNamesOf(options));
  const registerGlobal = options.registerGlobal ?? true;
  const envEndpoint = envString(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', 'OTEL_EXPORTER_OTLP_ENDPOINT');

  const warn = rateLimitedWarn(options.logger);
  setGlobalErrorHandler(warn);
  diag.setLogger(
    {
      error: (message) => warn(message),
      warn: (message) => warn(message),
      info: () => undefined,
      debug: () => undefined,
      verbose: () => undefined,
    },
    { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true },
  );

  const protocolRaw =
    envString(env, 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', 'OTEL_EXPORTER_OTLP_PROTOCOL') ??
    options.protocol ??
    DEFAULTS.protocol;
  const protocol: OtlpProtocol =
    protocolRaw === 'http/protobuf' || protocolRaw === 'http/json' || protocolRaw === 'grpc'
      ? protocolRaw
      : DEFAULTS.protocol;
  // An endpoint in the env wins: let the exporter read it (and its signal-specific rules) itself.
  const endpoint = envEndpoint !== undefined ? undefined : options.endpoint === '' ? undefined : options.endpoint;
  const exportTimeoutMs =
    envNumber(env, 'OTEL_BSP_EXPORT_TIMEOUT') ?? options.exportTimeoutMs ?? DEFAULTS.exportTimeoutMs;
  const ratio = options.samplerRatio ?? DEFAULTS.samplerRatio;
  const head = headSampler(env, ratio);
  const alwaysSampleDenied = options.alwaysSampleDenied ?? DEFAULTS.alwaysSampleDenied;
  const sampler = alwaysSampleDenied ? createDeniedDecisionSampler(head.sampler) : head.sampler;

  const encoded = options.exporter === undefined && protocol !== 'http/json';
  const export_: SpanProcessor =
    options.exporter !== undefined
      ? new SimpleSpanProcessor({ exporter: options.exporter })
      : createExportProcessor(protocol, endpoint, options.headers ?? {}, {
          maxQueueSize:
            envNumber(env, 'OTEL_BSP_MAX_QUEUE_SIZE') ??
            options.maxQueueSize ??
            (encoded ? ENCODED_BATCH_DEFAULTS.maxQueueSize : DEFAULTS.maxQueueSize),
          maxExportBatchSize:
            envNumber(env, 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE') ??
            options.maxExportBatchSize ??
            (encoded ? ENCODED_BATCH_DEFAULTS.maxExportBatchSize : DEFAULTS.maxExportBatchSize),
          scheduledDelayMillis:
            envNumber(env, 'OTEL_BSP_SCHEDULE_DELAY') ?? options.scheduledDelayMs ?? DEFAULTS.scheduledDelayMs,
          exportTimeoutMillis: exportTimeoutMs,
        });

  const envResource = parseResourceAttributes(envString(env, 'OTEL_RESOURCE_ATTRIBUTES'));
  const serviceName =
    envString(env, 'OTEL_SERVICE_NAME') ??
    envResource[ATTR_SERVICE_NAME] ??
    options.serviceName ??
    DEFAULTS.serviceName;
  const resource = resourceFromAttributes({
    ...(options.serviceVersion !== undefined ? { [ATTR_SERVICE_VERSION]: options.serviceVersion } : {}),
    ...(options.agentId !== undefined && options.agentId !== '' ? { [ATTR_RESOURCE_AGENT_ID]: options.agentId } : {}),
    ...options.resourceAttributes,
    ...envResource,
    [ATTR_SERVICE_NAME]: serviceName,
  });

  const provider = new TracerProvider({
    resource,
    sampler,
    idGenerator: ID_GENERATOR,
    spanLimits: {
      attributeValueLengthLimit:
        envNumber(env, 'OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT', 'OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT') ??
        options.attributeValueLengthLimit ??
        DEFAULTS.attributeValueLengthLimit,
      attributeCountLimit:
        envNumber(env, 'OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT', 'OTEL_ATTRIBUTE_COUNT_LIMIT') ??
        options.attributeCountLimit ??
        DEFAULTS.attributeCountLimit,
    },
    spanProcessors: [export_],
  });

  let contextManager: AsyncLocalStorageContextManager | undefined;
  if (registerGlobal) {
    contextManager = new AsyncLocalStorageContextManager().enable();
    context.setGlobalContextManager(contextManager);
    propagation.setGlobalPropagator(propagator);
    trace.setGlobalTracerProvider(provider);
  }

  const timeoutMs = options.shutdownTimeoutMs ?? DEFAULTS.shutdownTimeoutMs;
  const bounded = async (work: () => Promise<void>): Promise<void> => {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      work().catch((err: unknown) => warn(err)),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
  };
  let shutdownPromise: Promise<void> | undefined;

  return {
    enabled: true,
    tracer: provider.getTracer(TRACER_NAME, options.serviceVersion),
    propagator,
    description: `otlp ${protocol} ${options.exporter !== undefined ? 'custom exporter' : (envEndpoint ?? endpoint ?? 'default endpoint')}, sampler ${head.name}${alwaysSampleDenied ? ' + denied decisions' : ''}`,
    forceFlush: () => bounded(() => provider.forceFlush()),
    shutdown() {
      shutdownPromise ??= bounded(() => provider.shutdown()).then(() => {
        if (registerGlobal) {
          trace.disable();
          propagation.disable();
          context.disable();
        }
        setGlobalErrorHandler(loggingErrorHandler());
        diag.disable();
      });
      return shutdownPromise;
    },
  };
}
