import t from 'tap';
import { parseConfig } from '../../src/config/load.ts';
import { TollgateError } from '../../src/errors.ts';

t.test('the ext_authz server is on by default at 127.0.0.1:9191, like opa-envoy-plugin', async (t) => {
  const c = parseConfig({});
  t.same(c.extAuthz, { enabled: true, listen: '127.0.0.1:9191', dryRun: false, maxReceiveBytes: 4 * 1024 * 1024 });
  t.equal(
    parseConfig({}, { TOLLGATE_EXTAUTHZ_LISTEN: '127.0.0.1:0' }).extAuthz.listen,
    '127.0.0.1:0',
    'env override for the port',
  );
});

t.test('pdp is a union: wasm by default, extauthz with its own defaults', async (t) => {
  t.equal(parseConfig({ pdp: { bundle: 'b.tar.gz' } }).pdp.type, 'wasm', 'type may be left out for wasm');
  const remote = parseConfig({ pdp: { type: 'extauthz', target: 'pdp.internal:9191' } }).pdp;
  t.same(remote, {
    type: 'extauthz',
    target: 'pdp.internal:9191',
    timeoutMs: 200,
    failureModeAllow: false,
    failureModeAllowHosts: [],
    circuitBreaker: { failureThreshold: 3, openMs: 2000 },
  });
});

t.test('reports what is wrong with an extauthz pdp, naming the field', async (t) => {
  const problems = (doc: unknown): string => {
    try {
      parseConfig(doc);
      return '';
    } catch (err) {
      t.equal((err as TollgateError).code, 'TG_ERR_CONFIG_INVALID');
      return (err as Error).message;
    }
  };
  t.match(problems({ pdp: { type: 'extauthz' } }), '/pdp/target');
  t.match(problems({ pdp: { type: 'extauthz', target: 'nowhere' } }), '/pdp/target: expected host:port');
  t.match(problems({ pdp: { type: 'extauthz', target: 'a:1', bundle: 'x' } }), 'bundle', 'wasm-only keys are refused');
  t.match(problems({ pdp: { type: 'grpc' } }), '/pdp/type');
  t.match(
    problems({ extAuthz: { listen: 'x', dryRun: 'yes' } }),
    /\/extAuthz\/listen.*\/extAuthz\/dryRun|\/extAuthz\/dryRun.*\/extAuthz\/listen/,
  );
});
