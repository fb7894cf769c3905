/**
 * The encode-at-span-end batch processor (otlp-export.ts) with a recording exporter in
 * place of the network (the OTLP transports themselves are exercised against the real
 * Jaeger in jaeger.test.ts): batches close at maxExportBatchSize or after
 * scheduledDelayMillis, carry exactly the upstream encoding of their spans, one export
 * runs at a time, a full queue drops and says so, failures and timeouts reach the
 * error handler, forceFlush and shutdown deliver what is pending, unsampled spans and
 * spans after shutdown are ignored.
 */
import t from 'tap';
import { diag, DiagLogLevel, TraceFlags } from '@opentelemetry/api';
import { ExportResultCode, loggingErrorHandler, setGlobalErrorHandler, type ExportResult } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AlwaysOnSampler, TracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import fc from 'fast-check';
import { writeBytes, writeVarint } from '../../src/proto/wire.ts';
import {
  decodeExportResponse,
  EncodingBatchSpanProcessor,
  type BatchExporter,
  type EncodedSpans,
  type EncodingBatchOptions,
} from '../../src/telemetry/otlp-export.ts';

interface Call {
  readonly batch: EncodedSpans;
  readonly done: (result: ExportResult) => void;
}

/** An exporter that records batches and lets the test answer them; `next()` waits for the next call. */
function recordingExporter(autoAnswer: ExportResult | null = { code: ExportResultCode.SUCCESS }) {
  const calls: Call[] = [];
  const waiters: Array<(c: Call) => void> = [];
  let shutdowns = 0;
  const exporter: BatchExporter = {
    export(batch, done) {
      const call = { batch, done };
      calls.push(call);
      waiters.shift()?.(call);
      if (autoAnswer !== null) done(autoAnswer);
    },
    async shutdown() {
      shutdowns++;
    },
  };
  const next = (): Promise<Call> => new Promise((resolve) => waiters.push(resolve));
  return { exporter, calls, next, shutdowns: () => shutdowns };
}

function setup(exporter: BatchExporter, options: EncodingBatchOptions) {
  const processor = new EncodingBatchSpanProcessor(exporter, options);
  const ended: ReadableSpan[] = [];
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'tollgate' }),
    sampler: new AlwaysOnSampler(),
    spanProcessors: [
      { onStart() {}, onEnd: (s) => void ended.push(s), forceFlush: async () => {}, shutdown: async () => {} },
      processor,
    ],
  });
  const tracer = provider.getTracer('tollgate');
  const span = (i: number): void => {
    const s = tracer.startSpan(`s${i}`);
    s.setAttribute('i', i);
    s.end();
  };
  return { processor, ended, span };
}

const upstream = (spans: ReadableSpan[]): Buffer => Buffer.from(ProtobufTraceSerializer.serializeRequest(spans)!);

t.test('a batch closes at maxExportBatchSize and carries the upstream encoding of its spans', async (t) => {
  const rec = recordingExporter();
  const { processor, ended, span } = setup(rec.exporter, { maxExportBatchSize: 3, scheduledDelayMillis: 60_000 });
  for (let i = 0; i < 7; i++) span(i);
  t.equal(rec.calls.length, 2, 'two full batches left, one span waits');
  t.same(
    rec.calls.map((c) => c.batch.count),
    [3, 3],
  );
  t.same(Buffer.from(rec.calls[0]!.batch.bytes), upstream(ended.slice(0, 3)));
  t.same(Buffer.from(rec.calls[1]!.batch.bytes), upstream(ended.slice(3, 6)));
  await processor.forceFlush();
  t.equal(rec.calls.length, 3);
  t.same(Buffer.from(rec.calls[2]!.batch.bytes), upstream(ended.slice(6)), 'forceFlush sends the partial batch');
  await processor.forceFlush();
  t.equal(rec.calls.length, 3, 'nothing pending, nothing sent');
});

t.test('a batch also closes at maxExportBatchBytes, so a request stays under what collectors accept', async (t) => {
  const rec = recordingExporter();
  const { processor, ended, span } = setup(rec.exporter, {
    maxExportBatchSize: 1000,
    maxExportBatchBytes: 100,
    scheduledDelayMillis: 60_000,
  });
  for (let i = 0; i < 5; i++) span(i);
  await processor.forceFlush();
  const counts = rec.calls.map((c) => c.batch.count);
  t.ok(counts.length > 1 && counts.every((n) => n < 5), `closed by size: ${counts.join(', ')}`);
  t.equal(
    counts.reduce((a, b) => a + b, 0),
    5,
    'no span lost',
  );
  let offset = 0;
  for (const call of rec.calls) {
    t.same(Buffer.from(call.batch.bytes), upstream(ended.slice(offset, offset + call.batch.count)));
    offset += call.batch.count;
  }
});

