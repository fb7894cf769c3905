/**
 * Corpus families from a red-team pass over the merged gate: what an attacker or a
 * prompt-injected agent tries once the obvious doors are shut.
 *   encoding   JSON in UTF-16/32 that Python's json.loads(bytes) detects by its NUL
 *              pattern (RFC 4627 §3), sent under media types the policy does not read as JSON;
 *   multipart  multipart/form-data without a boundary (the policy reads nothing) and a
 *              multipart body whose preamble is JSON (a json.Decoder reads that first value);
 *   decoder    trailing bytes after a JSON value: json.NewDecoder(r.Body).Decode, the common
 *              Go idiom, reads the first value and never looks at the rest;
 *   opaque     bytes inside a CONNECT tunnel that the gate classifies as "not HTTP" but HTTP
 *              servers parse as requests (leading CRLF, digits or lower case in the method,
 *              long methods, a silent start), relayed undecided when the policy allows;
 *   mcp-headers  Mcp-Method / Mcp-Name headers that disagree with the body (the MCP
 *              2026-07-28 revision has intermediaries reject the mismatch);
 *   misc       pipelining after a deny, CONNECT authority spellings, requests inside a
 *              tunnel that are not for the tunnel, raw non-ASCII in targets, __proto__ keys.
 */
import { DECODER_HOST } from '../harness.ts';
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
  utf8,
} from './case.ts';

const DELETE = mcpCall('delete_customer', { id: 'c-1' });
const LOOKUP = mcpCall('lookup_order', { id: 'o-1' });
const REFUND_900 = '{"amount": 900}';
/** The MCP families (their servers dispatch tools/call). */
const MCP_TOOLS: readonly Routed[] = ['ts-mcp', 'go-mcp', 'py'];

function connectTo(authority: string): string {
  return `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`;
}

/** A REST POST to go-decoder's /refund. */
function decoderPost(body: string, contentType: string | null, extra: Array<[string, string]> = []): string {
  const headers: Array<[string, string]> = [
    ...(contentType === null ? [] : [['Content-Type', contentType] as [string, string]]),
    ...extra,
  ];
  return raw(DECODER_HOST, { method: 'POST', path: '/refund', headers, body });
}

function utf16le(text: string): string {
  return Buffer.from(text, 'utf16le').toString('latin1');
}

function swap16(buf: Buffer): Buffer {
  const out = Buffer.from(buf);
  for (let i = 0; i + 1 < out.length; i += 2) [out[i], out[i + 1]] = [out[i + 1]!, out[i]!];
  return out;
}

function utf16be(text: string): string {
  return swap16(Buffer.from(text, 'utf16le')).toString('latin1');
}

function utf32(text: string, bigEndian: boolean): string {
  const out = Buffer.alloc(text.length * 4);
  for (let i = 0; i < text.length; i++) {
    if (bigEndian) out.writeUInt32BE(text.charCodeAt(i), i * 4);
    else out.writeUInt32LE(text.charCodeAt(i), i * 4);
  }
  return out.toString('latin1');
}

/**
 * Python's json.loads(bytes) — Starlette's request.json(), FastAPI without a JSON
 * Content-Type — detects UTF-16/32 by BOM or NUL pattern whatever the media type says;
 * the gate reads these bodies as UTF-8, sees no JSON (or a form) and lets them through.
 */
