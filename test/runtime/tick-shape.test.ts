// nextTick's entries keep one shape across a full garbage collection once one entry is held:
// V8's own feedback for the entry literal's property stores, read back with its natives
// syntax in a child process (the flag is not for the sidecar itself).
import t from 'tap';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from '../helpers/processes.ts';

const run = promisify(execFile);
const MODULE = join(ROOT, 'src/runtime/tick-shape.ts');

/**
 * In a fresh node: optionally keepTickEntryShape(), nextTick a while (feedback recorded),
 * one memory-reducing full collection with nothing queued, nextTick again. Returns the states
 * of the feedback slots of nextTick's computed-key property stores, before and after.
 */
async function feedbackAcrossCollection(keep: boolean) {
  const script = `
    import { keepTickEntryShape } from ${JSON.stringify(MODULE)};
    const kept = ${keep} ? keepTickEntryShape() : false;
    // Feedback recorded from here on: under the test runner's coverage V8 allocates it from
    // node's own start-up, whose history would otherwise decide the first states.
    %ClearFunctionFeedback(process.nextTick);
    const states = () => %GetFeedback(process.nextTick)
      .filter((entry) => Array.isArray(entry) && entry[0] === 'DefineKeyedOwnPropertyInLiteral')
      .map((entry) => entry[1]);
    const ticks = async () => { for (let i = 0; i < 50; i++) await new Promise((resolve) => process.nextTick(resolve)); };
    await ticks();
    const before = states();
    await new Promise((resolve) => setImmediate(resolve));
    gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    await ticks();
    process.stdout.write(JSON.stringify({ kept, before, after: states() }));
  `;
  const { stdout } = await run(process.execPath, [
    '--allow-natives-syntax',
    '--expose-gc',
    '--input-type=module',
    '-e',
    script,
  ]);
  return JSON.parse(stdout) as { kept: boolean; before: string[]; after: string[] };
}

t.test('without a held entry, a full collection turns the stores megamorphic for good', async (t) => {
  // The mechanism the module works around; should Node or V8 fix it, this fails and the module can go.
  const { after } = await feedbackAcrossCollection(false);
  t.ok(after.length >= 4, JSON.stringify(after));
  t.equal(after[0], 'MONOMORPHIC', 'the empty literal keeps its shape');
  t.same(new Set(after.slice(1)), new Set(['MEGAMORPHIC']), JSON.stringify(after));
});

t.test('with one entry held, every store stays monomorphic across the collection', async (t) => {
  const { kept, before, after } = await feedbackAcrossCollection(true);
  t.equal(kept, true, 'an entry was caught');
  t.ok(before.length >= 4, JSON.stringify(before));
  t.same(new Set(before), new Set(['MONOMORPHIC']));
  t.same(new Set(after), new Set(['MONOMORPHIC']), JSON.stringify(after));
});

t.test('holding it twice holds the same one', async (t) => {
  const { keepTickEntryShape } = await import('../../src/runtime/tick-shape.ts');
  t.equal(keepTickEntryShape(), true);
  t.equal(keepTickEntryShape(), true);
});
