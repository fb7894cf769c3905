import t from 'tap';
import { createIdleCollector, memoryReducingCollection } from '../../src/runtime/idle-collect.ts';

// A period long enough that the timer never fires during a test: tick() is driven by hand.
const HOUR = 3_600_000;

t.test('collects once after a whole quiet period that followed traffic', async (t) => {
  let collections = 0;
  const idle = createIdleCollector({ quietMs: HOUR, collect: () => collections++ });
  t.teardown(() => idle.close());
  idle.touch();
  idle.tick(); // traffic during this period
  t.equal(collections, 0, 'not while decisions are being made');
  idle.tick(); // a whole period without a decision
  t.equal(collections, 1, 'once the sidecar went quiet');
  idle.tick();
  idle.tick();
  t.equal(collections, 1, 'not again while it stays quiet');
  idle.touch();
  idle.tick();
  idle.tick();
  t.equal(collections, 2, 'again after the next burst');
});

t.test('never collects while every period has traffic', async (t) => {
  let collections = 0;
  const idle = createIdleCollector({ quietMs: HOUR, collect: () => collections++ });
  t.teardown(() => idle.close());
  for (let i = 0; i < 50; i++) {
    idle.touch();
    idle.tick();
  }
  t.equal(collections, 0);
});

t.test('a quiet sidecar that never had traffic is left alone', async (t) => {
  let collections = 0;
  const idle = createIdleCollector({ quietMs: HOUR, collect: () => collections++ });
  t.teardown(() => idle.close());
  for (let i = 0; i < 5; i++) idle.tick();
  t.equal(collections, 0);
});

t.test('collectNow collects and reports how long it took', async (t) => {
  const took: number[] = [];
  const idle = createIdleCollector({ quietMs: HOUR, collect: () => undefined, onCollect: (ms) => took.push(ms) });
  t.teardown(() => idle.close());
  idle.collectNow();
  t.equal(took.length, 1);
  t.ok(took[0]! >= 0);
});

t.test('idleCollectSeconds 0 turns it off', async (t) => {
  let collections = 0;
  const idle = createIdleCollector({ quietMs: 0, collect: () => collections++ });
  idle.collectNow();
  idle.touch();
  idle.tick();
  idle.tick();
  idle.close();
  t.equal(collections, 0);
});

t.test('the memory-reducing collection runs on this runtime and shrinks the young generation', async (t) => {
  const { getHeapSpaceStatistics } = await import('node:v8');
  const collect = memoryReducingCollection();
  if (collect === undefined) return t.fail('Node 24 offers gc() with options through --expose-gc');
  // Grow the young generation past its minimum with garbage that survives a few scavenges.
  let keep: object[] = [];
  for (let i = 0; i < 2_000_000; i++) {
    keep.push({ i });
    if (keep.length > 200_000) keep = [];
  }
  keep = [];
  const youngBytes = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')!.space_size;
  const before = youngBytes();
  collect();
  t.ok(youngBytes() < before, `young generation ${before} → ${youngBytes()} bytes`);
  t.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined', 'gc() is not left on the global');
});

t.test('malloc_trim gives back free C-heap pages that free() keeps (glibc)', async (t) => {
  const { mallocTrim } = await import('../../src/runtime/idle-collect.ts');
  const { readFileSync } = await import('node:fs');
  const trim = mallocTrim();
  t.ok(trim, 'available on this Linux with glibc');
  const gc = memoryReducingCollection()!;
  const anonKb = () => Number(/^RssAnon:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]);
  // 64 MB of 64 KiB Buffers (their memory comes from malloc), every 16th kept: the freed ones
  // lie between live ones, below the top of the heap, where free() cannot give them back.
  let buffers: Buffer[] | undefined = Array.from({ length: 1024 }, () => Buffer.alloc(64 * 1024, 1));
  const kept = buffers.filter((_, i) => i % 16 === 0);
  buffers = undefined;
  gc();
  const before = anonKb();
  trim!();
  const after = anonKb();
  t.ok(before - after > 20 * 1024, `RssAnon ${before} -> ${after} KiB: over 20 MiB returned`);
  t.equal(kept.length, 64, 'the live Buffers are untouched');
  t.ok(kept.every((b) => b[65535] === 1));
});
