/**
 * OTLP trace export requests (opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest)
 * encoded from the SDK's finished spans: the serializer the OTLP gRPC and HTTP/protobuf
 * exporters of setup.ts use instead of `@opentelemetry/otlp-transformer`'s.
 *
 * Why our own: the upstream serializer was the largest single cost of tracing at load
 * (about 6 µs per Tollgate call span on the benchmark machine: a sizing pass over every
 * string before the writing pass, every key and id encoded anew). This one writes in a
 * single pass into reused buffers, remembers the encoded form of attribute keys and of
 * values that repeat (method, host, policy path, revision, agent...), and decodes hex ids
 * without allocating: about 2 µs per span, 1.5 when encoded as the span ends
 * (otlp-export.ts). The bytes are the upstream serializer's, field for field and in the
 * same order: `test/telemetry/otlp-protobuf.test.ts` compares the two on spans covering
 * every value type, events, links, parents, statuses, several resources and scopes,
 * non-ASCII and long values, and values that repeat, alternate and change.
 *
 * Field numbers follow opentelemetry/proto (trace/v1/trace.proto, common/v1/common.proto,
 * resource/v1/resource.proto).
 */
import type { Attributes, AttributeValue, HrTime, Link, SpanContext, SpanStatus } from '@opentelemetry/api';
import type { ReadableSpan, TimedEvent } from '@opentelemetry/sdk-trace';

// Wire types.
const VARINT = 0;
const FIXED64 = 1;
const LEN = 2;
const FIXED32 = 5;

const SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE = 0x100;
const SPAN_FLAGS_CONTEXT_IS_REMOTE = 0x200;
const TWO_POW_32 = 4294967296;
const MIN_INT64 = -(2 ** 63);
const MAX_INT64 = 2 ** 63;

/** Hex digit → nibble, -1 for anything else. */
const NIBBLE = new Int8Array(128).fill(-1);
for (let i = 0; i < 10; i++) NIBBLE[48 + i] = i;
for (let i = 0; i < 6; i++) {
  NIBBLE[65 + i] = 10 + i;
  NIBBLE[97 + i] = 10 + i;
}

/** Attribute keys seen (see KeyEntry), bounded. */
const KEY_CACHE_LIMIT = 1024;
const keyCache = new Map<string, KeyEntry>();

/**
 * A forward-only protobuf writer over one growing buffer. Nested messages reserve one
 * length byte and move their body when the length needs more (as the upstream writer
 * does), so lengths are minimal varints.
 */
class Writer {
  buf: Buffer;
  pos = 0;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** Field key; every field number here is below 2^28, so at most 4 bytes. */
  tag(field: number, wire: number): void {
    const key = (field << 3) | wire;
    if (key < 128) {
      this.ensure(1);
      this.buf[this.pos++] = key;
    } else {
      this.varint32(key);
    }
  }

  /** Unsigned varint of a value in [0, 2^32). */
  varint32(value: number): void {
    this.ensure(5);
    const buf = this.buf;
    let v = value >>> 0;
    while (v > 127) {
      buf[this.pos++] = (v & 127) | 128;
      v >>>= 7;
    }
    buf[this.pos++] = v;
  }

  /** Varint of any safe integer; negatives as 64-bit two's complement (int64), 10 bytes. */
  varint(value: number): void {
    if (value >= 0 && value <= 0xffffffff) return this.varint32(value);
    let low: number;
    let high: number;
    if (value >= 0) {
      low = value >>> 0;
      high = (value / TWO_POW_32) >>> 0;
    } else {
      const abs = -value;
      low = ~(abs >>> 0) >>> 0;
      high = ~((abs / TWO_POW_32) >>> 0) >>> 0;
      low = (low + 1) >>> 0;
      if (low === 0) high = (high + 1) >>> 0;
    }
    this.ensure(10);
    const buf = this.buf;
    while (high > 0 || low > 127) {
      buf[this.pos++] = (low & 127) | 128;
      low = ((low >>> 7) | (high << 25)) >>> 0;
      high >>>= 7;
    }
    buf[this.pos++] = low;
  }

