import t from 'tap';
import { parseConfig } from '../../src/config/load.ts';
import { configJsonSchema } from '../../src/config/schema.ts';

t.test('defaults proxy.pathNormalization to strict', async (t) => {
  t.equal(parseConfig({}).proxy.pathNormalization, 'strict');
});

t.test('accepts the four path normalisation modes and nothing else', async (t) => {
  for (const mode of ['strict', 'base', 'merge_slashes', 'decode_and_merge_slashes']) {
    t.equal(parseConfig({ proxy: { pathNormalization: mode } }).proxy.pathNormalization, mode);
  }
  // No "none": Tollgate never decides on an unnormalised path. Istio's upper-case names are not aliases.
  for (const mode of ['none', 'NONE', 'MERGE_SLASHES', '']) {
    t.throws(
      () => parseConfig({ proxy: { pathNormalization: mode } }),
      { code: 'TG_ERR_CONFIG_INVALID', message: /\/proxy\/pathNormalization/ },
      mode,
    );
  }
});

t.test('describes every mode and its Istio and Envoy equivalent in the JSON Schema', async (t) => {
  const schema = configJsonSchema() as {
    properties: { proxy: { properties: Record<string, { description?: string; enum?: string[]; default?: string }> } };
  };
  const field = schema.properties.proxy.properties.pathNormalization!;
  t.same(field.enum, ['strict', 'base', 'merge_slashes', 'decode_and_merge_slashes']);
  t.equal(field.default, 'strict');
  for (const word of [
    '"base"',
    '"merge_slashes"',
    '"decode_and_merge_slashes"',
    '"strict"',
    'MERGE_SLASHES',
    'DECODE_AND_MERGE_SLASHES',
    'UNESCAPE_AND_MERGE',
    'normalize_path',
    'TG_ERR_AMBIGUOUS_TARGET',
  ]) {
    t.match(field.description, word);
  }
});