export function encodingCases(): CorpusCase[] {
  const bodies: Array<[string, string]> = [
    ['utf16le', utf16le(REFUND_900)],
    ['utf16le-bom', '\xff\xfe' + utf16le(REFUND_900)],
    ['utf16be', utf16be(REFUND_900)],
    ['utf16be-bom', '\xfe\xff' + utf16be(REFUND_900)],
    ['utf32le', utf32(REFUND_900, false)],
    ['utf32be', utf32(REFUND_900, true)],
    ['utf32le-bom', '\xff\xfe\x00\x00' + utf32(REFUND_900, false)],
  ];
  const types: Array<[string, string | null]> = [
    ['no-content-type', null],
    ['text-plain', 'text/plain'],
    ['form', 'application/x-www-form-urlencoded'],
    ['octet-stream', 'application/octet-stream'],
    ['multipart-no-boundary', 'multipart/form-data'],
  ];
  const out: CorpusCase[] = [];
  for (const [enc, body] of bodies) {
    for (const [tname, ct] of types) {
      out.push({
        id: `redteam/encoding/${enc}/${tname}/py`,
        family: 'redteam-encoding',
        expect: 'refused',
        bytes: restPost('py', body, ct),
      });
    }
  }
  // The same bodies labelled application/json are refused today: the control of the family.
  out.push({
    id: 'redteam/encoding/utf16be/application-json/py',
    family: 'redteam-encoding',
    expect: 'refused',
    bytes: restPost('py', utf16be(REFUND_900)),
  });
  return out;
}

/** multipart/form-data without a boundary, and JSON in a multipart preamble. */
export function multipartCases(): CorpusCase[] {
  const fam = 'redteam-multipart';
  const REST_READERS: readonly Routed[] = ['go-json', 'py'];
  const noBoundary: Array<[string, string]> = [
    ['no-boundary', 'multipart/form-data'],
    ['no-boundary-charset', 'multipart/form-data; charset=utf-8'],
    ['no-boundary-upper', 'Multipart/Form-Data'],
    ['no-boundary-other-param', 'multipart/form-data; x=application/json'],
  ];
  const out: CorpusCase[] = [];
  for (const [name, ct] of noBoundary) {
    out.push(
      ...perTool(
        (tool) => ({
          id: `redteam/multipart/${name}/rest-900`,
          family: fam,
          expect: 'refused',
          bytes: restPost(tool, REFUND_900, ct),
        }),
        REST_READERS,
      ),
    );
    out.push({
      id: `redteam/multipart/${name}/rest-900/go-decoder`,
      family: fam,
      expect: 'refused',
      bytes: decoderPost(REFUND_900, ct),
    });
    // go-json's typed JSON-RPC handler decodes r.Body whatever its label.
    out.push(
      ...perTool((tool) => ({
        id: `redteam/multipart/${name}/mcp-delete`,
        family: fam,
        expect: 'refused',
        bytes: mcpPost(tool, DELETE, ct),
      })),
    );
  }
  // A valid multipart body whose preamble is a JSON object: the policy reads the part
  // (amount "1"), a json.Decoder reads the first JSON value (amount 900).
  const polyglot = `${REFUND_900}\r\n--b\r\nContent-Disposition: form-data; name="amount"\r\n\r\n1\r\n--b--\r\n`;
  out.push({
    id: 'redteam/multipart/json-preamble/go-decoder',
    family: fam,
    expect: 'refused',
    bytes: decoderPost(polyglot, 'multipart/form-data; boundary=b'),
  });
  out.push(
    ...perTool(
      (tool) => ({
        id: 'redteam/multipart/json-preamble',
        family: fam,
        expect: 'decided',
        bytes: restPost(tool, polyglot, 'multipart/form-data; boundary=b'),
      }),
      REST_READERS,
    ),
  );
  // Controls: a well-formed multipart form and a plain-text note still pass.
  const form = '--b\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n--b--\r\n';
  out.push(
    ...perTool(
      (tool) => ({
        id: 'redteam/multipart/control-form-data',
        family: fam,
        expect: 'pass',
        bytes: restPost(tool, form, 'multipart/form-data; boundary=b'),
      }),
      REST_READERS,
    ),
    ...perTool(
      (tool) => ({
        id: 'redteam/multipart/control-text-plain',
        family: fam,
        expect: 'pass',
        bytes: restPost(tool, 'a note, not JSON', 'text/plain; charset=utf-8'),
      }),
      REST_READERS,
    ),
  );
  const rpcPolyglot = `${DELETE}\r\n--b\r\nContent-Disposition: form-data; name="x"\r\n\r\n1\r\n--b--\r\n`;
  out.push(
    ...perTool((tool) => ({
      id: 'redteam/multipart/jsonrpc-preamble',
      family: fam,
      expect: 'refused',
      bytes: mcpPost(tool, rpcPolyglot, 'multipart/form-data; boundary=b'),
    })),
  );
  return out;
}

