import t from 'tap';
import pino from 'pino';
import { parseConfig } from '../../src/config/load.ts';
import { startSidecar } from '../../src/sidecar.ts';

t.test('response decisions and pins are off by default', async (t) => {
  const config = parseConfig({});
  t.equal(config.mcp.response.decisionPath, '');
  t.equal(config.mcp.response.onUninspectable, 'block');
  t.equal(config.mcp.response.failureModeAllow, false);
  t.equal(config.mcp.pins.enabled, false);
});

t.test('bad MCP settings are refused naming the field', async (t) => {
  t.throws(() => parseConfig({ mcp: { response: { maxMessageBytes: 10 } } }), {
    code: 'TG_ERR_CONFIG_INVALID',
    message: /mcp\/response\/maxMessageBytes/,
  });
  t.throws(() => parseConfig({ mcp: { response: { onUninspectable: 'drop' } } }), {
    message: /mcp\/response\/onUninspectable/,
  });
  t.throws(() => parseConfig({ mcp: { pins: { enable: true } } }), { message: /mcp\/pins/ });
});

t.test('response decisions need the wasm PDP', async (t) => {
  const config = parseConfig({
    pdp: { type: 'extauthz', target: '127.0.0.1:1' },
    mcp: { response: { decisionPath: 'tollgate/authz/response' } },
  });
  await t.rejects(startSidecar(config, pino({ level: 'silent' })), {
    code: 'TG_ERR_CONFIG_INVALID',
    message: /\/mcp\/response\/decisionPath: response decisions need the wasm PDP/,
  });
});

t.test('a pins file that cannot be read stops the start with a clear error', async (t) => {
  const config = parseConfig({
    proxy: { listen: '127.0.0.1:0' },
    admin: { listen: '127.0.0.1:0' },
    mcp: { pins: { enabled: true, file: '/nonexistent/pins.yaml' } },
  });
  await t.rejects(startSidecar(config, pino({ level: 'silent' })), {
    code: 'TG_ERR_CONFIG_INVALID',
    message: /\/mcp\/pins\/file: cannot read \/nonexistent\/pins\.yaml \(ENOENT\)/,
  });
});