  fixed32(value: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(value >>> 0, this.pos);
    this.pos += 4;
  }

  fixed64(low: number, high: number): void {
    this.ensure(8);
    this.buf.writeUInt32LE(low >>> 0, this.pos);
    this.buf.writeUInt32LE(high >>> 0, this.pos + 4);
    this.pos += 8;
  }

  double(value: number): void {
    this.ensure(8);
    this.buf.writeDoubleLE(value, this.pos);
    this.pos += 8;
  }

  /** Length-delimited UTF-8: ASCII is copied by hand, anything else goes through the encoder. */
  string(value: string): void {
    const len = value.length;
    const start = this.pos;
    this.varint32(len);
    this.ensure(len);
    const buf = this.buf;
    let pos = this.pos;
    for (let i = 0; i < len; i++) {
      const c = value.charCodeAt(i);
      if (c > 127) {
        this.pos = start;
        const bytes = Buffer.byteLength(value, 'utf8');
        this.varint32(bytes);
        this.ensure(bytes);
        this.pos += this.buf.write(value, this.pos, bytes, 'utf8');
        return;
      }
      buf[pos++] = c;
    }
    this.pos = pos;
  }

  bytes(value: Uint8Array): void {
    this.varint32(value.length);
    this.ensure(value.length);
    this.buf.set(value, this.pos);
    this.pos += value.length;
  }

  /** A trace or span id: the hex string as bytes (length-delimited), no allocation. */
  hexId(hex: string): void {
    const n = hex.length >>> 1;
    this.varint32(n);
    this.ensure(n);
    const buf = this.buf;
    for (let i = 0; i < n; i++) {
      const hi = NIBBLE[hex.charCodeAt(2 * i) & 127]!;
      const lo = NIBBLE[hex.charCodeAt(2 * i + 1) & 127]!;
      // The SDK only produces valid ids; a malformed one is written as the upstream
      // serializer writes it (invalid digits count as zero).
      buf[this.pos++] = ((hi < 0 ? 0 : hi) << 4) | (lo < 0 ? 0 : lo);
    }
  }

  /** Pre-encoded bytes. */
  raw(value: Buffer): void {
    this.ensure(value.length);
    this.buf.set(value, this.pos);
    this.pos += value.length;
  }

  /** Reserves a one-byte length; returns where it is. */
  begin(): number {
    this.ensure(1);
    return this.pos++;
  }

  /** Writes the length of the message begun at `at`, moving the body if it needs more bytes. */
  end(at: number): void {
    const length = this.pos - at - 1;
    if (length < 128) {
      this.buf[at] = length;
      return;
    }
    let size = 2;
    while (length >= 2 ** (7 * size)) size++;
    this.ensure(size - 1);
    this.buf.copy(this.buf, at + size, at + 1, this.pos);
    this.pos += size - 1;
    let v = length;
    let p = at;
    while (v > 127) {
      this.buf[p++] = (v & 127) | 128;
      v = Math.floor(v / 128);
    }
    this.buf[p] = v;
  }
}

/** HrTime [seconds, nanoseconds] as fixed64 nanoseconds since the epoch, exact beyond 2^53. */
function writeHrTime(w: Writer, time: HrTime): void {
  const seconds = time[0];
  const nanos = time[1];
  // seconds * 1e9 + nanos, split so every partial product stays below 2^53.
  const secondsHigh = Math.floor(seconds / 65536);
  const secondsLow = seconds - secondsHigh * 65536;
  const a = secondsHigh * 1e9; // contributes a * 2^16
  const aLow16 = a % 65536;
  const aHigh = (a - aLow16) / 65536;
  const b = secondsLow * 1e9 + nanos;
  const bLow = b % TWO_POW_32;
  const bHigh = (b - bLow) / TWO_POW_32;
  const low = aLow16 * 65536 + bLow;
  const carry = low >= TWO_POW_32 ? 1 : 0;
  w.fixed64(low - carry * TWO_POW_32, aHigh + bHigh + carry);
}

