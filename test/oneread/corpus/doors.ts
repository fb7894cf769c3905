/**
 * Corpus families about doors: plain HTTP inside CONNECT tunnels (whatever the port),
 * protocol upgrades (only websocket may be relayed), and the controls every family's
 * strictness must leave working.
 */
import {
  type CorpusCase,
  hostOf,
  HTTP_STACKS,
  mcpCall,
  mcpPost,
  MCP_ACCEPT,
  perTool,
  raw,
  restPost,
  type Routed,
} from './case.ts';

/** An origin-form request, as a client writes it inside a tunnel. */
function inside(tool: Routed, o: Parameters<typeof raw>[1] = {}): string {
  return raw(hostOf(tool), { ...o, target: o.path ?? '/' });
}

function connectTo(authority: string): string {
  return `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`;
}

/** Plain HTTP inside CONNECT tunnels. */
export function tunnelCases(): CorpusCase[] {
  const mcpInside = (tool: Routed, body: string): string =>
    inside(tool, {
      method: 'POST',
      path: '/mcp',
      headers: [...MCP_ACCEPT, ['Content-Type', 'application/json']],
      body,
    });
  const refund900 = (tool: Routed): string =>
    inside(tool, {
      method: 'POST',
      path: '/refund',
      headers: [['Content-Type', 'application/json']],
      body: '{"amount": 900}',
    });
  return [
    ...perTool((tool) => ({
      id: 'tunnel/refund-900',
      family: 'tunnel',
      expect: 'decided',
      bytes: connectTo(`${hostOf(tool)}:80`),
      tunnel: refund900(tool),
    })),
    ...perTool((tool) => ({
      id: 'tunnel/mcp-delete',
      family: 'tunnel',
      expect: 'decided',
      bytes: connectTo(`${hostOf(tool)}:80`),
      tunnel: mcpInside(tool, mcpCall('delete_customer', { id: 'c-1' })),
    })),
    ...perTool((tool) => ({
      id: 'tunnel/admin',
      family: 'tunnel',
      expect: 'decided',
      bytes: connectTo(`${hostOf(tool)}:80`),
      tunnel: inside(tool, { path: '/admin/users' }),
    })),
    ...perTool((tool) => ({
      id: 'tunnel/host-blocked-inside',
      family: 'tunnel',
      expect: 'decided',
      bytes: connectTo(`${hostOf(tool)}:80`),
      tunnel: inside(tool, { host: 'blocked.test' }),
    })),
    ...perTool((tool) => ({
      id: 'tunnel/port-443-plain',
      family: 'tunnel',
      expect: 'decided',
      bytes: connectTo(`${hostOf(tool)}:443`),
      tunnel: refund900(tool),
    })),
    ...perTool((tool) => ({
      id: 'tunnel/port-8080',
      family: 'tunnel',
      expect: 'decided',
      bytes: connectTo(`${hostOf(tool)}:8080`),
      tunnel: mcpInside(tool, mcpCall('delete_customer', { id: 'c-1' })),
    })),
    ...perTool((tool) => ({
      id: 'tunnel/pipelined-allowed-then-denied',
      family: 'tunnel',
      expect: 'decided',
      responses: 2,
      bytes: connectTo(`${hostOf(tool)}:80`),
      tunnel: inside(tool, { path: '/ok' }) + inside(tool, { path: '/admin' }),
    })),
    ...perTool((tool) => ({
      id: 'tunnel/not-http',
      family: 'tunnel',
      expect: 'decided',
      bytes: connectTo(`${hostOf(tool)}:80`),
      tunnel: 'HELLO delete_customer\r\n\r\n',
    })),
    ...perTool((tool) => ({
      id: 'tunnel/lowercase-method',
      family: 'tunnel',
      expect: 'decided',
      bytes: connectTo(`${hostOf(tool)}:80`),
      tunnel: inside(tool, { method: 'get', path: '/admin' }),
    })),
    {
      id: 'tunnel/connect-blocked-host',
      family: 'tunnel',
      expect: 'refused',
      bytes: connectTo('blocked.test:80'),
      tunnel: 'GET / HTTP/1.1\r\nHost: blocked.test\r\n\r\n',
    },
    ...perTool((tool) => ({
      id: 'tunnel/control-lookup',
      family: 'tunnel',
      expect: 'pass',
      bytes: connectTo(`${hostOf(tool)}:80`),
      tunnel: mcpInside(tool, mcpCall('lookup_order', { id: 'o-1' })),
    })),
  ];
}

