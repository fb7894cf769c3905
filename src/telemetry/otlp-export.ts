/**
 * The OTLP/gRPC and OTLP/HTTP-protobuf span export path: a batch processor that
 * encodes each span when it ends (otlp-protobuf.ts) and exports whole pre-encoded
 * requests through the upstream OTLP exporters' delegates.
 *
 * Why not the SDK's BatchSpanProcessor + OTLP exporter: that pair keeps every finished
 * span object alive until its batch is serialised (up to 512 spans later, by then
 * promoted out of the young generation and cold in the CPU cache), then serialises the
 * whole batch in one go on the event loop. Encoding at span end reads the span while it
 * is hot, lets it die young, and spreads the work evenly; the batching rules are the
 * BatchSpanProcessor's (maxQueueSize, maxExportBatchSize, scheduledDelayMillis,
 * exportTimeoutMillis, OTEL_BSP_* in setup.ts; one export in flight; drops when the
 * queue is full, with a warning).
 *
 * The transports are the upstream ones, built through the exporter packages' public
 * delegate API: the same configuration, OTEL_EXPORTER_OTLP_* handling, retries,
 * timeouts, compression and TLS as `@opentelemetry/exporter-trace-otlp-grpc` and
 * `-proto`; only the serializer hands over bytes already made.
 */
import { context, diag, TraceFlags, type Context } from '@opentelemetry/api';
import { ExportResultCode, globalErrorHandler, suppressTracing, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, Span, SpanProcessor } from '@opentelemetry/sdk-trace';
import type { IExportTraceServiceResponse, IExporterMetricsHelper, ISerializer } from '@opentelemetry/otlp-transformer';
import { OTLPExporterBase } from '@opentelemetry/otlp-exporter-base';
import {
  convertLegacyHttpOptions,
  createOtlpHttpExportDelegate,
  type OTLPExporterNodeConfigBase,
} from '@opentelemetry/otlp-exporter-base/node-http';
import {
  convertLegacyOtlpGrpcOptions,
  createOtlpGrpcExportDelegate,
  type OTLPGRPCExporterConfigNode,
} from '@opentelemetry/otlp-grpc-exporter-base';
import { SpanBatch } from './otlp-protobuf.ts';
import { bytesFields, readFields, stringField, varintField } from '../proto/wire.ts';

/** A whole ExportTraceServiceRequest, encoded, and how many spans it carries. */
export interface EncodedSpans {
  readonly bytes: Uint8Array;
  readonly count: number;
}

/**
 * An ExportTraceServiceResponse (opentelemetry/proto/collector/trace/v1/trace_service.proto:
 * 1 partial_success { 1 rejected_spans int64, 2 error_message string }), which the exporters
 * log when a collector rejected spans. Read here rather than through otlp-transformer, whose
 * index loads every signal's serializers and the metrics SDK (~70 modules) at start.
 */
export function decodeExportResponse(data: Uint8Array): IExportTraceServiceResponse {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const partial = bytesFields(readFields(buf), 1).at(-1);
  if (partial === undefined) return {};
  const fields = readFields(partial);
  const rejectedSpans = varintField(fields, 1);
  const errorMessage = stringField(fields, 2);
  return {
    partialSuccess: {
      ...(rejectedSpans !== undefined ? { rejectedSpans } : {}),
      ...(errorMessage !== undefined ? { errorMessage } : {}),
    },
  };
}

const serializer: ISerializer<EncodedSpans, IExportTraceServiceResponse> = {
  serializeRequest: (batch) => batch.bytes,
  deserializeResponse: decodeExportResponse,
};

const metricsHelper: IExporterMetricsHelper<EncodedSpans> = { name: 'span', countItems: (batch) => batch.count };

/** Sends pre-encoded span batches; OTLPExporterBase's export/forceFlush/shutdown. */
export type EncodedSpanExporter = OTLPExporterBase<EncodedSpans>;

/** OTLP/gRPC (opentelemetry.proto.collector.trace.v1.TraceService/Export). */
export function createGrpcSpanExporter(config: OTLPGRPCExporterConfigNode): EncodedSpanExporter {
  return new OTLPExporterBase(
    createOtlpGrpcExportDelegate(
      convertLegacyOtlpGrpcOptions(config, 'TRACES'),
      serializer,
      'otlp_grpc_span_exporter',
      metricsHelper,
      undefined,
      'TraceExportService',
      '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
    ),
  );
}

/** OTLP/HTTP with protobuf bodies (POST …/v1/traces). */
export function createProtoSpanExporter(config: OTLPExporterNodeConfigBase): EncodedSpanExporter {
  return new OTLPExporterBase(
    createOtlpHttpExportDelegate(
      convertLegacyHttpOptions(config, 'TRACES', 'v1/traces', { 'Content-Type': 'application/x-protobuf' }),
      serializer,
      'otlp_http_span_exporter',
      metricsHelper,
      undefined,
    ),
  );
}

/** The export side of EncodingBatchSpanProcessor (an EncodedSpanExporter, or a test's). */
export interface BatchExporter {
  export(batch: EncodedSpans, done: (result: ExportResult) => void): void;
  shutdown(): Promise<void>;
}

/** BatchSpanProcessor's settings and names, plus a bound on a request's size. */
export interface EncodingBatchOptions {
  /** Spans waiting at most (encoded: about 0.6 KiB each for a Tollgate call). Default 8192. */
  readonly maxQueueSize?: number;
  /** Spans per export request at most. Default 2048: each export has a fixed cost (a gRPC call, flow control), so fewer, larger requests cost less per span. */
  readonly maxExportBatchSize?: number;
  /** A request closes at this many encoded bytes whatever its span count. Default 3 MiB, under the 4 MiB a gRPC server (Jaeger, the Collector) accepts by default. */
  readonly maxExportBatchBytes?: number;
  readonly scheduledDelayMillis?: number;
  readonly exportTimeoutMillis?: number;
}