t.test('a partial batch leaves after scheduledDelayMillis', async (t) => {
  const rec = recordingExporter();
  const { span } = setup(rec.exporter, { maxExportBatchSize: 100, scheduledDelayMillis: 30 });
  const next = rec.next();
  span(1);
  span(2);
  t.equal(rec.calls.length, 0, 'not yet');
  // The processor's timer does not keep a process alive (as BatchSpanProcessor's); the test does.
  const keepAlive = setInterval(() => {}, 1000);
  const call = await next;
  clearInterval(keepAlive);
  t.equal(call.batch.count, 2);
});

t.test('one export at a time; a full queue drops spans and warns, then accepts again', async (t) => {
  const rec = recordingExporter(null);
  const warnings: string[] = [];
  diag.setLogger(
    { error: () => {}, warn: (m) => void warnings.push(m), info: () => {}, debug: () => {}, verbose: () => {} },
    { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true },
  );
  t.teardown(() => diag.disable());
  const { processor, span } = setup(rec.exporter, {
    maxQueueSize: 4,
    maxExportBatchSize: 2,
    scheduledDelayMillis: 60_000,
  });
  for (let i = 0; i < 6; i++) span(i);
  t.equal(rec.calls.length, 1, 'the second full batch waits for the first export');
  // 4 queued (2 in flight + 2 ready): spans 4 and 5 were dropped.
  rec.calls[0]!.done({ code: ExportResultCode.SUCCESS });
  t.equal(rec.calls.length, 2, 'the waiting batch goes as soon as the first is answered');
  rec.calls[1]!.done({ code: ExportResultCode.SUCCESS });
  span(6);
  t.match(warnings, [/Dropped 2 spans because maxQueueSize reached/]);
  const flushed = processor.forceFlush();
  rec.calls[2]!.done({ code: ExportResultCode.SUCCESS });
  await flushed;
  t.same(
    rec.calls.map((c) => c.batch.count),
    [2, 2, 1],
  );
});

t.test('failed and timed-out exports reach the error handler and do not stop later batches', async (t) => {
  const errors: unknown[] = [];
  setGlobalErrorHandler((e) => void errors.push(e));
  t.teardown(() => setGlobalErrorHandler(loggingErrorHandler()));
  const rec = recordingExporter(null);
  const { processor, span } = setup(rec.exporter, {
    maxExportBatchSize: 1,
    scheduledDelayMillis: 60_000,
    exportTimeoutMillis: 50,
  });
  const second = new Promise<Call>((resolve) => {
    const first = rec.next();
    void first.then(async (call) => {
      const following = rec.next();
      call.done({ code: ExportResultCode.FAILED, error: new Error('collector said no') });
      resolve(await following); // never answered: times out
    });
  });
  const keepAlive = setInterval(() => {}, 1000);
  span(1);
  span(2);
  await second;
  await processor.forceFlush();
  clearInterval(keepAlive);
  t.match(errors, [/collector said no/, /span export timed out/]);
  span(3);
  t.equal(rec.calls.length, 3, 'the next batch is exported');
  rec.calls[2]!.done({ code: ExportResultCode.SUCCESS });
  rec.calls[1]!.done({ code: ExportResultCode.SUCCESS }); // a late answer is ignored
  await processor.forceFlush();
  t.equal(errors.length, 2);
});

t.test('an exporter that throws counts as a failed export', async (t) => {
  const errors: unknown[] = [];
  setGlobalErrorHandler((e) => void errors.push(e));
  t.teardown(() => setGlobalErrorHandler(loggingErrorHandler()));
  const { processor, span } = setup(
    {
      export() {
        throw new Error('socket gone');
      },
      shutdown: async () => {},
    },
    { maxExportBatchSize: 1 },
  );
  span(1);
  await processor.forceFlush();
  t.match(errors, [/socket gone/]);
});

