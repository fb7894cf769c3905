/**
 * The pdp.type chain and cedar configuration through the real loader: defaults filled
 * in, closed objects, stage names checked, every problem named with its path.
 */
import t from 'tap';
import { parseConfig } from '../../src/config/load.ts';
import { TollgateError } from '../../src/errors.ts';

function problem(doc: unknown): string {
  try {
    parseConfig(doc, {}, 'test');
  } catch (err) {
    t.ok(err instanceof TollgateError && err.code === 'TG_ERR_CONFIG_INVALID');
    return (err as Error).message;
  }
  throw new Error('expected the config to be refused');
}

t.test('a chain config gets its defaults: deny-overrides, per-stage deadlines, fail closed', async (t) => {
  const config = parseConfig(
    {
      pdp: {
        type: 'chain',
        stages: [
          { name: 'central', type: 'extauthz', target: '127.0.0.1:9191' },
          { name: 'local', type: 'wasm', bundle: 'local.tar.gz' },
          { name: 'cedar', type: 'cedar', policies: 'p.cedar', schema: 's.cedarschema' },
        ],
      },
    },
    {},
    'test',
  );
  t.equal(config.pdp.type, 'chain');
  if (config.pdp.type !== 'chain') return;
  t.equal(config.pdp.combine, 'deny-overrides');
  t.match(config.pdp.stages, [
    { name: 'central', timeoutMs: 200, failureModeAllow: false, circuitBreaker: { failureThreshold: 3 } },
    { name: 'local', timeoutMs: 100, failureModeAllow: false, decisionPath: 'tollgate/authz/decision' },
    { name: 'cedar', timeoutMs: 100, entities: '' },
  ]);
  t.equal(config.pdp.failureModeAllow, false);
});

t.test('refuses unknown keys, bad stage names, empty chains and a Cedar PDP without a schema', async (t) => {
  t.match(
    problem({ pdp: { type: 'chain', stages: [{ name: 'local', type: 'wasm', bundel: 'x' }] } }),
    /pdp\/stages\/0.*bundel/,
  );
  t.match(
    problem({ pdp: { type: 'chain', stages: [{ name: 'Central Team', type: 'wasm' }] } }),
    /pdp\/stages\/0\/name/,
  );
  t.match(problem({ pdp: { type: 'chain', stages: [] } }), /pdp\/stages/);
  t.match(
    problem({ pdp: { type: 'chain', combine: 'most-specific', stages: [{ name: 'a', type: 'wasm' }] } }),
    /pdp\/combine/,
  );
  t.match(problem({ pdp: { type: 'cedar', policies: 'p.cedar' } }), /pdp\/schema/);
});
