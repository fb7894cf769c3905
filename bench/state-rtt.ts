/**
 * The direct Redis round trip the state bench compares Tollgate against: a client loop
 * paced at BENCH_RATE (1000) calls per second for BENCH_DURATION seconds, one ioredis
 * connection, measuring PING and the budget consume script (redis-scripts.ts CONSUME,
 * one budget, as Tollgate sends it). Prints one JSON line: p50/p99 in milliseconds.
 *   node bench/state-rtt.ts <redis url>
 */
import { createHash, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { CONSUME } from '../src/state/redis-scripts.ts';

const url = process.argv[2] ?? 'redis://127.0.0.1:6379';
const rate = Number(process.env.BENCH_RATE ?? 1000);
const seconds = Number(process.env.BENCH_DURATION ?? 10);
const client = new Redis(url);
const sha = createHash('sha1').update(CONSUME).digest('hex');
await client.script('LOAD', CONSUME);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

async function paced(name: string, call: () => Promise<unknown>): Promise<Record<string, number | string>> {
  const times: number[] = [];
  const interval = 1000 / rate;
  const start = performance.now();
  const total = rate * seconds;
  for (let i = 0; i < total; i++) {
    const due = start + i * interval;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    const t0 = performance.now();
    await call();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { call: name, n: times.length, p50_ms: percentile(times, 50), p99_ms: percentile(times, 99) };
}

const ping = await paced('PING', () => client.ping());
const consume = await paced('EVALSHA consume (1 budget)', () =>
  client.evalsha(sha, 2, 'bench:b:{rtt}', 'bench:b:{rtt}:sum', 0, 1, 0, 1, 1e12, 3_600_000, `${randomUUID()}|1`),
);
process.stdout.write(`${JSON.stringify([ping, consume])}\n`);
await client.quit();
