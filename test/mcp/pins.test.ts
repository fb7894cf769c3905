import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { canonicalJson } from '../../src/json/canonical.ts';
import { createPinStore, fingerprint, readPinsFile } from '../../src/mcp/pins.ts';
import { tempDir } from '../helpers/processes.ts';
import type { PolicyInput } from '../../src/input/build.ts';

const tool = (description: string, extra: Record<string, unknown> = {}) => ({
  name: 'lookup',
  description,
  inputSchema: { type: 'object', properties: { id: { type: 'string' } } },
  ...extra,
});

t.test('the fingerprint does not depend on key order or on fields outside the definition', async (t) => {
  t.equal(
    canonicalJson({ b: 1, a: [true, null, 'x'], c: { z: 1, y: 2 } }),
    '{"a":[true,null,"x"],"b":1,"c":{"y":2,"z":1}}',
  );
  const a = { name: 'lookup', description: 'd', inputSchema: { type: 'object', required: ['id'] } };
  const b = { inputSchema: { required: ['id'], type: 'object' }, description: 'd', name: 'lookup' };
  t.equal(fingerprint(a), fingerprint(b));
  const store = createPinStore();
  const [first] = store.observe('mcp.internal', [tool('d', { title: 'Lookup', annotations: { readOnlyHint: true } })]);
  const [second] = store.observe('mcp.internal', [tool('d')]);
  t.same(first, second);
});

t.test('the first definition is pinned, a different one is a change until accepted', async (t) => {
  const changes: string[] = [];
  const store = createPinStore({ onChange: (c) => changes.push(`${c.server} ${c.tool}`) });
  t.same(store.observe('MCP.internal', [tool('d1')])[0], {
    pinned: true,
    changed: false,
    pinned_sha256: fingerprint(tool('d1')),
    observed_sha256: fingerprint(tool('d1')),
  });
  const [changed] = store.observe('mcp.internal', [tool('d2')]);
  t.match(changed, {
    pinned: true,
    changed: true,
    pinned_sha256: fingerprint(tool('d1')),
    observed_sha256: fingerprint(tool('d2')),
  });
  // The same change seen again is reported once.
  store.observe('mcp.internal', [tool('d2')]);
  t.same(changes, ['mcp.internal lookup']);
  t.equal(store.list()[0]!.status, 'changed');
  const entry = store.accept('mcp.internal', 'lookup');
  t.equal(entry.servers['mcp.internal']!.tools.lookup!.sha256, fingerprint(tool('d2')));
  t.match(store.status('mcp.internal', 'lookup'), { changed: false, pinned_sha256: fingerprint(tool('d2')) });
  t.throws(() => store.accept('mcp.internal', 'lookup'), { code: 'TG_ERR_BAD_REQUEST' });
});

t.test('a server going back to the pinned definition is no longer changed', async (t) => {
  const store = createPinStore();
  store.observe('s', [tool('d1')]);
  store.observe('s', [tool('d2')]);
  t.equal(store.observe('s', [tool('d1')])[0]!.changed, false);
});

t.test('annotate marks each tools/call of a single message or a batch', async (t) => {
  const store = createPinStore();
  store.observe('mcp.internal', [tool('d1')]);
  store.observe('mcp.internal', [tool('d2')]);
  const single = {
    mcp: { id: 1, method: 'tools/call', tool: { name: 'lookup', arguments: {} } },
  } as unknown as PolicyInput;
  store.annotate(single, 'mcp.internal');
  t.match(single.mcp, { tool: { name: 'lookup', pinned: true, changed: true } });
  const batch = {
    mcp: { method: 'batch', batch: [{ id: 1, method: 'tools/call', tool: { name: 'other', arguments: {} } }] },
  } as unknown as PolicyInput;
  store.annotate(batch, 'mcp.internal');
  t.match(batch.mcp, { batch: [{ tool: { name: 'other', pinned: false, changed: false } }] });
});

t.test('servers and tools past the bounds are not pinned', async (t) => {
  const store = createPinStore({ maxServers: 1, maxToolsPerServer: 1 });
  store.observe('a', [tool('d'), { ...tool('d'), name: 'second' }]);
  t.equal(store.list().length, 1);
  t.same(store.observe('b', [tool('d')]), [{ pinned: false, changed: false }]);
});

t.test('the pins file is read as YAML or JSON and checked', async (t) => {
  const dir = await tempDir();
  const def = { name: 'lookup', description: 'reviewed' };
  const yaml = join(dir, 'pins.yaml');
  await writeFile(
    yaml,
    `servers:\n  MCP.internal:\n    tools:\n      lookup:\n        definition: {name: lookup, description: reviewed}\n`,
  );
  t.equal(readPinsFile(yaml).servers['mcp.internal']!.tools.lookup!.sha256, fingerprint(def));
  const json = join(dir, 'pins.json');
  await writeFile(
    json,
    JSON.stringify({ servers: { s: { tools: { lookup: { sha256: 'f'.repeat(64), definition: def } } } } }),
  );
  t.throws(() => readPinsFile(json), {
    code: 'TG_ERR_CONFIG_INVALID',
    message: /sha256 does not match its definition/,
  });
  await writeFile(json, JSON.stringify({ servers: { s: { tools: { lookup: { sha256: 'nope' } } } } }));
  t.throws(() => readPinsFile(json), {
    message: /servers\.s\.tools\.lookup\.sha256: expected 64 lowercase hex digits/,
  });
  t.throws(() => readPinsFile(join(dir, 'missing.yaml')), { code: 'TG_ERR_CONFIG_INVALID', message: /cannot read/ });
  const store = createPinStore({ file: yaml });
  t.match(store.observe('mcp.internal', [{ name: 'lookup', description: 'changed' }])[0], { changed: true });
  t.equal(store.list()[0]!.pin.source, 'file');
});