/** Trailing bytes after a JSON value, read by a Go handler with json.NewDecoder. */
export function decoderCases(): CorpusCase[] {
  const fam = 'redteam-decoder';
  const bodies: Array<[string, string, string | null, CorpusCase['expect']]> = [
    ['trailing-text/no-content-type', `${REFUND_900} x`, null, 'refused'],
    ['trailing-text/text-plain', `${REFUND_900}garbage`, 'text/plain', 'refused'],
    ['trailing-text/octet-stream', `${REFUND_900}\n\x00\x01`, 'application/octet-stream', 'refused'],
    ['two-documents/text-plain', `${REFUND_900}{"amount": 1}`, 'text/plain', 'refused'],
    ['two-documents-reversed/text-plain', `{"amount": 1}${REFUND_900}`, 'text/plain', 'decided'],
    ['trailing-bracket/no-content-type', `${REFUND_900}]`, null, 'refused'],
    ['form-json-then-pair', `${REFUND_900}&amount=1`, 'application/x-www-form-urlencoded', 'refused'],
    ['form-json', REFUND_900, 'application/x-www-form-urlencoded', 'refused'],
    ['trailing-invalid-utf8/text-plain', `${REFUND_900}\xff`, 'text/plain', 'refused'],
    ['trailing-text/application-json', `${REFUND_900} x`, 'application/json', 'refused'],
    ['plain/application-json', REFUND_900, 'application/json', 'decided'],
  ];
  const out: CorpusCase[] = bodies.map(([name, body, ct, expect]) => ({
    id: `redteam/decoder/${name}/go-decoder`,
    family: fam,
    expect,
    bytes: decoderPost(body, ct),
  }));
  // A typed JSON-RPC handler decoding the same stream (as net/rpc/jsonrpc's codec does).
  const rpcPost = (body: string, contentType: string | null): string =>
    raw(DECODER_HOST, {
      method: 'POST',
      path: '/mcp',
      headers: [...MCP_ACCEPT, ...(contentType === null ? [] : [['Content-Type', contentType] as [string, string]])],
      body,
    });
  const rpcBodies: Array<[string, string, string | null, CorpusCase['expect']]> = [
    [
      'rpc-multipart-preamble',
      `${DELETE}\r\n--b\r\nContent-Disposition: form-data; name="x"\r\n\r\n1\r\n--b--\r\n`,
      'multipart/form-data; boundary=b',
      'refused',
    ],
    ['rpc-multipart-no-boundary', DELETE, 'multipart/form-data', 'refused'],
    ['rpc-trailing-text/text-plain', `${DELETE} x`, 'text/plain', 'refused'],
    ['rpc-form', DELETE, 'application/x-www-form-urlencoded', 'refused'],
    ['rpc-then-lookup/application-json', `${DELETE}${LOOKUP}`, 'application/json', 'refused'],
  ];
  out.push(
    ...rpcBodies.map(([name, body, ct, expect]) => ({
      id: `redteam/decoder/${name}/go-decoder`,
      family: fam,
      expect,
      bytes: rpcPost(body, ct),
    })),
  );
  out.push({
    id: 'redteam/decoder/control-refund-10/go-decoder',
    family: fam,
    expect: 'pass',
    bytes: decoderPost('{"amount": 10, "kind": "refund", "name": "n"}', 'application/json'),
  });
  out.push({
    id: 'redteam/decoder/control-get/go-decoder',
    family: fam,
    expect: 'pass',
    bytes: raw(DECODER_HOST, { path: '/ok?x=1' }),
  });
  return out;
}

