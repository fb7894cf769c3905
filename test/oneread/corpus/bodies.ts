/**
 * Corpus families about bodies: media types, charsets, content codings, JSON that
 * different decoders read differently (duplicate and case-colliding keys, numbers,
 * Unicode, padding), JSON-RPC batches, and bodies past the 64 KiB buffer hiding a call.
 */
import { deflateSync, gzipSync, brotliCompressSync } from 'node:zlib';
import {
  type CorpusCase,
  hostOf,
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
/** Families that parse a REST body whatever its media type (Go map/struct, Starlette). */
const REST_READERS: readonly Routed[] = ['go-json', 'py'];

/** Media types: case, parameters, suffixes, lists, absence. */
export function mediaTypeCases(): CorpusCase[] {
  const types: Array<[string, string | null]> = [
    ['missing', null],
    ['empty', ''],
    ['Application-JSON', 'Application/JSON'],
    ['APPLICATION-JSON', 'APPLICATION/JSON'],
    ['application-JSON', 'application/JSON'],
    ['text-plain', 'text/plain'],
    ['text-plain-utf8', 'text/plain; charset=utf-8'],
    ['json-charset-upper', 'application/json;charset=UTF-8'],
    ['json-charset-quoted-spaced', 'application/json ; charset="utf-8"'],
    ['vnd-plus-json', 'application/vnd.api+json'],
    ['json-rpc', 'application/json-rpc'],
    ['text-json', 'text/json'],
    ['form', 'application/x-www-form-urlencoded'],
    ['octet-stream', 'application/octet-stream'],
    ['multipart', 'multipart/form-data; boundary=x'],
    ['list-json-first', 'application/json, text/plain'],
    ['list-json-second', 'text/plain, application/json'],
    ['jsonp', 'application/jsonp'],
    ['param-only', ';application/json'],
    ['text-plain-param-json', 'text/plain; x=application/json'],
  ];
  const out: CorpusCase[] = [];
  for (const [name, ct] of types) {
    out.push(
      ...perTool((tool) => ({
        id: `media/${name}/mcp-delete`,
        family: 'media-type',
        expect: 'decided',
        bytes: mcpPost(tool, DELETE, ct),
      })),
    );
    out.push(
      ...perTool(
        (tool) => ({
          id: `media/${name}/rest-900`,
          family: 'media-type',
          expect: 'decided',
          bytes: restPost(tool, '{"amount": 900}', ct),
        }),
        REST_READERS,
      ),
    );
  }
  out.push(
    ...perTool((tool) => ({
      id: 'media/duplicate-header-text-then-json',
      family: 'media-type',
      expect: 'decided',
      bytes: mcpPost(tool, DELETE, 'text/plain', [['Content-Type', 'application/json']]),
    })),
    ...perTool((tool) => ({
      id: 'media/duplicate-header-json-then-text',
      family: 'media-type',
      expect: 'decided',
      bytes: mcpPost(tool, DELETE, 'application/json', [['Content-Type', 'text/plain']]),
    })),
  );
  return out;
}

function utf16le(text: string, bom: boolean): string {
  return (bom ? '\xff\xfe' : '') + Buffer.from(text, 'utf16le').toString('latin1');
}

function utf16be(text: string): string {
  const le = Buffer.from(text, 'utf16le');
  for (let i = 0; i + 1 < le.length; i += 2) [le[i], le[i + 1]] = [le[i + 1]!, le[i]!];
  return le.toString('latin1');
}

function utf32le(text: string): string {
  const out = Buffer.alloc(text.length * 4);
  for (let i = 0; i < text.length; i++) out.writeUInt32LE(text.charCodeAt(i), i * 4);
  return out.toString('latin1');
}

/** Charsets other than UTF-8, BOMs, and UTF-16/32 bodies a Python json.loads would detect. */
export function charsetCases(): CorpusCase[] {
  const variants: Array<[string, string | null, string, CorpusCase['expect']]> = [
    ['utf16-bom-declared', 'application/json; charset=utf-16', utf16le(DELETE, true), 'refused'],
    ['utf16le-declared', 'application/json; charset=utf-16le', utf16le(DELETE, false), 'refused'],
    ['utf16be-declared', 'application/json; charset=UTF-16BE', utf16be(DELETE), 'refused'],
    ['utf16le-undeclared', 'application/json', utf16le(DELETE, false), 'refused'],
    ['utf16le-no-content-type', null, utf16le(DELETE, false), 'refused'],
    ['utf32le-undeclared', 'application/json', utf32le(DELETE), 'refused'],
    [
      'latin1-declared',
      'application/json; charset=iso-8859-1',
      mcpCall('delete_customer', { note: 'caf\xe9' }),
      'refused',
    ],
    ['utf8-bom', 'application/json', '\xef\xbb\xbf' + DELETE, 'refused'],
    ['utf8-bom-no-content-type', null, '\xef\xbb\xbf' + DELETE, 'refused'],
    ['us-ascii', 'application/json; charset=us-ascii', DELETE, 'decided'],
  ];
  const out: CorpusCase[] = [];
  for (const [name, ct, body, expect] of variants) {
    out.push(
      ...perTool((tool) => ({ id: `charset/${name}`, family: 'charset', expect, bytes: mcpPost(tool, body, ct) })),
    );
  }
  out.push(
    ...perTool(
      (tool) => ({
        id: 'charset/utf16le-rest-900',
        family: 'charset',
        expect: 'refused',
        bytes: restPost(tool, utf16le('{"amount": 900}', false)),
      }),
      REST_READERS,
    ),
  );
  return out;
}

/** Content codings the policy cannot see through. */
export function codingCases(): CorpusCase[] {
  const plain = Buffer.from(DELETE);
  const variants: Array<[string, string, string, CorpusCase['expect']]> = [
    ['gzip', 'gzip', gzipSync(plain).toString('latin1'), 'refused'],
    ['GZIP-upper', 'GZIP', gzipSync(plain).toString('latin1'), 'refused'],
    ['deflate', 'deflate', deflateSync(plain).toString('latin1'), 'refused'],
    ['br', 'br', brotliCompressSync(plain).toString('latin1'), 'refused'],
    ['gzip-identity-list', 'gzip, identity', gzipSync(plain).toString('latin1'), 'refused'],
    ['unknown-coding-plain-body', 'x-unknown', DELETE, 'refused'],
    ['identity', 'identity', DELETE, 'decided'],
  ];
  const out: CorpusCase[] = [];
  for (const [name, coding, body, expect] of variants) {
    out.push(
      ...perTool((tool) => ({
        id: `coding/${name}`,
        family: 'content-coding',
        expect,
        bytes: mcpPost(tool, body, 'application/json', [['Content-Encoding', coding]]),
      })),
    );
  }
  const chunkedGzip = (): string => {
    const z = gzipSync(plain).toString('latin1');
    return `${z.length.toString(16)}\r\n${z}\r\n0\r\n\r\n`;
  };
  out.push(
    ...perTool((tool) => ({
      id: 'coding/transfer-encoding-gzip-chunked',
      family: 'content-coding',
      expect: 'refused',
      bytes: raw(hostOf(tool), {
        method: 'POST',
        path: '/mcp',
        headers: [...MCP_ACCEPT, ['Content-Type', 'application/json'], ['Transfer-Encoding', 'gzip, chunked']],
        body: chunkedGzip(),
      }),
    })),
  );
  return out;
}

/** JSON texts that decoders read differently. */
export function jsonCases(): CorpusCase[] {
  const rpc = (params: string, extra = ''): string =>
    `{"jsonrpc":"2.0","id":1,"method":"tools/call",${extra}"params":${params}}`;
  const mcpBodies: Array<[string, string, CorpusCase['expect']]> = [
    ['dup-name-delete-last', rpc('{"name":"lookup_order","name":"delete_customer","arguments":{}}'), 'refused'],
    ['dup-name-delete-first', rpc('{"name":"delete_customer","name":"lookup_order","arguments":{}}'), 'refused'],
    [
      'dup-params',
      rpc('{"name":"lookup_order","arguments":{}}', '"params":{"name":"delete_customer","arguments":{}},'),
      'refused',
    ],
    [
      'dup-method',
      '{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"delete_customer","arguments":{}}}',
      'refused',
    ],
    ['dup-arguments-amount', rpc('{"name":"refund","arguments":{"amount":1,"amount":900}}'), 'refused'],
    ['case-Name-after', rpc('{"name":"lookup_order","Name":"delete_customer","arguments":{}}'), 'refused'],
    ['case-NAME-before', rpc('{"NAME":"delete_customer","name":"lookup_order","arguments":{}}'), 'refused'],
    [
      'case-Params',
      rpc('{"name":"lookup_order","arguments":{}}', '"Params":{"name":"delete_customer","arguments":{}},'),
      'refused',
    ],
    [
      'case-long-s-params',
      utf8(
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"lookup_order","arguments":{}},"para\u017fms":{"name":"delete_customer","arguments":{}}}',
      ),
      'decided',
    ],
    [
      'case-Method',
      '{"jsonrpc":"2.0","id":1,"method":"tools/list","Method":"tools/call","params":{"name":"delete_customer","arguments":{}}}',
      'refused',
    ],
    ['case-Amount-argument', rpc('{"name":"refund","arguments":{"amount":1,"Amount":900}}'), 'refused'],
    ['escaped-name', rpc('{"name":"\\u0064elete_customer","arguments":{}}'), 'decided'],
    // V8's JSON.parse reads an escaped name as the name of an earlier shape ending in a
    // backslash (src/input/exact-json.ts): the inner object primes "amoun\\", the outer one
    // then spells "amount" with an escape.
    [
      'escaped-name-after-backslash-shape',
      rpc('{"name":"refund","arguments":{"q":{"q":1,"q2":1,"amoun\\\\":0},"q2":1,"amoun\\u0074":900}}'),
      'decided',
    ],
    ['lone-surrogate-in-name', rpc('{"name":"delete_customer\\ud800","arguments":{}}'), 'refused'],
    ['lone-surrogate-in-argument', rpc('{"name":"lookup_order","arguments":{"id":"\\udc00x"}}'), 'refused'],
    ['nul-in-name', rpc('{"name":"delete_customer\\u0000","arguments":{}}'), 'decided'],
    ['invalid-utf8-byte', rpc('{"name":"lookup_order","arguments":{"id":"\xff"}}'), 'refused'],
    ['invalid-utf8-in-name', rpc('{"name":"delete_customer\xff","arguments":{}}'), 'refused'],
    ['overlong-utf8', rpc('{"name":"lookup_order","arguments":{"id":"\xc0\xae"}}'), 'refused'],
    ['surrogate-as-utf8-bytes', rpc('{"name":"lookup_order","arguments":{"id":"\xed\xa0\x80"}}'), 'refused'],
    ['leading-whitespace', `\r\n\t ${DELETE}`, 'decided'],
    ['trailing-whitespace', `${DELETE} \r\n`, 'decided'],
    ['trailing-garbage', `${DELETE}x`, 'refused'],
    ['two-documents', `${mcpCall('lookup_order')}${DELETE}`, 'refused'],
    ['trailing-comma', DELETE.replace(/}$/, ',}'), 'refused'],
    ['comment', `/*x*/${DELETE}`, 'refused'],
    ['single-quotes', DELETE.replace(/"/g, "'"), 'refused'],
    ['big-id', rpc('{"name":"lookup_order","arguments":{"id":12345678901234567890}}'), 'refused'],
    ['big-amount-argument', rpc('{"name":"refund","arguments":{"amount":1e400}}'), 'refused'],
    ['amount-9e2', rpc('{"name":"refund","arguments":{"amount":9e2}}'), 'decided'],
    ['amount-past-precision', rpc('{"name":"refund","arguments":{"amount":500.0000000000000001}}'), 'refused'],
    ['amount-NaN', rpc('{"name":"refund","arguments":{"amount":NaN}}'), 'refused'],
    ['amount-Infinity', rpc('{"name":"refund","arguments":{"amount":Infinity}}'), 'refused'],
    [
      'deep-nesting',
      rpc(`{"name":"lookup_order","arguments":{"a":${'['.repeat(2000)}${']'.repeat(2000)}}}`),
      'decided',
    ],
  ];
  const out: CorpusCase[] = [];
  for (const [name, body, expect] of mcpBodies) {
    out.push(...perTool((tool) => ({ id: `json/${name}`, family: 'json', expect, bytes: mcpPost(tool, body) })));
  }
  const restBodies: Array<[string, string, CorpusCase['expect']]> = [
    ['rest-dup-amount', '{"amount":1,"amount":900}', 'refused'],
    [
      'rest-escaped-name-after-backslash-shape',
      '{"p":{"p":1,"zq7":1,"amoun\\\\":0},"zq7":1,"amoun\\u0074":900}',
      'decided',
    ],
    ['rest-dup-amount-reversed', '{"amount":900,"amount":1}', 'refused'],
    ['rest-case-Amount', '{"amount":1,"Amount":900}', 'refused'],
    ['rest-case-AMOUNT-first', '{"AMOUNT":900,"amount":1}', 'refused'],
    ['rest-kelvin-kind', '{"kind":"refund","\u212Aind":"chargeback","amount":1}', 'refused'],
    ['rest-amount-1e400', '{"amount":1e400}', 'refused'],
    ['rest-amount-long-digits', `{"amount":${'9'.repeat(400)}}`, 'refused'],
    ['rest-amount-tiny-exponent', '{"amount":1e-400}', 'refused'],
    ['rest-amount-past-precision', '{"amount":500.0000000000000001}', 'refused'],
    ['rest-amount-big-int', '{"amount":12345678901234567890123}', 'refused'],
    ['rest-amount-NaN', '{"amount":NaN}', 'refused'],
    ['rest-amount-minus-Infinity', '{"amount":-Infinity}', 'refused'],
    ['rest-amount-negative-zero', '{"amount":-0}', 'decided'],
    ['rest-amount-string', '{"amount":"900"}', 'decided'],
    ['rest-amount-900.0', '{"amount":900.0}', 'decided'],
  ];
  for (const [name, body, expect] of restBodies) {
    out.push(
      ...perTool(
        (tool) => ({ id: `json/${name}`, family: 'json', expect, bytes: restPost(tool, utf8(body)) }),
        REST_READERS,
      ),
    );
  }
  return out;
}

