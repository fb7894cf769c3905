/**
 * Through the real sidecar process: an agent calling 10,000 distinct destinations with
 * 10,000 distinct MCP tool names leaves at most metrics.maxLabelValues + 1 values per
 * label in a /metrics scrape, the overflow is counted, and the scrape stays valid text.
 */
import t from 'tap';
import { Agent, request } from 'node:http';
import { startTollgate } from '../helpers/processes.ts';
import { labelValues, parseExposition, sum } from './exposition.ts';

t.setTimeout(120_000);

const CALLS = 10_000;
const CAP = 50;

/** POSTs a JSON-RPC tools/call through the proxy; resolves with the status. */
function toolCall(port: number, agent: Agent, i: number): Promise<number> {
  const body = JSON.stringify({
    jsonrpc: '2.0',
    id: i,
    method: 'tools/call',
    params: { name: `tool_${i}`, arguments: {} },
  });
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: `http://h${i}.tools.invalid/mcp`,
        agent,
        headers: {
          host: `h${i}.tools.invalid`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

t.test(
  '10,000 distinct destinations and tools leave at most cap + 1 series values per label in a real scrape',
  async (t) => {
    const tg = await startTollgate(t, {
      agent: { id: 'support-bot', role: 'support' },
      metrics: { maxLabelValues: CAP },
    });
    const agent = new Agent({ keepAlive: true, maxSockets: 16 });
    t.teardown(() => agent.destroy());
    const statuses = new Map<number, number>();
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < CALLS) {
          const status = await toolCall(tg.proxyPort, agent, next++);
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
        }
      }),
    );
    // A denied tools/call is answered as a JSON-RPC error (200) or a 403; never a 5xx.
    t.same(
      [...statuses.keys()].filter((s) => s !== 200 && s !== 403),
      [],
      'every call was answered by the sidecar',
    );

    const res = await fetch(`http://127.0.0.1:${tg.adminPort}/metrics`);
    t.equal(res.status, 200);
    const samples = parseExposition(await res.text());
    const destinations = labelValues(samples, 'tollgate_decisions_total', 'destination');
    const tools = labelValues(samples, 'tollgate_decisions_total', 'tool');
    t.ok(destinations.size <= CAP + 1, `${destinations.size} destination values`);
    t.ok(tools.size <= CAP + 1, `${tools.size} tool values`);
    t.ok(destinations.has('__other__') && tools.has('__other__'), 'the overflow value is there');
    t.equal(sum(samples, 'tollgate_decisions_total'), CALLS, 'every decision is counted');
    // Unknown destinations are denied by the default policy: nothing left the machine.
    t.equal(sum(samples, 'tollgate_decisions_total', { decision: 'deny' }), CALLS, 'every call was denied');
    t.ok(
      sum(samples, 'tollgate_decisions_total', { destination: '__other__' }) >= CALLS - CAP,
      'the rest are counted under the overflow value',
    );
    t.ok(sum(samples, 'tollgate_metric_label_overflow_total', { label: 'destination' }) >= CALLS - CAP);
    t.ok(sum(samples, 'tollgate_metric_label_overflow_total', { label: 'tool' }) >= CALLS - CAP);
    t.ok(samples.filter((s) => s.name === 'tollgate_decisions_total').length <= 2 * (CAP + 1), 'series stay bounded');
  },
);