/** Bytes inside a tunnel that the gate calls opaque but HTTP servers parse as requests. */
export function opaqueCases(): CorpusCase[] {
  const fam = 'redteam-opaque';
  const admin = (tool: Routed, method = 'GET'): string => `${method} /admin HTTP/1.1\r\nHost: ${hostOf(tool)}\r\n\r\n`;
  const refund = (tool: Routed, prefix: string): string =>
    `${prefix}POST /refund HTTP/1.1\r\nHost: ${hostOf(tool)}\r\nContent-Type: application/json\r\nContent-Length: ${REFUND_900.length}\r\n\r\n${REFUND_900}`;
  const mcpDelete = (tool: Routed, prefix: string): string =>
    `${prefix}POST /mcp HTTP/1.1\r\nHost: ${hostOf(tool)}\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\nContent-Length: ${DELETE.length}\r\n\r\n${DELETE}`;
  const variants: Array<[string, (tool: Routed) => string, readonly Routed[]]> = [
    ['leading-crlf-admin', (tool) => `\r\n${admin(tool)}`, HTTP_STACKS],
    ['leading-lf-admin', (tool) => `\n${admin(tool)}`, HTTP_STACKS],
    ['leading-crlf-twice-admin', (tool) => `\r\n\r\n${admin(tool)}`, HTTP_STACKS],
    ['method-21-chars', (tool) => admin(tool, 'ABCDEFGHIJKLMNOPQRSTU'), HTTP_STACKS],
    ['leading-crlf-refund-900', (tool) => refund(tool, '\r\n'), ['go-json', 'py']],
    ['leading-crlf-mcp-delete', (tool) => mcpDelete(tool, '\r\n'), MCP_TOOLS],
    ['leading-space-admin', (tool) => ` ${admin(tool)}`, HTTP_STACKS],
    ['mixed-case-method', (tool) => admin(tool, 'Get'), HTTP_STACKS],
    ['digit-in-method', (tool) => admin(tool, 'M1'), HTTP_STACKS],
    ['long-method', (tool) => admin(tool, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'), HTTP_STACKS],
    ['dot-in-method', (tool) => admin(tool, 'GET.X'), HTTP_STACKS],
    ['h2c-prior-knowledge', (tool) => `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n${admin(tool)}`, HTTP_STACKS],
    [
      'connect-inside-tunnel',
      () =>
        `CONNECT blocked.test:80 HTTP/1.1\r\nHost: blocked.test:80\r\n\r\nGET / HTTP/1.1\r\nHost: blocked.test\r\n\r\n`,
      HTTP_STACKS,
    ],
  ];
  const out: CorpusCase[] = [];
  for (const [name, make, tools] of variants) {
    out.push(
      ...perTool(
        (tool) => ({
          id: `redteam/opaque/${name}`,
          family: fam,
          expect: 'decided',
          bytes: connectTo(`${hostOf(tool)}:80`),
          tunnel: make(tool),
        }),
        tools,
      ),
    );
  }
  // A client silent past connect.peekTimeoutMs (1 s): the tunnel is classified opaque
  // (server-speaks-first) and, when allowed, relayed; then it speaks HTTP.
  out.push(
    ...perTool(
      (tool) => ({
        id: 'redteam/opaque/silent-then-admin',
        family: fam,
        expect: 'decided',
        bytes: connectTo(`${hostOf(tool)}:80`),
        tunnel: admin(tool),
        tunnelDelayMs: 1300,
        timeoutMs: 3500,
      }),
      HTTP_STACKS,
    ),
    ...perTool(
      (tool) => ({
        id: 'redteam/opaque/silent-then-mcp-delete',
        family: fam,
        expect: 'decided',
        bytes: connectTo(`${hostOf(tool)}:80`),
        tunnel: mcpDelete(tool, ''),
        tunnelDelayMs: 1300,
        timeoutMs: 3500,
      }),
      ['go-mcp'],
    ),
  );
  return out;
}

/** Mcp-Method / Mcp-Name headers that disagree with the JSON-RPC body. */
export function mcpHeaderCases(): CorpusCase[] {
  const fam = 'redteam-mcp-headers';
  const variants: Array<[string, string, Array<[string, string]>, CorpusCase['expect']]> = [
    [
      'name-header-delete-body-lookup',
      LOOKUP,
      [
        ['Mcp-Method', 'tools/call'],
        ['Mcp-Name', 'delete_customer'],
      ],
      'refused',
    ],
    [
      'name-header-lookup-body-delete',
      DELETE,
      [
        ['Mcp-Method', 'tools/call'],
        ['Mcp-Name', 'lookup_order'],
      ],
      'refused',
    ],
    ['method-header-list-body-call', LOOKUP, [['Mcp-Method', 'tools/list']], 'refused'],
    [
      'name-header-twice',
      LOOKUP,
      [
        ['Mcp-Method', 'tools/call'],
        ['Mcp-Name', 'lookup_order'],
        ['Mcp-Name', 'delete_customer'],
      ],
      'refused',
    ],
    [
      'matching-headers',
      LOOKUP,
      [
        ['Mcp-Method', 'tools/call'],
        ['Mcp-Name', 'lookup_order'],
      ],
      'pass',
    ],
    [
      'session-id-twice',
      LOOKUP,
      [
        ['Mcp-Session-Id', 'a'],
        ['Mcp-Session-Id', 'b'],
      ],
      'decided',
    ],
  ];
  const out: CorpusCase[] = [];
  for (const [name, body, headers, expect] of variants) {
    out.push(
      ...perTool(
        (tool) => ({
          id: `redteam/mcp-headers/${name}`,
          family: fam,
          expect,
          bytes: mcpPost(tool, body, 'application/json', headers),
        }),
        MCP_TOOLS,
      ),
    );
  }
  return out;
}

/** Pipelining, CONNECT spellings, tunnels re-targeted, raw bytes in targets, prototype keys. */
export function miscCases(): CorpusCase[] {
  const fam = 'redteam-misc';
  const out: CorpusCase[] = [];
  const hidden = (tool: Routed): string => `GET /admin/pipelined HTTP/1.1\r\nHost: ${hostOf(tool)}\r\n\r\n`;
  out.push(
    // A denied request, then more requests on the same connection: each must be decided.
    ...perTool(
      (tool) => ({
        id: 'redteam/pipeline/denied-then-admin',
        family: fam,
        expect: 'decided',
        responses: 2,
        bytes: raw(hostOf(tool), { path: '/admin' }) + raw(hostOf(tool), { path: '/admin/2' }),
      }),
      HTTP_STACKS,
    ),
    ...perTool(
      (tool) => ({
        id: 'redteam/pipeline/denied-refund-then-ok-then-admin',
        family: fam,
        expect: 'decided',
        responses: 3,
        bytes: restPost(tool, REFUND_900) + raw(hostOf(tool), { path: '/ok' }) + hidden(tool),
      }),
      ['go-json', 'py'],
    ),
    ...perTool(
      (tool) => ({
        id: 'redteam/pipeline/refused-body-then-admin',
        family: fam,
        expect: 'decided',
        responses: 2,
        bytes: restPost(tool, '{"amount":1,"amount":900}') + hidden(tool),
      }),
      ['go-json', 'py'],
    ),
    ...perTool(
      (tool) => ({
        id: 'redteam/pipeline/in-tunnel-denied-then-admin',
        family: fam,
        expect: 'decided',
        responses: 2,
        bytes: connectTo(`${hostOf(tool)}:80`),
        tunnel: raw(hostOf(tool), { target: '/admin' }) + hidden(tool),
      }),
      HTTP_STACKS,
    ),
    ...perTool(
      (tool) => ({
        id: 'redteam/pipeline/in-tunnel-mcp-lookup-then-delete',
        family: fam,
        expect: 'decided',
        responses: 2,
        bytes: connectTo(`${hostOf(tool)}:80`),
        tunnel:
          raw(hostOf(tool), {
            target: '/mcp',
            method: 'POST',
            headers: [...MCP_ACCEPT, ['Content-Type', 'application/json']],
            body: LOOKUP,
          }) +
          raw(hostOf(tool), {
            target: '/mcp',
            method: 'POST',
            headers: [...MCP_ACCEPT, ['Content-Type', 'application/json']],
            body: DELETE,
          }),
      }),
      MCP_TOOLS,
    ),
    ...perTool(
      (tool) => ({
        id: 'redteam/pipeline/upgrade-refused-then-admin',
        family: fam,
        expect: 'decided',
        responses: 2,
        bytes:
          raw(hostOf(tool), {
            path: '/ok',
            headers: [
              ['Connection', 'Upgrade'],
              ['Upgrade', 'h2c'],
            ],
          }) + hidden(tool),
      }),
      HTTP_STACKS,
    ),
  );
  // CONNECT authority spellings of a denied host.
  for (const [name, authority] of [
    ['trailing-dot', 'blocked.test.:80'],
    ['upper', 'BLOCKED.TEST:80'],
    ['port-leading-zero', 'blocked.test:080'],
    ['ipv6-mapped-denied', '[::ffff:127.0.0.9]:80'],
    ['hex-ip', '0x7f.0.0.9:80'],
    ['decimal-ip', '2130706441:80'],
  ] as const) {
    out.push({
      id: `redteam/connect/${name}`,
      family: fam,
      expect: 'refused',
      bytes: connectTo(authority),
      tunnel: 'GET / HTTP/1.1\r\nHost: blocked.test\r\n\r\n',
    });
  }
  // Inside a tunnel: requests aimed elsewhere than the tunnel.
  out.push(
    ...perTool(
      (tool) => ({
        id: 'redteam/tunnel/absolute-form-other-host',
        family: fam,
        expect: 'refused',
        bytes: connectTo(`${hostOf(tool)}:80`),
        tunnel: raw('blocked.test', { path: '/' }),
      }),
      HTTP_STACKS,
    ),
    ...perTool(
      (tool) => ({
        id: 'redteam/tunnel/host-other-port',
        family: fam,
        expect: 'refused',
        bytes: connectTo(`${hostOf(tool)}:80`),
        tunnel: raw(hostOf(tool), { target: '/admin', host: `${hostOf(tool)}:8080` }),
      }),
      HTTP_STACKS,
    ),
    ...perTool(
      (tool) => ({
        id: 'redteam/tunnel/no-host-http10',
        family: fam,
        expect: 'decided',
        bytes: connectTo(`${hostOf(tool)}:80`),
        tunnel: raw(hostOf(tool), { target: '/admin', host: null, version: 'HTTP/1.0' }),
      }),
      HTTP_STACKS,
    ),
  );
  // Raw (unescaped) non-ASCII bytes in the request-target.
  for (const [name, path, expect] of [
    ['raw-fullwidth-solidus', utf8('/x\uff0f..\uff0fadmin'), 'refused'],
    ['raw-overlong-dot', '/x/\xc0\xae\xc0\xae/admin', 'refused'],
    ['raw-invalid-byte', '/\xff/../admin', 'refused'],
    ['raw-utf8-letter', utf8('/adm\u0131n'), 'decided'],
    ['raw-latin1-letter', '/adm\xedn', 'decided'],
  ] as const) {
    out.push(
      ...perTool(
        (tool) => ({ id: `redteam/target/${name}`, family: fam, expect, bytes: raw(hostOf(tool), { path }) }),
        HTTP_STACKS,
      ),
    );
  }
  out.push(
    ...perTool(
      (tool) => ({
        id: 'redteam/target/options-asterisk',
        family: fam,
        expect: 'refused',
        bytes: `OPTIONS * HTTP/1.1\r\nHost: ${hostOf(tool)}\r\n\r\n`,
      }),
      HTTP_STACKS,
    ),
    ...perTool(
      (tool) => ({
        id: 'redteam/target/absolute-no-path-query',
        family: fam,
        expect: 'decided',
        bytes: raw(hostOf(tool), { target: `http://${hostOf(tool)}?x=1` }),
      }),
      HTTP_STACKS,
    ),
    ...perTool(
      (tool) => ({
        id: 'redteam/target/port-leading-zeros',
        family: fam,
        expect: 'decided',
        bytes: raw(hostOf(tool), { target: `http://${hostOf(tool)}:0080/admin`, host: `${hostOf(tool)}:0080` }),
      }),
      HTTP_STACKS,
    ),
  );
  // Header spellings the brief of a firewall review lists: codings, parameters, forwarding headers, methods.
  const codingBody = DELETE;
  for (const [name, headers, expect] of [
    ['coding-Identity', [['Content-Encoding', 'Identity']], 'decided'],
    ['coding-gzip-trailing-space', [['Content-Encoding', 'gzip ']], 'refused'],
    [
      'coding-empty-then-gzip',
      [
        ['Content-Encoding', ''],
        ['Content-Encoding', 'gzip'],
      ],
      'refused',
    ],
    ['coding-identity-gzip', [['Content-Encoding', 'identity, gzip']], 'refused'],
    ['charset-twice', [['X-Dummy', '1']], 'refused'],
  ] as Array<[string, Array<[string, string]>, CorpusCase['expect']]>) {
    const ct = name === 'charset-twice' ? 'application/json; charset=utf-8; charset=utf-16' : 'application/json';
    out.push(
      ...perTool(
        (tool) => ({
          id: `redteam/headers/${name}`,
          family: fam,
          expect,
          bytes: mcpPost(tool, codingBody, ct, headers),
        }),
        MCP_TOOLS,
      ),
    );
  }
  out.push(
    ...perTool(
      (tool) => ({
        id: 'redteam/headers/x-forwarded-host-blocked',
        family: fam,
        expect: 'decided',
        bytes: raw(hostOf(tool), {
          path: '/ok',
          headers: [
            ['X-Forwarded-Host', 'blocked.test'],
            ['Forwarded', 'host=blocked.test;proto=https'],
            ['X-Forwarded-Proto', 'https'],
          ],
        }),
      }),
      HTTP_STACKS,
    ),
    ...perTool(
      (tool) => ({
        id: 'redteam/headers/trailer-content-type',
        family: fam,
        expect: 'decided',
        bytes: raw(hostOf(tool), {
          method: 'POST',
          path: '/mcp',
          headers: [
            ...MCP_ACCEPT,
            ['Content-Type', 'application/json'],
            ['Transfer-Encoding', 'chunked'],
            ['Trailer', 'Content-Type'],
          ],
          body: `${DELETE.length.toString(16)}\r\n${DELETE}\r\n0\r\nContent-Type: text/plain\r\n\r\n`,
        }),
      }),
      MCP_TOOLS,
    ),
    ...perTool(
      (tool) => ({
        id: 'redteam/headers/long-header-before-delete',
        family: fam,
        expect: 'decided',
        bytes: mcpPost(tool, DELETE, 'application/json', [['X-Pad', 'p'.repeat(15_000)]]),
      }),
      MCP_TOOLS,
    ),
    ...perTool(
      (tool) => ({
        id: 'redteam/method/lower-case-plain-listener',
        family: fam,
        expect: 'refused',
        bytes: raw(hostOf(tool), { method: 'get', path: '/admin' }),
      }),
      HTTP_STACKS,
    ),
    ...perTool(
      (tool) => ({
        id: 'redteam/method/unknown-plain-listener',
        family: fam,
        expect: 'refused',
        bytes: raw(hostOf(tool), { method: 'FOO', path: '/admin' }),
      }),
      HTTP_STACKS,
    ),
    ...perTool(
      (tool) => ({
        id: 'redteam/method/query-with-body',
        family: fam,
        expect: 'decided',
        bytes: raw(hostOf(tool), {
          method: 'QUERY',
          path: '/refund',
          headers: [['Content-Type', 'application/json']],
          body: REFUND_900,
        }),
      }),
      ['go-json', 'py'],
    ),
  );
  // Keys JavaScript treats specially: the policy must still see them as plain members.
  out.push(
    ...perTool(
      (tool) => ({
        id: 'redteam/json/proto-key-rest',
        family: fam,
        expect: 'decided',
        bytes: restPost(tool, '{"amount":1,"__proto__":{"amount":900}}'),
      }),
      ['go-json', 'py'],
    ),
    ...perTool((tool) => ({
      id: 'redteam/json/proto-key-argument',
      family: fam,
      expect: 'decided',
      bytes: mcpPost(
        tool,
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"lookup_order","arguments":{"__proto__":{"amount":900}}}}',
      ),
    })),
    ...perTool((tool) => ({
      id: 'redteam/json/proto-key-params',
      family: fam,
      expect: 'refused',
      bytes: mcpPost(
        tool,
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"lookup_order","arguments":{},"__proto__":{"name":"delete_customer"}}}',
      ),
    })),
    ...perTool(
      (tool) => ({
        id: 'redteam/json/name-fullwidth',
        family: fam,
        expect: 'decided',
        bytes: mcpPost(tool, utf8(mcpCall('\uff44elete_customer'))),
      }),
      MCP_TOOLS,
    ),
    ...perTool(
      (tool) => ({
        id: 'redteam/json/name-case',
        family: fam,
        expect: 'decided',
        bytes: mcpPost(tool, mcpCall('Delete_Customer')),
      }),
      MCP_TOOLS,
    ),
    ...perTool(
      (tool) => ({
        id: 'redteam/json/name-trailing-space',
        family: fam,
        expect: 'decided',
        bytes: mcpPost(tool, mcpCall('delete_customer ')),
      }),
      MCP_TOOLS,
    ),
    ...perTool((tool) => ({
      id: 'redteam/json/arguments-as-string',
      family: fam,
      expect: 'refused',
      bytes: mcpPost(
        tool,
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"refund","arguments":"{\\"amount\\":900}"}}',
      ),
    })),
    ...perTool(
      (tool) => ({
        id: 'redteam/json/batch-initialize-and-delete',
        family: fam,
        expect: 'decided',
        bytes: mcpPost(
          tool,
          `[{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}},${DELETE}]`,
        ),
      }),
      MCP_TOOLS,
    ),
    ...perTool((tool) => ({
      id: 'redteam/json/notification-delete',
      family: fam,
      expect: 'decided',
      bytes: mcpPost(
        tool,
        '{"jsonrpc":"2.0","method":"tools/call","params":{"name":"delete_customer","arguments":{}}}',
      ),
    })),
    ...perTool((tool) => ({
      id: 'redteam/json/id-object',
      family: fam,
      expect: 'refused',
      bytes: mcpPost(tool, DELETE.replace('"id":1', '"id":{"a":1}')),
    })),
  );
  return out;
}

/** Every red-team family. */
export function redteamCases(): CorpusCase[] {
  return [
    ...encodingCases(),
    ...multipartCases(),
    ...decoderCases(),
    ...opaqueCases(),
    ...mcpHeaderCases(),
    ...miscCases(),
  ];
}