/**
 * What is remembered of an attribute key: its encoded form, and the whole encoded
 * KeyValue (length-prefixed) of the last value seen when values tend to repeat (HTTP
 * method, host, port, policy path, revision, agent, outcome), so a repeat is one copy.
 * Keys whose values keep changing (ids, URLs, timings) stop being remembered after a
 * few misses.
 */
interface KeyEntry {
  readonly key: Buffer;
  value: unknown;
  message: Buffer | undefined;
  hits: number;
  misses: number;
}

function keyEntry(key: string): KeyEntry {
  let entry = keyCache.get(key);
  if (entry === undefined) {
    const scratch = new Writer(key.length + 8);
    scratch.tag(1, LEN);
    scratch.string(key);
    entry = {
      key: Buffer.from(scratch.buf.subarray(0, scratch.pos)),
      value: undefined,
      message: undefined,
      hits: 0,
      misses: 0,
    };
    if (keyCache.size >= KEY_CACHE_LIMIT) keyCache.clear();
    keyCache.set(key, entry);
  }
  return entry;
}

/** common.v1.AnyValue: string 1, bool 2, int 3, double 4, array 5, kvlist 6, bytes 7. */
function writeAnyValue(w: Writer, value: unknown): void {
  switch (typeof value) {
    case 'string':
      w.tag(1, LEN);
      w.string(value);
      return;
    case 'boolean':
      w.tag(2, VARINT);
      w.varint32(value ? 1 : 0);
      return;
    case 'number':
      if (Number.isInteger(value) && value >= MIN_INT64 && value < MAX_INT64) {
        w.tag(3, VARINT);
        w.varint(value);
      } else {
        w.tag(4, FIXED64);
        w.double(value);
      }
      return;
    default:
      break;
  }
  if (value instanceof Uint8Array) {
    w.tag(7, LEN);
    w.bytes(value);
  } else if (Array.isArray(value)) {
    w.tag(5, LEN);
    const list = w.begin();
    for (const item of value) {
      w.tag(1, LEN);
      const at = w.begin();
      writeAnyValue(w, item);
      w.end(at);
    }
    w.end(list);
  } else if (typeof value === 'object' && value !== null) {
    w.tag(6, LEN);
    const list = w.begin();
    for (const key in value) {
      if (!Object.hasOwn(value, key)) continue;
      w.tag(1, LEN);
      const kv = w.begin();
      w.tag(1, LEN);
      w.string(key);
      w.tag(2, LEN);
      const at = w.begin();
      writeAnyValue(w, (value as Record<string, unknown>)[key]);
      w.end(at);
      w.end(kv);
    }
    w.end(list);
  }
  // null/undefined: an empty AnyValue, as upstream.
}

/** repeated KeyValue in `field`. */
function writeAttributes(w: Writer, attributes: Attributes, field: number): void {
  for (const key in attributes) {
    if (!Object.hasOwn(attributes, key)) continue;
    const value: unknown = attributes[key];
    const entry = keyEntry(key);
    w.tag(field, LEN);
    if (entry.message !== undefined && entry.value === value) {
      entry.hits++;
      w.raw(entry.message);
      continue;
    }
    const start = w.pos;
    const kv = w.begin();
    w.raw(entry.key);
    w.tag(2, LEN);
    const at = w.begin();
    writeAnyValue(w, value);
    w.end(at);
    w.end(kv);
    const type = typeof value;
    if (
      (type === 'string' || type === 'number' || type === 'boolean') &&
      (entry.misses++ < 8 || entry.hits >= entry.misses)
    ) {
      entry.value = value;
      entry.message = Buffer.from(w.buf.subarray(start, w.pos));
    }
  }
}

function spanFlags(traceFlags: number, isRemote: boolean | undefined): number {
  return (
    (traceFlags & 0xff) | SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE | (isRemote === true ? SPAN_FLAGS_CONTEXT_IS_REMOTE : 0)
  );
}