/** JSON-RPC batches, with malformed elements next to calls. */
export function batchCases(): CorpusCase[] {
  const lookup = mcpCall('lookup_order', { id: 'o-1' }, 1);
  const del = mcpCall('delete_customer', { id: 'c-1' }, 2);
  const variants: Array<[string, string, CorpusCase['expect']]> = [
    ['lookup-then-delete', `[${lookup},${del}]`, 'decided'],
    ['delete-alone', `[${del}]`, 'decided'],
    ['malformed-element-hides-delete', `[${del.replace('"jsonrpc":"2.0",', '')},${lookup}]`, 'refused'],
    ['jsonrpc-1.0-element', `[${del.replace('"2.0"', '"1.0"')}]`, 'refused'],
    ['jsonrpc-number-element', `[${del.replace('"2.0"', '2.0')}]`, 'refused'],
    [
      'notification-delete',
      `[{"jsonrpc":"2.0","method":"tools/call","params":{"name":"delete_customer","arguments":{}}}]`,
      'decided',
    ],
    ['non-object-element', `[${lookup},42]`, 'refused'],
    ['empty-batch', '[]', 'decided'],
    ['nested-batch', `[[${del}]]`, 'refused'],
    ['params-array', '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["delete_customer",{}]}', 'refused'],
    [
      'name-array',
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":["delete_customer"],"arguments":{}}}',
      'refused',
    ],
    [
      'arguments-array',
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"refund","arguments":[900]}}',
      'refused',
    ],
    ['duplicate-ids', `[${lookup},${del.replace('"id":2', '"id":1')}]`, 'decided'],
    ['method-upper', del.replace('tools/call', 'TOOLS/CALL'), 'decided'],
    ['method-trailing-space', del.replace('tools/call', 'tools/call '), 'decided'],
  ];
  const out: CorpusCase[] = [];
  for (const [name, body, expect] of variants) {
    out.push(
      ...perTool((tool) => ({ id: `batch/${name}`, family: 'json-rpc-batch', expect, bytes: mcpPost(tool, body) })),
    );
  }
  return out;
}

