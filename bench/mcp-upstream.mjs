// A minimal MCP tool server for bench/mcp-response.sh: Streamable HTTP, JSON answers,
// every tools/call answered with a small text result (a few hundred bytes, one API key in
// it so the seed response policy has something to redact). Plain JS, no SDK: the bench
// measures Tollgate, not the tool. Prints its port.
import { createServer } from 'node:http';

const text = `order o-1001 for customer c-1: 3 items, shipped 2026-11-30; api key sk_live_4eC39HqLyjWDarjtT1zdp7dc; ${'notes '.repeat(30)}`;
const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    let id = null;
    try {
      id = JSON.parse(Buffer.concat(chunks).toString()).id ?? null;
    } catch {}
    const body = JSON.stringify({ jsonrpc: '2.0', id, result: { content: [{ type: 'text', text }], isError: false } });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
