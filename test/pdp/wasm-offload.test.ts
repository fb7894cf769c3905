// Large data documents are loaded into the policy by a worker thread and copied in as a
// memory snapshot: the result must decide exactly like a policy loaded the ordinary way,
// before and after later data changes.
import t from 'tap';
import { loadPolicy } from '@open-policy-agent/opa-wasm';
import { loadBundle } from '../../src/bundle/load.ts';
import { instantiateWithData, OFFLOAD_MIN_BYTES } from '../../src/pdp/wasm-offload.ts';
import { createSwappablePdp } from '../../src/pdp/swap.ts';
import { buildSigned, requestInput } from '../bundle/fixtures.ts';

// ~2 MB of data the policy reads: an allow-list of 20,000 hosts.
const hosts = Array.from({ length: 20000 }, (_, i) => `host-${i}.example`);
const path = await buildSigned({ revision: 'big', data: { tollgate: { hosts, filler: 'x'.repeat(1_000_000) } } });
const bundle = await loadBundle(path);
const raw = bundle.files!.get('/data.json')!;
const inputs = [
  requestInput('GET', 'http://host-0.example/'),
  requestInput('GET', 'http://host-19999.example/a'),
  requestInput('DELETE', 'http://host-5.example/'),
  requestInput('GET', 'http://nope.example/'),
];

t.test('the offloaded policy decides exactly like a directly loaded one', async (t) => {
  t.ok(raw.byteLength >= OFFLOAD_MIN_BYTES, `data.json is ${raw.byteLength} bytes`);
  const direct = await loadPolicy(bundle.wasm);
  direct.setData(bundle.data);
  const offloaded = await instantiateWithData(bundle.wasm, raw);
  for (let round = 0; round < 3; round++) {
    for (const input of inputs)
      t.same(offloaded.evaluate(input, 'tollgate/authz/decision'), direct.evaluate(input, 'tollgate/authz/decision'));
  }
  const smaller = { tollgate: { hosts: ['nope.example'] } };
  direct.setData(smaller);
  offloaded.setData(smaller);
  for (const input of inputs)
    t.same(offloaded.evaluate(input, 'tollgate/authz/decision'), direct.evaluate(input, 'tollgate/authz/decision'));
});

t.test('a swappable PDP activates the big bundle off-thread and keeps patching it', async (t) => {
  const pdp = createSwappablePdp({
    decisionPath: 'tollgate/authz/decision',
    timeoutMs: 1000,
    smoke: { input: requestInput('GET', 'http://host-1.example/'), expectAllowed: true },
  });
  // The event loop keeps turning while the data loads: count turns of a 1 ms timer.
  let turns = 0;
  const timer = setInterval(() => turns++, 1);
  await pdp.activate(bundle, 'startup');
  clearInterval(timer);
  t.ok(turns > 0, `the event loop turned ${turns} times during activation`);
  t.equal((await pdp.decide(inputs[1]!, 'a')).allowed, true);
  t.equal((await pdp.decide(inputs[3]!, 'b')).allowed, false);
  pdp.patchData([{ op: 'add', path: '/tollgate/hosts/-', value: 'nope.example' }], 'api');
  t.equal((await pdp.decide(inputs[3]!, 'c')).allowed, true);
});

t.test('a worker failure falls back to loading on the main thread, which reports the real problem', async (t) => {
  await t.rejects(instantiateWithData(Buffer.from('not wasm'), raw), /./);
  const pdp = createSwappablePdp({ decisionPath: 'tollgate/authz/decision', timeoutMs: 1000 });
  await t.rejects(pdp.activate({ ...bundle, wasm: Buffer.from('\0asm broken') }, 'startup'), {
    code: 'TG_ERR_BUNDLE_INVALID',
    message: /does not instantiate/,
  });
});