/** Upgrade requests: websocket is relayed (and decided); any other token is refused. */
export function upgradeCases(): CorpusCase[] {
  const ws: Array<[string, string]> = [
    ['Connection', 'Upgrade'],
    ['Upgrade', 'websocket'],
    ['Sec-WebSocket-Version', '13'],
    ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='],
  ];
  const h2c: Array<[string, string]> = [
    ['Connection', 'Upgrade, HTTP2-Settings'],
    ['Upgrade', 'h2c'],
    ['HTTP2-Settings', 'AAMAAABkAARAAAAAAAIAAAAA'],
  ];
  const withUpgrade = (token: string): Array<[string, string]> => [
    ['Connection', 'Upgrade'],
    ['Upgrade', token],
  ];
  const fam = 'upgrade';
  return [
    ...perTool(
      (tool) => ({
        id: 'upgrade/h2c-post-delete',
        family: fam,
        expect: 'refused',
        bytes: mcpPost(tool, mcpCall('delete_customer', { id: 'c-1' }), 'application/json', h2c),
      }),
      HTTP_STACKS,
    ),
    ...perTool(
      (tool) => ({
        id: 'upgrade/h2c-get-admin',
        family: fam,
        expect: 'refused',
        bytes: raw(hostOf(tool), { path: '/admin', headers: h2c }),
      }),
      HTTP_STACKS,
    ),
    ...perTool(
      (tool) => ({
        id: 'upgrade/h2c-get-ok',
        family: fam,
        expect: 'refused',
        bytes: raw(hostOf(tool), { path: '/ok', headers: h2c }),
      }),
      HTTP_STACKS,
    ),
    ...perTool(
      (tool) => ({
        id: 'upgrade/h2c-prior-knowledge-preface',
        family: fam,
        expect: 'refused',
        bytes: 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n' + raw(hostOf(tool), { path: '/admin' }),
      }),
      HTTP_STACKS,
    ),
    ...perTool(
      (tool) => ({
        id: 'upgrade/websocket-admin',
        family: fam,
        expect: 'decided',
        bytes: raw(hostOf(tool), { path: '/admin', headers: ws }),
      }),
      HTTP_STACKS,
    ),
    ...perTool(
      (tool) => ({
        id: 'upgrade/websocket-mixed-case-token',
        family: fam,
        expect: 'decided',
        bytes: raw(hostOf(tool), {
          path: '/admin',
          headers: [['Connection', 'upgrade'], ['Upgrade', 'WebSocket'], ...ws.slice(2)],
        }),
      }),
      HTTP_STACKS,
    ),
    ...perTool(
      (tool) => ({
        id: 'upgrade/websocket-plus-h2c',
        family: fam,
        expect: 'refused',
        bytes: raw(hostOf(tool), { path: '/ok', headers: withUpgrade('websocket, h2c') }),
      }),
      HTTP_STACKS,
    ),
    ...perTool(
      (tool) => ({
        id: 'upgrade/h2c-plus-websocket',
        family: fam,
        expect: 'refused',
        bytes: raw(hostOf(tool), { path: '/ok', headers: withUpgrade('h2c, websocket') }),
      }),
      HTTP_STACKS,
    ),
    ...perTool(
      (tool) => ({
        id: 'upgrade/unknown-token',
        family: fam,
        expect: 'refused',
        bytes: raw(hostOf(tool), { path: '/ok', headers: withUpgrade('foo/1') }),
      }),
      HTTP_STACKS,
    ),
    ...perTool(
      (tool) => ({
        id: 'upgrade/tls-token',
        family: fam,
        expect: 'refused',
        bytes: raw(hostOf(tool), { path: '/ok', headers: withUpgrade('TLS/1.2') }),
      }),
      HTTP_STACKS,
    ),
    ...perTool(
      (tool) => ({
        id: 'upgrade/websocket-post-delete',
        family: fam,
        expect: 'decided',
        bytes: mcpPost(tool, mcpCall('delete_customer', { id: 'c-1' }), 'application/json', ws),
      }),
      HTTP_STACKS,
    ),
    ...perTool(
      (tool) => ({
        id: 'upgrade/connection-upgrade-without-upgrade',
        family: fam,
        expect: 'decided',
        bytes: raw(hostOf(tool), { path: '/admin', headers: [['Connection', 'Upgrade']] }),
      }),
      HTTP_STACKS,
    ),
  ];
}

/** Controls: legitimate requests every family must still pass, read identically. */
export function controlCases(): CorpusCase[] {
  const fam = 'control';
  return [
    ...perTool((tool) => ({
      id: 'control/mcp-lookup',
      family: fam,
      expect: 'pass',
      bytes: mcpPost(tool, mcpCall('lookup_order', { id: 'o-1', amount: 10 })),
    })),
    ...perTool((tool) => ({
      id: 'control/mcp-lookup-charset',
      family: fam,
      expect: 'pass',
      bytes: mcpPost(tool, mcpCall('lookup_order', { id: 'o-2' }), 'application/json; charset=utf-8'),
    })),
    ...perTool((tool) => ({
      id: 'control/rest-refund-10',
      family: fam,
      expect: 'pass',
      bytes: restPost(tool, '{"amount": 10, "kind": "refund", "name": "n"}'),
    })),
    ...perTool((tool) => ({
      id: 'control/get-query',
      family: fam,
      expect: 'pass',
      bytes: raw(hostOf(tool), { path: '/ok?x=1&x=2&y=a%20b' }),
    })),
    ...perTool((tool) => ({
      id: 'control/get-escaped-space',
      family: fam,
      expect: 'pass',
      bytes: raw(hostOf(tool), { path: '/files/a%20b' }),
    })),
    ...perTool((tool) => ({
      id: 'control/origin-form',
      family: fam,
      expect: 'pass',
      bytes: raw(hostOf(tool), { target: '/ok' }),
    })),
    ...perTool((tool) => ({
      id: 'control/unicode-argument',
      family: fam,
      expect: 'pass',
      bytes: mcpPost(tool, Buffer.from(mcpCall('lookup_order', { id: 'ünïcødé-✓' }), 'utf8').toString('latin1')),
    })),
    ...perTool((tool) => ({
      id: 'control/delete-method-rest',
      family: fam,
      expect: 'pass',
      bytes: raw(hostOf(tool), { method: 'DELETE', path: '/orders/o-1' }),
    })),
  ];
}
