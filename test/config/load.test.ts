import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadConfig, parseConfig } from '../../src/config/load.ts';
import { configJsonSchema } from '../../src/config/schema.ts';
import { TollgateError } from '../../src/errors.ts';

t.test('fills every default', async (t) => {
  const c = parseConfig({});
  t.equal(c.proxy.listen, '127.0.0.1:15001');
  t.equal(c.admin.listen, '127.0.0.1:15000');
  t.equal(c.proxy.maxRequestBytes, 65536);
  t.equal(c.pdp.type === 'wasm' ? c.pdp.decisionPath : undefined, 'tollgate/authz/decision');
  t.equal(c.pdp.failureModeAllow, false);
  t.ok(Object.isFrozen(c.proxy), 'config is deep-frozen');
});

t.test('reports every problem at once, naming each field', async (t) => {
  try {
    parseConfig({ proxy: { listen: 'nowhere', maxRequestBytes: -1 }, pdp: { timeoutMs: 'fast' }, extra: 1 });
    t.fail('should throw');
  } catch (err) {
    t.ok(err instanceof TollgateError);
    t.equal((err as TollgateError).code, 'TG_ERR_CONFIG_INVALID');
    const msg = (err as Error).message;
    t.match(msg, '/proxy/listen');
    t.match(msg, '/proxy/maxRequestBytes');
    t.match(msg, '/pdp/timeoutMs');
    t.match(msg, 'extra');
  }
});

t.test('applies the documented environment overrides', async (t) => {
  const c = parseConfig(
    {},
    {
      TOLLGATE_PROXY_LISTEN: '127.0.0.1:0',
      TOLLGATE_AGENT_ID: 'trader-1',
      TOLLGATE_LOG_LEVEL: 'debug',
      UNRELATED: 'x',
    },
  );
  t.equal(c.proxy.listen, '127.0.0.1:0');
  t.equal(c.agent.id, 'trader-1');
  t.equal(c.logLevel, 'debug');
  t.throws(() => parseConfig({}, { TOLLGATE_LOG_LEVEL: 'loud' }), { code: 'TG_ERR_CONFIG_INVALID' });
});

t.test('names the file when YAML is broken, missing or not a mapping', async (t) => {
  const dir = t.testdir({
    'bad.yaml': 'proxy: [unclosed',
    'list.yaml': '- a\n- b\n',
    'ok.yaml': 'agent:\n  id: cs-bot\n',
  });
  await t.rejects(loadConfig(join(dir, 'bad.yaml')), {
    code: 'TG_ERR_CONFIG_INVALID',
    message: /bad\.yaml: not valid YAML/,
  });
  await t.rejects(loadConfig(join(dir, 'list.yaml')), { code: 'TG_ERR_CONFIG_INVALID', message: /mapping/ });
  await t.rejects(loadConfig(join(dir, 'missing.yaml')), { code: 'TG_ERR_CONFIG_INVALID', message: /ENOENT/ });
  t.equal((await loadConfig(join(dir, 'ok.yaml'))).agent.id, 'cs-bot');
  await writeFile(join(dir, 'empty.yaml'), '');
  t.equal((await loadConfig(join(dir, 'empty.yaml'))).agent.id, '');
});

t.test('publishes a JSON Schema with descriptions and closed objects', async (t) => {
  const schema = configJsonSchema() as {
    properties: Record<string, { description?: string; additionalProperties?: boolean }>;
  };
  t.ok(schema.properties.proxy?.description);
  t.equal(schema.properties.proxy?.additionalProperties, false);
});