/** Span.Status: message 2, code 3. */
function writeStatus(w: Writer, status: SpanStatus): void {
  const at = w.begin();
  if (status.message) {
    w.tag(2, LEN);
    w.string(status.message);
  }
  w.tag(3, VARINT);
  w.varint(status.code);
  w.end(at);
}

/** Span.Event: time 1, name 2, attributes 3, dropped_attributes_count 4. */
function writeEvent(w: Writer, event: TimedEvent): void {
  const at = w.begin();
  w.tag(1, FIXED64);
  writeHrTime(w, event.time);
  w.tag(2, LEN);
  w.string(event.name);
  if (event.attributes) writeAttributes(w, event.attributes, 3);
  w.tag(4, VARINT);
  w.varint(event.droppedAttributesCount || 0);
  w.end(at);
}

/** trace_id 1, span_id 2, trace_state 3: the same fields in Span and Span.Link. */
function writeContext(w: Writer, ctx: SpanContext): void {
  w.tag(1, LEN);
  w.hexId(ctx.traceId);
  w.tag(2, LEN);
  w.hexId(ctx.spanId);
  const traceState = ctx.traceState?.serialize();
  if (traceState) {
    w.tag(3, LEN);
    w.string(traceState);
  }
}

/** Span.Link: trace_id 1, span_id 2, trace_state 3, attributes 4, dropped 5, flags 6. */
function writeLink(w: Writer, link: Link): void {
  const at = w.begin();
  const ctx = link.context;
  writeContext(w, ctx);
  if (link.attributes) writeAttributes(w, link.attributes, 4);
  w.tag(5, VARINT);
  w.varint(link.droppedAttributesCount || 0);
  w.tag(6, FIXED32);
  w.fixed32(spanFlags(ctx.traceFlags, ctx.isRemote));
  w.end(at);
}

/** Span: fields 1–16 in order (see trace.proto). */
function writeSpan(w: Writer, span: ReadableSpan): void {
  const at = w.begin();
  const ctx = span.spanContext();
  writeContext(w, ctx);
  const parent = span.parentSpanContext;
  if (parent?.spanId) {
    w.tag(4, LEN);
    w.hexId(parent.spanId);
  }
  w.tag(5, LEN);
  w.string(span.name);
  // OTLP's SpanKind is the API's plus one (0 is UNSPECIFIED, not written).
  const kind = span.kind == null ? 0 : span.kind + 1;
  if (kind !== 0) {
    w.tag(6, VARINT);
    w.varint32(kind);
  }
  w.tag(7, FIXED64);
  writeHrTime(w, span.startTime);
  w.tag(8, FIXED64);
  writeHrTime(w, span.endTime);
  if (span.attributes) writeAttributes(w, span.attributes, 9);
  w.tag(10, VARINT);
  w.varint(span.droppedAttributesCount);
  for (const event of span.events) {
    w.tag(11, LEN);
    writeEvent(w, event);
  }
  w.tag(12, VARINT);
  w.varint(span.droppedEventsCount);
  for (const link of span.links) {
    w.tag(13, LEN);
    writeLink(w, link);
  }
  w.tag(14, VARINT);
  w.varint(span.droppedLinksCount);
  w.tag(15, LEN);
  writeStatus(w, span.status);
  w.tag(16, FIXED32);
  w.fixed32(spanFlags(ctx.traceFlags, parent?.isRemote));
  w.end(at);
}

type Resource = ReadableSpan['resource'];
type Scope = ReadableSpan['instrumentationScope'];

/** ResourceSpans: resource 1 (attributes 1, dropped 2), scope_spans 2, schema_url 3. */
function writeResourceSpans(w: Writer, resource: Resource, scopes: Map<Scope, Writer>): void {
  const at = w.begin();
  w.tag(1, LEN);
  const res = w.begin();
  if (resource.attributes) writeAttributes(w, resource.attributes, 1);
  w.tag(2, VARINT);
  w.varint32(0);
  w.end(res);
  for (const [scope, spans] of scopes) {
    w.tag(2, LEN);
    writeScopeSpans(w, scope, spans);
  }
  if (resource.schemaUrl) {
    w.tag(3, LEN);
    w.string(resource.schemaUrl);
  }
  w.end(at);
}

