/**
 * The decision log writer: OPA fields, masking, the hash chain from a genesis,
 * continuation across restarts, size rotation linking files, back-pressure drops
 * (counted, warned, and recorded as a gap), and the HTTP sink's OPA upload format.
 */
import t from 'tap';
import { createServer } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { readFile, appendFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { createDecisionLog, type DecisionEvent } from '../../src/audit/log.ts';
import { LINE_HASH_SCHEME, lineHashMatches, recomputeHash, ZERO_HASH } from '../../src/audit/chain.ts';
import { verifyDecisionLog } from '../../src/audit/verify.ts';
import { DEFAULT_MASK } from '../../src/audit/mask.ts';
import { tempDir } from '../helpers/processes.ts';
import { until } from '../helpers/jaeger.ts';

function event(n: number, extra: Partial<DecisionEvent> = {}): DecisionEvent {
  return {
    decisionId: `d-${n}`,
    timestamp: new Date(Date.UTC(2026, 10, 25, 7, 0, n)),
    path: 'tollgate/authz/decision',
    input: {
      attributes: {
        request: { http: { method: 'GET', headers: { authorization: 'Bearer s3cret', host: 'payments.internal' } } },
      },
      agent: { id: 'support-bot' },
    },
    result: { allowed: n % 2 === 0, reasons: n % 2 === 0 ? [] : ['no'] },
    revision: 'rev-1',
    evalNanos: 1000 + n,
    traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    spanId: '00f067aa0ba902b7',
    requestedBy: '127.0.0.1:40000',
    ...extra,
  };
}

async function lines(path: string): Promise<Record<string, unknown>[]> {
  return (await readFile(path, 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

t.test('writes a genesis then one OPA-shaped, masked, chained JSON line per decision', async (t) => {
  const path = join(await tempDir(), 'decisions.log');
  const log = await createDecisionLog({ file: { path }, labels: { id: 'i-1', version: '0.1.0' } });
  log.write(event(1));
  log.write(
    event(2, { error: { code: 'TG_ERR_PDP_TIMEOUT', message: 'no answer', failureMode: 'deny' }, result: undefined }),
  );
  await log.close();
  const records = await lines(path);
  t.equal(records.length, 3);
  const [genesis, first, second] = records as [
    Record<string, unknown>,
    Record<string, unknown>,
    Record<string, unknown>,
  ];
  t.match(genesis, {
    type: 'genesis',
    seq: 0,
    prev_hash: ZERO_HASH,
    chain_id: /^[0-9a-f-]{36}$/,
    created: /^\d{4}-\d\d-\d\dT/,
    hash_scheme: LINE_HASH_SCHEME,
  });
  t.match(first, {
    decision_id: 'd-1',
    timestamp: '2026-11-25T07:00:01.000Z',
    path: 'tollgate/authz/decision',
    result: { allowed: false, reasons: ['no'] },
    bundles: { tollgate: { revision: 'rev-1' } },
    metrics: { timer_rego_query_eval_ns: 1001 },
    labels: { id: 'i-1', version: '0.1.0' },
    erased: ['/input/attributes/request/http/headers/authorization'],
    trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
    span_id: '00f067aa0ba902b7',
    requested_by: '127.0.0.1:40000',
    seq: 1,
    prev_hash: genesis.hash,
  });
  t.notMatch(JSON.stringify(records), /s3cret/, 'the authorization header never reaches the file');
  t.match(second, { seq: 2, prev_hash: first.hash, error: { code: 'TG_ERR_PDP_TIMEOUT', failure_mode: 'deny' } });
  t.notOk('result' in second);
  for (const [i, line] of (await readFile(path, 'utf8')).trim().split('\n').entries())
    t.ok(lineHashMatches(line, records[i]!.hash as string), `record ${i} hash covers its line`);
  t.ok((await verifyDecisionLog(path)).ok);
});

t.test('the input is written as the text the policy evaluated, unless the mask erases something in it', async (t) => {
  const path = join(await tempDir(), 'decisions.log');
  const log = await createDecisionLog({ file: { path }, mask: [...DEFAULT_MASK, '/result/token'] });
  // The same value as the text, written differently (1.0, a space): only a verbatim copy is `1.0`.
  const plain = { attributes: { request: { http: { headers: { host: 'a.test' } } } }, n: 1 };
  const plainText = '{"attributes":{"request":{"http":{"headers":{"host":"a.test"}}}},"n":1.0 }';
  log.write(event(1, { input: plain, inputJson: plainText }));
  // With a credential header the mask erases it: the text (which holds it) is not used.
  const secret = event(2).input;
  log.write(event(2, { inputJson: JSON.stringify(secret) }));
  // A result the mask erases leaves the input's text usable.
  log.write(event(3, { input: plain, inputJson: plainText, result: { allowed: true, token: 'r-s3cret' } }));
  await log.close();
  const fileLines = (await readFile(path, 'utf8')).trim().split('\n');
  t.ok(fileLines[1]!.includes(`"path":"tollgate/authz/decision","input":${plainText},"result":`), fileLines[1]!);
  t.notMatch(fileLines[2]!, /s3cret/, 'the credential never reaches the file');
  t.same((JSON.parse(fileLines[2]!) as { erased: string[] }).erased, [
    '/input/attributes/request/http/headers/authorization',
  ]);
  t.equal(JSON.parse(fileLines[2]!).input.attributes.request.http.headers.host, 'payments.internal');
  t.ok(fileLines[3]!.includes(`"input":${plainText},`), fileLines[3]!);
  t.notMatch(fileLines[3]!, /r-s3cret/);
  for (const line of fileLines) t.ok(lineHashMatches(line, (JSON.parse(line) as { hash: string }).hash));
  t.ok((await verifyDecisionLog(path)).ok);
});

t.test('a restarted log continues the chain of the existing file', async (t) => {
  const path = join(await tempDir(), 'decisions.log');
  const first = await createDecisionLog({ file: { path } });
  first.write(event(1));
  await first.close();
  const second = await createDecisionLog({ file: { path } });
  second.write(event(2));
  await second.close();
  const records = await lines(path);
  t.same(
    records.map((r) => r.seq),
    [0, 1, 2],
  );
  t.equal(records.filter((r) => r.type === 'genesis').length, 1);
  t.ok((await verifyDecisionLog(path)).ok);
});

/** A file as earlier versions wrote it: records hashed over their canonical JSON (sha256-jcs). */
function earlierSchemeLines(): { text: string; lastHash: string } {
  let prev = ZERO_HASH;
  const out: string[] = [];
  const records: Record<string, unknown>[] = [
    { type: 'genesis', chain_id: 'c-earlier', created: '2026-11-01T00:00:00.000Z' },
    { decision_id: 'd-1', path: 'tollgate/authz/decision', input: { b: 1, a: 2 }, result: { allowed: true } },
  ];
  records.forEach((record, seq) => {
    const sealed = { ...record, seq, prev_hash: prev };
    prev = recomputeHash(sealed);
    out.push(JSON.stringify({ ...sealed, hash: prev }));
  });
  return { text: `${out.join('\n')}\n`, lastHash: prev };
}

t.test('a file hashed the earlier way is kept as it is and the chain continues in a new file', async (t) => {
  const dir = await tempDir();
  const path = join(dir, 'decisions.log');
  const earlier = earlierSchemeLines();
  await appendFile(path, earlier.text);
  t.ok((await verifyDecisionLog(path)).ok, 'the earlier scheme verifies');
  const warnings: string[] = [];
  const log = await createDecisionLog({ file: { path }, logger: { warn: (_o, m) => warnings.push(m) } });
  log.write(event(2));
  await log.close();
  t.same((await readdir(dir)).sort(), ['decisions.log', 'decisions.log.1']);
  t.equal(await readFile(`${path}.1`, 'utf8'), earlier.text, 'the earlier file is untouched');
  t.match(warnings, [/sha256-jcs/]);
  const fresh = await lines(path);
  t.match(fresh[0], {
    type: 'genesis',
    hash_scheme: LINE_HASH_SCHEME,
    chain_id: 'c-earlier',
    prev_file: 'decisions.log.1',
    seq: 2,
    prev_hash: earlier.lastHash,
  });
  t.match(fresh[1], { decision_id: 'd-2', seq: 3, prev_hash: fresh[0]!.hash });
  const report = await verifyDecisionLog(path);
  t.ok(report.ok, JSON.stringify(report.problems));
  t.equal(report.decisions, 2, 'one chain over both files');

  // Each file is held to its own scheme: an edit in the earlier one is still found.
  await writeFile(`${path}.1`, earlier.text.replace('"allowed":true', '"allowed":false'));
  t.match((await verifyDecisionLog(path)).problems, [{ file: `${path}.1`, line: 2, kind: 'edited' }]);
});

t.test(
  'a file ending in a torn record is kept aside and the chain continues from its last intact record',
  async (t) => {
    const dir = await tempDir();
    const path = join(dir, 'decisions.log');
    const log = await createDecisionLog({ file: { path } });
    log.write(event(1));
    await log.close();
    const before = await lines(path);
    await appendFile(path, '{"decision_id":"d-2","seq":2,"pre');
    const warnings: string[] = [];
    const again = await createDecisionLog({ file: { path }, logger: { warn: (_o, m) => warnings.push(m) } });
    again.write(event(3));
    await again.close();
    t.same((await readdir(dir)).sort(), ['decisions.log', 'decisions.log.1']);
    t.match(warnings, [/damaged record/]);
    const fresh = await lines(path);
    t.match(fresh[0], {
      type: 'genesis',
      seq: 2,
      prev_hash: before[1]!.hash,
      prev_file: 'decisions.log.1',
      chain_id: before[0]!.chain_id,
    });
    const report = await verifyDecisionLog(path);
    t.same(
      report.problems.map((p) => [p.file, p.line, p.kind]),
      [[`${path}.1`, 3, 'malformed']],
      'only the torn line is reported, where it is',
    );
  },
);

t.test('rotates by size; each new file starts with a genesis linked to the previous file', async (t) => {
  const dir = await tempDir();
  const path = join(dir, 'decisions.log');
  const log = await createDecisionLog({ file: { path, maxBytes: 2000, maxFiles: 0 } });
  for (let i = 1; i <= 20; i++) log.write(event(i));
  await log.close();
  const names = (await readdir(dir)).sort();
  t.ok(names.length >= 3, `rotated into ${names.join(', ')}`);
  const rotated1 = await lines(`${path}.1`);
  const rotated2 = await lines(`${path}.2`);
  t.match(rotated2[0], {
    type: 'genesis',
    prev_hash: rotated1.at(-1)!.hash,
    prev_file: 'decisions.log.1',
    chain_id: rotated1[0]!.chain_id,
  });
  for (const name of names) {
    const size = Buffer.byteLength(await readFile(join(dir, name), 'utf8'));
    t.ok(size <= 2000, `${name} is ${size} bytes`);
  }
  const report = await verifyDecisionLog(path);
  t.ok(report.ok, JSON.stringify(report.problems));
  t.equal(report.decisions, 20);
  t.equal(report.files.length, names.length);
});

t.test('rotation keeps at most maxFiles rotated files; the set still verifies, noting the missing start', async (t) => {
  const dir = await tempDir();
  const path = join(dir, 'decisions.log');
  const log = await createDecisionLog({ file: { path, maxBytes: 1500, maxFiles: 2 } });
  for (let i = 1; i <= 30; i++) log.write(event(i));
  await log.close();
  const names = (await readdir(dir)).sort();
  t.equal(names.length, 3, names.join(', '));
  const report = await verifyDecisionLog(path);
  t.ok(report.ok, JSON.stringify(report.problems));
  t.match(report.notes, [/continues a chain from earlier files not given/]);
});

t.test(
  'under back-pressure writes never wait: drops are counted, warned with the count, and recorded as a gap',
  async (t) => {
    const path = join(await tempDir(), 'decisions.log');
    let droppedCount = 0;
    const warnings: { obj: Record<string, unknown>; msg: string }[] = [];
    const log = await createDecisionLog({
      file: { path },
      maxQueue: 5,
      warnIntervalMs: 0,
      onDropped: (n) => (droppedCount += n),
      logger: { warn: (obj, msg) => warnings.push({ obj: obj as Record<string, unknown>, msg }) },
    });
    // 20 synchronous writes: the writer cannot run in between, so 15 do not fit.
    const started = process.hrtime.bigint();
    for (let i = 1; i <= 20; i++) log.write(event(i));
    const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
    t.ok(elapsedMs < 50, `20 writes took ${elapsedMs.toFixed(2)} ms`);
    t.equal(droppedCount, 15);
    t.equal(log.stats().dropped, 15);
    await log.close();
    t.match(warnings, [{ obj: { dropped: 15 }, msg: /dropped 15 records/ }]);
    const records = await lines(path);
    t.same(
      records.map((r) => r.decision_id ?? r.type),
      ['genesis', 'd-1', 'd-2', 'd-3', 'd-4', 'd-5', 'gap'],
    );
    t.match(records.at(-1), { type: 'gap', dropped: 15 });
    const report = await verifyDecisionLog(path);
    t.ok(report.ok);
    t.match(report.gaps, [{ line: 7, dropped: 15 }]);
  },
);

t.test('the HTTP sink posts gzip JSON arrays in OPA upload format and retries after a failure', async (t) => {
  const batches: unknown[][] = [];
  let failNext = true;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (failNext) {
        failNext = false;
        res.writeHead(503).end();
        return;
      }
      t.equal(req.headers['content-encoding'], 'gzip');
      t.equal(req.headers['content-type'], 'application/json');
      t.equal(req.headers['x-api-key'], 'k');
      batches.push(JSON.parse(gunzipSync(Buffer.concat(chunks)).toString('utf8')) as unknown[]);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/logs`;
  const warnings: string[] = [];
  const log = await createDecisionLog({
    http: { url, headers: { 'x-api-key': 'k' }, flushIntervalMs: 60_000 },
    logger: { warn: (_o, m) => warnings.push(m) },
  });
  log.write(event(1));
  log.write(event(2));
  await log.flush();
  t.same(batches, [], 'the first upload failed');
  t.match(warnings, [/upload failed/]);
  log.write(event(3));
  await log.close();
  t.equal(batches.length, 1);
  t.same(
    batches[0]!.map((e) => (e as { decision_id: string }).decision_id),
    ['d-1', 'd-2', 'd-3'],
  );
  // Without a file there is no genesis: the chain starts at seq 0 from the zero hash.
  t.match(batches[0]![0], {
    path: 'tollgate/authz/decision',
    bundles: { tollgate: { revision: 'rev-1' } },
    seq: 0,
    prev_hash: ZERO_HASH,
  });
  t.equal((batches[0]![1] as { prev_hash: string }).prev_hash, (batches[0]![0] as { hash: string }).hash);
});

t.test(
  'file and HTTP sink get the same lines, UTF-8 as sealed, a record past the write batch size included',
  async (t) => {
    const uploaded: string[] = [];
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        for (const e of JSON.parse(gunzipSync(Buffer.concat(chunks)).toString('utf8')) as unknown[])
          uploaded.push(JSON.stringify(e));
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/logs`;
    const path = join(await tempDir(), 'decisions.log');
    const log = await createDecisionLog({ file: { path }, http: { url, flushIntervalMs: 60_000 } });
    // Non-ASCII text (2-, 3- and 4-byte UTF-8) and a body of 300,000 bytes, past the 128 KiB
    // buffer the lines are sealed into: it grows for that record and the next ones follow it.
    const big = 'é€😀'.repeat(30_000);
    log.write(event(1, { input: { parsed_body: { note: 'café €5 😀' } } }));
    log.write(event(2, { input: { parsed_body: { big } } }));
    for (let i = 3; i <= 40; i++) log.write(event(i));
    await log.close();
    const text = await readFile(path, 'utf8');
    const fileLines = text.trim().split('\n');
    t.equal(fileLines.length, 41, 'genesis and 40 decisions');
    t.equal((JSON.parse(fileLines[2]!) as { input: { parsed_body: { big: string } } }).input.parsed_body.big, big);
    t.equal(
      (JSON.parse(fileLines[1]!) as { input: { parsed_body: { note: string } } }).input.parsed_body.note,
      'café €5 😀',
    );
    // The uploaded records are the file's lines, member for member.
    t.same(
      uploaded,
      fileLines.slice(1).map((l) => JSON.stringify(JSON.parse(l))),
    );
    for (const line of fileLines) {
      const record = JSON.parse(line) as Record<string, unknown>;
      t.ok(lineHashMatches(line, record.hash as string), `seq ${String(record.seq)} hash recomputes`);
    }
    const report = await verifyDecisionLog(path);
    t.ok(report.ok, JSON.stringify(report.problems));
    t.equal(report.decisions, 40);
  },
);

t.test('an unreachable HTTP sink never blocks writes and counts what it could not deliver', async (t) => {
  let dropped = 0;
  const log = await createDecisionLog({
    http: { url: 'http://127.0.0.1:1/logs', maxBufferRecords: 3, flushIntervalMs: 60_000, timeoutMs: 500 },
    onDropped: (n) => (dropped += n),
  });
  for (let i = 1; i <= 5; i++) log.write(event(i));
  await log.flush();
  t.equal(dropped, 2, 'beyond the buffer bound');
  await log.close();
  t.equal(dropped, 5, 'and what was still buffered at shutdown');
});

t.test('sealed records reach the file together: after the flush interval, at 64 KiB, or on flush', async (t) => {
  const path = join(await tempDir(), 'decisions.log');
  const log = await createDecisionLog({ file: { path }, fileFlushMs: 60_000 });
  t.teardown(() => log.close());
  for (let i = 1; i <= 10; i++) log.write(event(i));
  await until('the ten records sealed', async () => (log.stats().queued === 0 ? true : undefined));
  t.equal((await lines(path)).length, 1, 'sealed, not yet written: the file holds its genesis only');
  t.equal(log.stats().written, 0);
  await log.flush();
  t.equal((await lines(path)).length, 11, 'flush writes them');
  t.equal(log.stats().written, 10);

  // Past 64 KiB of sealed lines the write does not wait for the interval.
  log.write(event(11, { input: { blob: 'x'.repeat(70 * 1024) } }));
  await until('the large record written', async () => (log.stats().written === 11 ? true : undefined));
  const records = await lines(path);
  t.equal(records.length, 12);
  t.match(records[11], { decision_id: 'd-11', seq: 11, prev_hash: records[10]!.hash });
  t.ok((await verifyDecisionLog(path)).ok);
});

t.test('with a short flush interval the records reach the file without a flush', async (t) => {
  const path = join(await tempDir(), 'decisions.log');
  const log = await createDecisionLog({ file: { path }, fileFlushMs: 5 });
  t.teardown(() => log.close());
  for (let i = 1; i <= 3; i++) log.write(event(i));
  await until('three records written', async () => (log.stats().written === 3 ? true : undefined));
  t.same(
    (await lines(path)).map((r) => r.seq),
    [0, 1, 2, 3],
  );
});

t.test('a backlog is sealed a batch per event-loop turn, so requests run between batches', async (t) => {
  const path = join(await tempDir(), 'decisions.log');
  const log = await createDecisionLog({ file: { path } });
  for (let i = 1; i <= 1000; i++) log.write(event(i));
  t.equal(log.stats().queued, 1000);
  // This callback is queued after the writer's first turn: it runs between two batches.
  const seenBetween = await new Promise<number>((resolve) => setImmediate(() => resolve(log.stats().queued)));
  t.ok(seenBetween > 0 && seenBetween < 1000, `${seenBetween} still queued after one turn`);
  await log.close();
  t.equal(log.stats().written, 1000);
  const report = await verifyDecisionLog(path);
  t.ok(report.ok, JSON.stringify(report.problems));
  t.equal(report.decisions, 1000);
});

t.test('writes after close are counted as dropped', async (t) => {
  const path = join(await tempDir(), 'decisions.log');
  let dropped = 0;
  const log = await createDecisionLog({ file: { path }, onDropped: (n) => (dropped += n) });
  await log.close();
  log.write(event(1));
  t.equal(dropped, 1);
});