/** Defaults of EncodingBatchOptions. */
export const ENCODED_BATCH_DEFAULTS = {
  maxQueueSize: 8192,
  maxExportBatchSize: 2048,
  maxExportBatchBytes: 3 * 1024 * 1024,
} as const;

/**
 * Encodes sampled spans as they end and exports them in batches: when a batch holds
 * maxExportBatchSize spans or maxExportBatchBytes, or scheduledDelayMillis after its
 * first span. At most maxQueueSize spans wait (encoded, or being exported); beyond that
 * spans are dropped and counted in a warning. One export at a time; one that has not
 * answered after exportTimeoutMillis counts as failed.
 */
export class EncodingBatchSpanProcessor implements SpanProcessor {
  private readonly exporter: BatchExporter;
  private readonly maxQueueSize: number;
  private readonly maxExportBatchSize: number;
  private readonly maxExportBatchBytes: number;
  private readonly scheduledDelayMillis: number;
  private readonly exportTimeoutMillis: number;
  private current = new SpanBatch();
  private readonly ready: EncodedSpans[] = [];
  /** Spans encoded and not yet through an export (current batch, ready batches, in flight). */
  private queued = 0;
  private dropped = 0;
  private exporting: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private shutdownPromise: Promise<void> | undefined;

  constructor(exporter: BatchExporter, options: EncodingBatchOptions = {}) {
    this.exporter = exporter;
    this.maxQueueSize = options.maxQueueSize ?? ENCODED_BATCH_DEFAULTS.maxQueueSize;
    this.maxExportBatchSize = Math.min(
      options.maxExportBatchSize ?? ENCODED_BATCH_DEFAULTS.maxExportBatchSize,
      this.maxQueueSize,
    );
    this.maxExportBatchBytes = options.maxExportBatchBytes ?? ENCODED_BATCH_DEFAULTS.maxExportBatchBytes;
    this.scheduledDelayMillis = options.scheduledDelayMillis ?? 5000;
    this.exportTimeoutMillis = options.exportTimeoutMillis ?? 30000;
  }

  onStart(_span: Span, _parentContext: Context): void {}

  onEnd(span: ReadableSpan): void {
    if (this.shutdownPromise !== undefined) return;
    if ((span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0) return;
    if (this.queued >= this.maxQueueSize) {
      this.dropped++;
      return;
    }
    if (this.dropped > 0) {
      diag.warn(`Dropped ${this.dropped} spans because maxQueueSize reached`);
      this.dropped = 0;
    }
    try {
      this.current.add(span);
    } catch (err) {
      // Only this span is lost (SpanBatch.add leaves the batch as it was); telemetry never throws into the host.
      globalErrorHandler(err instanceof Error ? err : String(err));
      return;
    }
    this.queued++;
    if (this.current.count >= this.maxExportBatchSize || this.current.encoded >= this.maxExportBatchBytes) {
      this.seal();
      this.pump();
    } else if (this.timer === undefined) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.seal();
        this.pump();
      }, this.scheduledDelayMillis);
      this.timer.unref();
    }
  }

  /**
   * Sends one empty export request now, so that the exporter opens its connection (and runs
   * its code once) at start instead of inside the first batch's export, while requests are
   * being served. A failure is reported like any export's (the collector may come later).
   */
  connect(): void {
    if (this.shutdownPromise !== undefined) return;
    this.ready.unshift({ bytes: new Uint8Array(0), count: 0 });
    this.pump();
  }

  /** Exports everything ended so far; resolves when every batch has been answered. */
  async forceFlush(): Promise<void> {
    this.seal();
    while (this.exporting !== undefined || this.ready.length > 0) {
      this.pump();
      await this.exporting;
    }
  }

  shutdown(): Promise<void> {
    this.shutdownPromise ??= this.forceFlush().then(() => this.exporter.shutdown());
    return this.shutdownPromise;
  }

  private seal(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.current.count === 0) return;
    const count = this.current.count;
    this.ready.push({ bytes: this.current.request(), count });
  }

  private pump(): void {
    if (this.exporting !== undefined) return;
    const batch = this.ready.shift();
    if (batch === undefined) return;
    let resolve!: () => void;
    this.exporting = new Promise<void>((r) => {
      resolve = r;
    });
    let answered = false;
    // An exporter may answer synchronously: everything finish() relies on is set above.
    const finish = (result: ExportResult): void => {
      if (answered) return;
      answered = true;
      clearTimeout(timeout);
      if (result.code !== ExportResultCode.SUCCESS) globalErrorHandler(result.error ?? new Error('span export failed'));
      this.queued -= batch.count;
      this.exporting = undefined;
      resolve();
      this.pump();
    };
    const timeout = setTimeout(
      () => finish({ code: ExportResultCode.FAILED, error: new Error('span export timed out') }),
      this.exportTimeoutMillis,
    );
    timeout.unref();
    // The exporter's own network calls must not be traced (as BatchSpanProcessor does).
    context.with(suppressTracing(context.active()), () => {
      try {
        this.exporter.export(batch, finish);
      } catch (err) {
        finish({ code: ExportResultCode.FAILED, error: err instanceof Error ? err : new Error(String(err)) });
      }
    });
  }
}