/** ScopeSpans: scope 1 (name 1, version 2, attributes 3, dropped 4), spans 2 (already encoded), schema_url 3. */
function writeScopeSpans(w: Writer, scope: Scope, spans: Writer): void {
  const at = w.begin();
  w.tag(1, LEN);
  const sc = w.begin();
  w.tag(1, LEN);
  w.string(scope.name);
  if (scope.version) {
    w.tag(2, LEN);
    w.string(scope.version);
  }
  const scopeWithAttributes = scope as Scope & { attributes?: Attributes; droppedAttributesCount?: number };
  if (scopeWithAttributes.attributes) writeAttributes(w, scopeWithAttributes.attributes, 3);
  if (scopeWithAttributes.droppedAttributesCount) {
    w.tag(4, VARINT);
    w.varint(scopeWithAttributes.droppedAttributesCount);
  }
  w.end(sc);
  w.ensure(spans.pos);
  spans.buf.copy(w.buf, w.pos, 0, spans.pos);
  w.pos += spans.pos;
  if (scope.schemaUrl) {
    w.tag(3, LEN);
    w.string(scope.schemaUrl);
  }
  w.end(at);
}

/** Buffers larger than this are not kept for the next batch. */
const KEEP_BUFFER_LIMIT = 4 * 1024 * 1024;

/**
 * Spans encoded as they are added (while their objects are fresh in the cache, and so
 * they can be collected young), grouped by resource and instrumentation scope in
 * first-seen order; `request()` wraps them into one ExportTraceServiceRequest. The
 * bytes equal the upstream serializer's for the same spans in the same order.
 */
export class SpanBatch {
  private readonly groups = new Map<Resource, Map<Scope, Writer>>();
  private spare: Writer[] = [];
  /** Bytes of the spans encoded so far (the request adds a few hundred for resource and scope). */
  encoded = 0;
  count = 0;

  /** Encodes one span (field 2 of its ScopeSpans). */
  add(span: ReadableSpan): void {
    let scopes = this.groups.get(span.resource);
    if (scopes === undefined) {
      scopes = new Map();
      this.groups.set(span.resource, scopes);
    }
    let w = scopes.get(span.instrumentationScope);
    if (w === undefined) {
      w = this.spare.pop() ?? new Writer(64 * 1024);
      w.pos = 0;
      scopes.set(span.instrumentationScope, w);
    }
    const before = w.pos;
    try {
      w.tag(2, LEN);
      writeSpan(w, span);
    } catch (err) {
      // A span that cannot be encoded leaves no partial bytes behind: the batch stays valid.
      w.pos = before;
      throw err;
    }
    this.encoded += w.pos - before;
    this.count++;
  }

  /** The ExportTraceServiceRequest of every span added; the batch is then empty again. */
  request(): Uint8Array {
    const out = new Writer(Math.max(1024, this.encoded + 1024));
    for (const [resource, scopes] of this.groups) {
      out.tag(1, LEN);
      writeResourceSpans(out, resource, scopes);
    }
    for (const scopes of this.groups.values()) {
      for (const w of scopes.values())
        if (w.buf.length <= KEEP_BUFFER_LIMIT && this.spare.length < 4) this.spare.push(w);
    }
    this.groups.clear();
    this.count = 0;
    this.encoded = 0;
    return out.buf.subarray(0, out.pos);
  }
}

/** ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1 } for these spans. */
export function serializeTraceRequest(spans: readonly ReadableSpan[]): Uint8Array {
  const batch = standalone;
  for (const span of spans) batch.add(span);
  return batch.request();
}

/** serializeTraceRequest's batch (synchronous use only: request() empties it). */
const standalone = new SpanBatch();
