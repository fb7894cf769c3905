// For the bench's bare peers (bare-forwarder.mjs, extauthz/bare-grpc.mjs): makes V8's worker
// threads BARE_WORKER_NICE nicer than the main thread, as Tollgate's runtime.backgroundThreadNice
// does (src/runtime/thread-priority.ts), so that a peer runs with the settings Tollgate ships.
// Kept apart from src/: the peers load no TypeScript, whose stripper would add to their RSS.
import { readdirSync, readFileSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

const delta = Number(process.env.BARE_WORKER_NICE ?? 0);
if (delta > 0) {
  for (const task of readdirSync('/proc/self/task'))
    if (readFileSync(`/proc/self/task/${task}/comm`, 'utf8').trim() === 'V8Worker')
      setPriority(Number(task), Math.min(19, getPriority(0) + delta));
}