t.test('a span that cannot be encoded is reported and lost alone; the batch around it is intact', async (t) => {
  const errors: unknown[] = [];
  setGlobalErrorHandler((e) => void errors.push(e));
  t.teardown(() => setGlobalErrorHandler(loggingErrorHandler()));
  const rec = recordingExporter();
  const { processor, ended, span } = setup(rec.exporter, { maxExportBatchSize: 10, scheduledDelayMillis: 60_000 });
  span(1);
  const broken = Object.create(ended[0]!, {
    attributes: {
      get() {
        throw new Error('attributes unreadable');
      },
    },
  }) as ReadableSpan;
  processor.onEnd(broken);
  span(2);
  await processor.forceFlush();
  t.match(errors, [/attributes unreadable/]);
  t.equal(rec.calls.length, 1);
  t.equal(rec.calls[0]!.batch.count, 2);
  t.same(Buffer.from(rec.calls[0]!.batch.bytes), upstream(ended.slice(0, 2)));
});

t.test(
  'unsampled spans are not exported; shutdown flushes, shuts the exporter down once, and ignores later spans',
  async (t) => {
    const rec = recordingExporter();
    const { processor, span } = setup(rec.exporter, { maxExportBatchSize: 10, scheduledDelayMillis: 60_000 });
    const unsampled = {
      spanContext: () => ({ traceId: 'a'.repeat(32), spanId: 'b'.repeat(16), traceFlags: TraceFlags.NONE }),
    } as unknown as ReadableSpan;
    processor.onEnd(unsampled);
    span(1);
    await Promise.all([processor.shutdown(), processor.shutdown()]);
    t.equal(rec.calls.length, 1);
    t.equal(rec.calls[0]!.batch.count, 1, 'only the sampled span');
    t.equal(rec.shutdowns(), 1);
    span(2);
    await processor.forceFlush();
    t.equal(rec.calls.length, 1, 'nothing after shutdown');
  },
);

t.test('connect() sends one empty request first; spans ended meanwhile wait for it, then go as usual', async (t) => {
  const rec = recordingExporter(null);
  const { processor, span } = setup(rec.exporter, { maxExportBatchSize: 2, scheduledDelayMillis: 60_000 });
  processor.connect();
  t.equal(rec.calls.length, 1, 'the empty request leaves at once');
  t.equal(rec.calls[0]!.batch.count, 0);
  t.equal(rec.calls[0]!.batch.bytes.length, 0, 'an ExportTraceServiceRequest with no spans: no bytes');
  span(1);
  span(2);
  t.equal(rec.calls.length, 1, 'the first full batch waits for the connecting export');
  rec.calls[0]!.done({ code: ExportResultCode.SUCCESS });
  t.equal(rec.calls.length, 2);
  t.equal(rec.calls[1]!.batch.count, 2);
  rec.calls[1]!.done({ code: ExportResultCode.SUCCESS });
  const shut = processor.shutdown();
  await shut;
  processor.connect();
  t.equal(rec.calls.length, 2, 'nothing after shutdown');
});

t.test('an export response reads as the upstream deserializer reads it: partial success, unknown fields', async (t) => {
  // ExportTraceServiceResponse: 1 partial_success { 1 rejected_spans int64, 2 error_message string }.
  const field = fc.oneof(
    fc.nat().map((n) => writeVarint(1, n)),
    fc.string({ unit: 'grapheme' }).map((text) => writeBytes(2, text)),
    fc.integer({ min: 3, max: 40 }).chain((n) => fc.nat().map((v) => writeVarint(n, v))),
    fc.integer({ min: 3, max: 40 }).chain((n) => fc.string().map((v) => writeBytes(n, v))),
  );
  const partial = fc.array(field, { maxLength: 5 }).map((fields) => writeBytes(1, Buffer.concat(fields)));
  const response = fc.array(
    fc.oneof(
      partial,
      fc.string().map((v) => writeBytes(7, v)),
    ),
    { maxLength: 3 },
  );
  fc.assert(
    fc.property(response, (parts) => {
      const bytes = Buffer.concat(parts);
      t.same(decodeExportResponse(bytes), ProtobufTraceSerializer.deserializeResponse(bytes));
      // A plain Uint8Array (the HTTP transport's) reads the same.
      t.same(decodeExportResponse(new Uint8Array(bytes)), decodeExportResponse(bytes));
    }),
    { numRuns: 300 },
  );
  t.same(decodeExportResponse(Buffer.alloc(0)), {});
  t.same(decodeExportResponse(writeBytes(1, Buffer.concat([writeVarint(1, 3), writeBytes(2, 'quota')]))), {
    partialSuccess: { rejectedSpans: 3, errorMessage: 'quota' },
  });
});
