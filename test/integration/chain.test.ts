/**
 * Layered policies end to end: `tollgate run` with a deny-overrides PDP chain whose
 * central stage is the real opa-envoy-plugin (ext_authz) and whose local stage is an
 * in-process bundle. Either layer's deny wins; both stage results reach the decision
 * log; a hung central stage (SIGSTOP) costs at most its deadline and its failure mode
 * applies: fail closed denies, fail open leaves the decision to the local layer.
 */
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ROOT, startTollgate, startUpstream, tempDir, viaProxy, type Reply } from '../helpers/processes.ts';
import { buildWasmBundle, freePort, startOpaEnvoy, waitFor } from '../extauthz/peers.ts';

const CENTRAL = [join(ROOT, 'test/fixtures/chain/central.rego')];
const DEADLINE_MS = 300;

interface LogRecord {
  decision_id?: string;
  result?: {
    allowed?: boolean;
    decided_by?: string;
    stages?: { name: string; outcome: string; error?: { code: string; failure_mode: string } }[];
  };
  error?: unknown;
}

async function records(file: string): Promise<LogRecord[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as LogRecord);
}

t.test('a central ext_authz layer and a local bundle decide together', async (t) => {
  const upstream = await startUpstream(t);
  const grpcPort = await freePort();
  const opa = await startOpaEnvoy(t, { path: 'central/authz/decision', paths: CENTRAL, grpcPort });
  const local = await buildWasmBundle('local/authz/decision', [join(ROOT, 'test/fixtures/chain/local.rego')]);
  const logFile = join(await tempDir(), 'decisions.jsonl');
  const chain = (centralFailOpen: boolean) => ({
    pdp: {
      type: 'chain',
      stages: [
        {
          name: 'central',
          type: 'extauthz',
          target: `127.0.0.1:${grpcPort}`,
          timeoutMs: DEADLINE_MS,
          failureModeAllow: centralFailOpen,
        },
        { name: 'local', type: 'wasm', bundle: local, decisionPath: 'local/authz/decision', timeoutMs: DEADLINE_MS },
      ],
    },
    proxy: { resolve: { 'api.test:80': `127.0.0.1:${upstream.port}` } },
  });
  const closed = await startTollgate(t, { ...chain(false), decisionLog: { file: logFile } });
  const open = await startTollgate(t, chain(true));
  const get = (port: number, path: string): Promise<Reply> => viaProxy(port, { url: `http://api.test${path}` });
  const logged = async (id: string): Promise<LogRecord> => {
    let found: LogRecord | undefined;
    await waitFor(async () => {
      found = (await records(logFile)).find((r) => r.decision_id === id);
      return found !== undefined;
    }, `decision ${id} in the log`);
    return found!;
  };
  const idOf = (reply: Reply): string =>
    String(reply.headers['x-tollgate-decision-id'] ?? JSON.parse(reply.body).decision_id);

  await t.test('central denies and local allows: the central deny wins with its own status', async (t) => {
    const reply = await get(closed.proxyPort, '/central-deny/x');
    t.equal(reply.status, 429);
    t.match(JSON.parse(reply.body), { reasons: [] });
    const record = await logged(idOf(reply));
    t.match(record.result, {
      allowed: false,
      decided_by: 'central',
      stages: [
        { name: 'central', outcome: 'deny' },
        { name: 'local', outcome: 'allow' },
      ],
    });
  });

  await t.test('central allows and local denies: the local deny wins', async (t) => {
    const reply = await get(closed.proxyPort, '/local-deny/x');
    t.equal(reply.status, 403);
    t.match(JSON.parse(reply.body), { reasons: ['local forbids this path'] });
    const record = await logged(idOf(reply));
    t.match(record.result, { decided_by: 'local', stages: [{ outcome: 'allow' }, { outcome: 'deny' }] });
  });

  await t.test('a remote layer without an opinion leaves the decision to the local one', async (t) => {
    const reply = await get(closed.proxyPort, '/central-na/x');
    t.equal(reply.status, 200);
    t.notOk(upstream.received.at(-1)!.headers['x-central'], 'a stage that does not apply changes nothing');
    const notApplicable = async () =>
      (await records(logFile)).findLast((r) => r.result?.stages?.[0]?.outcome === 'not_applicable');
    await waitFor(async () => (await notApplicable()) !== undefined, 'the decision in the log');
    const record = await notApplicable();
    t.match(record?.result, {
      allowed: true,
      decided_by: 'local',
      stages: [
        { name: 'central', outcome: 'not_applicable' },
        { name: 'local', outcome: 'allow' },
      ],
    });
  });

  await t.test('both allow: the request carries the header changes of both layers', async (t) => {
    const reply = await get(closed.proxyPort, '/fine');
    t.equal(reply.status, 200);
    const seen = upstream.received.at(-1)!;
    t.equal(seen.headers['x-central'], 'checked');
    t.equal(seen.headers['x-local'], 'checked');
  });

  await t.test('a hung central layer costs at most its deadline, then its failure mode applies', async (t) => {
    opa.child.kill('SIGSTOP');
    t.teardown(() => {
      opa.child.kill('SIGCONT');
    });
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      const reply = await get(closed.proxyPort, '/fine');
      const ms = performance.now() - started;
      t.equal(reply.status, 403, 'fail closed: the silent central layer counts as a deny');
      t.ok(ms < DEADLINE_MS + 500, `answered in ${ms.toFixed(0)} ms, within the ${DEADLINE_MS} ms deadline and slack`);
      const record = await logged(idOf(reply));
      t.match(record.result?.stages?.[0], { name: 'central', outcome: 'error', error: { failure_mode: 'deny' } });
      t.match(record.result?.stages?.[1], { name: 'local', outcome: 'allow' });
    }
    const first = (await records(logFile)).find((r) => r.result?.stages?.[0]?.error?.code === 'TG_ERR_PDP_TIMEOUT');
    t.ok(first, 'the first failures are recorded as timeouts (later ones may find the circuit open)');

    const started = performance.now();
    const allowed = await get(open.proxyPort, '/fine');
    t.equal(allowed.status, 200, 'fail open: the local layer decides alone');
    t.ok(performance.now() - started < DEADLINE_MS + 500);
    t.equal((await get(open.proxyPort, '/local-deny/x')).status, 403, 'and the local layer still denies');
    opa.child.kill('SIGCONT');
    await waitFor(
      async () => (await get(closed.proxyPort, '/fine')).status === 200,
      'the central layer to answer again',
    );
  });
});
