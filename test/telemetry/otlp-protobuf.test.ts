/**
 * Tollgate's OTLP trace encoder against the upstream one: for spans made by the real
 * SDK — every attribute value type, non-ASCII text, long values (multi-byte lengths),
 * events, links, trace state, remote and local parents, statuses, two resources and
 * two scopes, values that repeat and values that change — the bytes must equal
 * `@opentelemetry/otlp-transformer`'s ProtobufTraceSerializer output, span batch by span
 * batch (so the per-key caches never change what is sent).
 */
import t from 'tap';
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  trace,
  type Attributes,
  type Tracer,
} from '@opentelemetry/api';
import { TraceState } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AlwaysOnSampler, TracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { SpanBatch, serializeTraceRequest } from '../../src/telemetry/otlp-protobuf.ts';

function collector(resource: Record<string, string>): {
  tracer: (name: string, version?: string) => Tracer;
  spans: ReadableSpan[];
} {
  const spans: ReadableSpan[] = [];
  const provider = new TracerProvider({
    resource: resourceFromAttributes(resource),
    sampler: new AlwaysOnSampler(),
    spanProcessors: [
      { onStart() {}, onEnd: (s) => void spans.push(s), forceFlush: async () => {}, shutdown: async () => {} },
    ],
  });
  return { tracer: (name, version) => provider.getTracer(name, version), spans };
}

const upstream = (spans: ReadableSpan[]): Buffer => Buffer.from(ProtobufTraceSerializer.serializeRequest(spans)!);

const REMOTE = trace.setSpanContext(ROOT_CONTEXT, {
  traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
  spanId: '00f067aa0ba902b7',
  traceFlags: TraceFlags.SAMPLED,
  isRemote: true,
  traceState: new TraceState('vendor=1,other=x'),
});

t.test('every value type, events, links, statuses and parents encode byte for byte as upstream', async (t) => {
  const a = collector({
    'service.name': 'tollgate',
    'tollgate.agent.id': 'support-bot',
    'deployment.environment.name': 'prüf',
  });
  const tracer = a.tracer('tollgate', '1.2.3');
  const values: Attributes = {
    str: 'plain',
    unicode: 'Grüße, 世界 🚀',
    empty: '',
    long: 'x'.repeat(20_000),
    yes: true,
    no: false,
    zero: 0,
    int: 42,
    big: 2 ** 40 + 7,
    negative: -17,
    minSafe: Number.MIN_SAFE_INTEGER,
    float: 3.25,
    negFloat: -0.5,
    huge: 1e300,
    strings: ['a', 'ü', ''],
    numbers: [1, 2.5, -3],
    bools: [true, false],
    emptyList: [],
  };
  const root = tracer.startSpan('root', { kind: SpanKind.SERVER, attributes: values }, REMOTE);
  root.addEvent('tollgate.decision', { 'tollgate.decision.outcome': 'deny', n: 1 });
  root.addEvent('bare');
  root.addLink({
    context: {
      traceId: 'a'.repeat(32),
      spanId: 'b'.repeat(16),
      traceFlags: TraceFlags.NONE,
      isRemote: true,
      traceState: new TraceState('k=v'),
    },
    attributes: { why: 'retry' },
  });
  root.setStatus({ code: SpanStatusCode.ERROR, message: 'refund of 900 exceeds the support limit of 500' });
  const child = tracer.startSpan('child', { kind: SpanKind.CLIENT }, trace.setSpan(ROOT_CONTEXT, root));
  child.setStatus({ code: SpanStatusCode.OK });
  child.end();
  root.end();
  const internal = tracer.startSpan('no-parent');
  internal.setAttribute('bytes', new Uint8Array([0, 1, 255]) as unknown as string);
  internal.setAttribute('map', { nested: { deep: [1, 'two'] }, flag: true } as unknown as string);
  internal.end();
  // A second scope and a second resource, interleaved: grouping must follow first-seen order.
  const other = a.tracer('other-scope');
  const b = collector({ 'service.name': 'tollgate-b' });
  const s1 = other.startSpan('scope-2');
  s1.end();
  const s2 = b.tracer('tollgate').startSpan('resource-2');
  s2.end();
  const spans = [a.spans[0]!, b.spans[0]!, ...a.spans.slice(1)];

  const expected = upstream(spans);
  t.ok(expected.length > 20_000, 'the long value makes multi-byte lengths');
  t.same(Buffer.from(serializeTraceRequest(spans)), expected, 'serializeTraceRequest');
  const batch = new SpanBatch();
  for (const span of spans) batch.add(span);
  t.equal(batch.count, spans.length);
  t.same(Buffer.from(batch.request()), expected, 'SpanBatch, span by span');
  t.equal(batch.count, 0, 'request() empties the batch');
  t.same(Buffer.from(batch.request()), upstream([]), 'an empty batch is an empty request');
});

t.test('attribute values that repeat, alternate and change: the caches never alter the bytes', async (t) => {
  const a = collector({ 'service.name': 'tollgate' });
  const tracer = a.tracer('tollgate');
  const batch = new SpanBatch();
  for (let round = 0; round < 3; round++) {
    const spans: ReadableSpan[] = [];
    for (let i = 0; i < 200; i++) {
      const span = tracer.startSpan('GET', { kind: SpanKind.CLIENT });
      span.setAttributes({
        'http.request.method': 'GET',
        'server.address': `payments.internal${''.padEnd(i % 2)}`.trim(),
        'server.port': 80,
        'tollgate.decision.id': `d-${round}-${i}`,
        'tollgate.decision.outcome': i % 3 === 0 ? 'deny' : 'allow',
        'tollgate.decision.eval_ns': 1000 + i,
        'tollgate.decision.bundle.revision': i < 100 ? 'rev-1' : 'rev-2',
        ratio: i % 2 === 0 ? 0.5 : 1,
        flag: i % 5 === 0,
      });
      span.end();
      spans.push(a.spans.at(-1)!);
      batch.add(a.spans.at(-1)!);
    }
    t.same(Buffer.from(batch.request()), upstream(spans), `round ${round}`);
  }
});