/** Bodies past the 64 KiB buffer with the deciding part at the end. */
export function truncationCases(): CorpusCase[] {
  const pad = 'x'.repeat(70_000);
  const hidden = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{"pad":"${pad}","id":"c-1"},"name":"delete_customer"}}`;
  const chunked = (body: string): string =>
    `${(body.length >> 1).toString(16)}\r\n${body.slice(0, body.length >> 1)}\r\n${(body.length - (body.length >> 1)).toString(16)}\r\n${body.slice(body.length >> 1)}\r\n0\r\n\r\n`;
  const fam = 'truncated-body';
  return [
    ...perTool((tool) => ({
      id: 'truncated/mcp-name-after-64k',
      family: fam,
      expect: 'refused',
      bytes: mcpPost(tool, hidden),
    })),
    ...perTool((tool) => ({
      id: 'truncated/mcp-name-after-64k-no-content-type',
      family: fam,
      expect: 'refused',
      bytes: mcpPost(tool, hidden, null),
    })),
    ...perTool((tool) => ({
      id: 'truncated/mcp-name-after-64k-text-plain',
      family: fam,
      expect: 'refused',
      bytes: mcpPost(tool, hidden, 'text/plain'),
    })),
    ...perTool((tool) => ({
      id: 'truncated/mcp-chunked-after-64k',
      family: fam,
      expect: 'refused',
      bytes: raw(hostOf(tool), {
        method: 'POST',
        path: '/mcp',
        headers: [...MCP_ACCEPT, ['Content-Type', 'application/json'], ['Transfer-Encoding', 'chunked']],
        body: chunked(hidden),
      }),
    })),
    ...perTool(
      (tool) => ({
        id: 'truncated/rest-amount-after-64k',
        family: fam,
        expect: 'refused',
        bytes: restPost(tool, `{"pad":"${pad}","amount":900}`),
      }),
      REST_READERS,
    ),
    ...perTool(
      (tool) => ({
        id: 'truncated/rest-amount-after-64k-no-content-type',
        family: fam,
        expect: 'refused',
        bytes: restPost(tool, `{"pad":"${pad}","amount":900}`, null),
      }),
      REST_READERS,
    ),
  ];
}

/** Every body family. */
export function bodyCases(): CorpusCase[] {
  return [
    ...mediaTypeCases(),
    ...charsetCases(),
    ...codingCases(),
    ...jsonCases(),
    ...batchCases(),
    ...truncationCases(),
  ];
}
