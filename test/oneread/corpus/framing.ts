/**
 * Corpus family about message framing: requests whose length two HTTP parsers would
 * read differently (Content-Length against Transfer-Encoding, duplicated or malformed
 * lengths, obs-fold, whitespace before the colon, bare LF), each hiding a second request
 * the policy denies; plus Expect: 100-continue, pipelining and HTTP/1.0.
 */
import { type CorpusCase, hostOf, HTTP_STACKS, mcpCall, MCP_ACCEPT, perTool, raw, type Routed } from './case.ts';

/** The request smuggled behind the first: a denied admin call, origin-form. */
function hidden(tool: Routed): string {
  return `GET /admin/smuggled HTTP/1.1\r\nHost: ${hostOf(tool)}\r\n\r\n`;
}

/** A JSON POST /ok whose framing headers are `headers` (verbatim) followed by `body`. */
function post(tool: Routed, headers: string[], body: string): string {
  return (
    [
      `POST http://${hostOf(tool)}/ok HTTP/1.1`,
      `Host: ${hostOf(tool)}`,
      'Content-Type: application/json',
      ...headers,
    ].join('\r\n') +
    '\r\n\r\n' +
    body
  );
}

/** Smuggling and framing cases. */
export function framingCases(): CorpusCase[] {
  const fam = 'framing';
  const cases: Array<[string, (tool: Routed) => string, CorpusCase['expect'], number?]> = [
    [
      'cl-te',
      (tool) => {
        const b = `0\r\n\r\n${hidden(tool)}`;
        return post(tool, [`Content-Length: ${b.length}`, 'Transfer-Encoding: chunked'], b);
      },
      'refused',
    ],
    [
      'te-cl',
      (tool) => {
        const b = `${(hidden(tool).length + 2).toString(16)}\r\nx=${hidden(tool)}\r\n0\r\n\r\n`;
        return post(tool, ['Transfer-Encoding: chunked', 'Content-Length: 4'], b);
      },
      'refused',
    ],
    [
      'te-chunked-identity',
      (tool) => {
        const b = `0\r\n\r\n${hidden(tool)}`;
        return post(tool, ['Transfer-Encoding: chunked, identity', `Content-Length: ${b.length}`], b);
      },
      'refused',
    ],
    [
      'te-identity-chunked',
      (tool) => post(tool, ['Transfer-Encoding: identity, chunked'], `0\r\n\r\n${hidden(tool)}`),
      'refused',
    ],
    [
      'te-Chunked-case',
      (tool) => {
        const b = `0\r\n\r\n${hidden(tool)}`;
        return post(tool, ['Transfer-Encoding: Chunked', `Content-Length: ${b.length}`], b);
      },
      'refused',
    ],
    [
      'te-xchunked',
      (tool) => {
        const b = `0\r\n\r\n${hidden(tool)}`;
        return post(tool, ['Transfer-Encoding: xchunked', `Content-Length: ${b.length}`], b);
      },
      'refused',
    ],
    [
      'te-tab',
      (tool) => {
        const b = `0\r\n\r\n${hidden(tool)}`;
        return post(tool, ['Transfer-Encoding:\tchunked', `Content-Length: ${b.length}`], b);
      },
      'refused',
    ],
    [
      'te-twice',
      (tool) => post(tool, ['Transfer-Encoding: chunked', 'Transfer-Encoding: identity'], `0\r\n\r\n${hidden(tool)}`),
      'refused',
    ],
    [
      'te-space-before-colon',
      (tool) => {
        const b = `0\r\n\r\n${hidden(tool)}`;
        return post(tool, ['Transfer-Encoding : chunked', `Content-Length: ${b.length}`], b);
      },
      'refused',
    ],
    [
      'te-obs-fold',
      (tool) => {
        const b = `0\r\n\r\n${hidden(tool)}`;
        return post(tool, ['X-A: 1', ' Transfer-Encoding: chunked', `Content-Length: ${b.length}`], b);
      },
      'refused',
    ],
    [
      'te-on-http10',
      (tool) => {
        const b = `0\r\n\r\n${hidden(tool)}`;
        return post(tool, ['Transfer-Encoding: chunked', `Content-Length: ${b.length}`], b).replace(
          'HTTP/1.1',
          'HTTP/1.0',
        );
      },
      'refused',
    ],
    [
      'cl-duplicate-differing',
      (tool) => post(tool, ['Content-Length: 0', `Content-Length: ${hidden(tool).length}`], hidden(tool)),
      'refused',
    ],
    ['cl-list', (tool) => post(tool, [`Content-Length: 0, ${hidden(tool).length}`], hidden(tool)), 'refused'],
    ['cl-plus-sign', (tool) => post(tool, [`Content-Length: +${hidden(tool).length}`], hidden(tool)), 'refused'],
    [
      'cl-hex',
      (tool) => post(tool, [`Content-Length: 0x${hidden(tool).length.toString(16)}`], hidden(tool)),
      'refused',
    ],
    [
      'cl-space-before-colon',
      (tool) => post(tool, [`Content-Length : ${hidden(tool).length}`], hidden(tool)),
      'refused',
    ],
    ['cl-duplicate-equal', (tool) => post(tool, ['Content-Length: 2', 'Content-Length: 2'], '{}'), 'decided'],
    [
      'chunk-size-leading-zeros',
      (tool) => post(tool, ['Transfer-Encoding: chunked'], `00000002\r\n{}\r\n0\r\n\r\n`),
      'decided',
    ],
    [
      'chunk-extension',
      (tool) =>
        post(tool, ['Transfer-Encoding: chunked'], `2;ext="${hidden(tool).replace(/\r\n/g, ' ')}"\r\n{}\r\n0\r\n\r\n`),
      'decided',
    ],
    ['chunk-bare-lf', (tool) => post(tool, ['Transfer-Encoding: chunked'], `2\n{}\n0\n\n${hidden(tool)}`), 'refused'],
    [
      'chunk-size-overflow',
      (tool) => post(tool, ['Transfer-Encoding: chunked'], `10000000000000002\r\n{}\r\n0\r\n\r\n${hidden(tool)}`),
      'refused',
    ],
    [
      'trailer-content-length',
      (tool) => post(tool, ['Transfer-Encoding: chunked'], `2\r\n{}\r\n0\r\nContent-Length: 999\r\n\r\n`),
      'decided',
    ],
    ['bare-lf-headers', (tool) => `GET http://${hostOf(tool)}/admin HTTP/1.1\nHost: ${hostOf(tool)}\n\n`, 'decided'],
    ['nul-in-header', (tool) => raw(hostOf(tool), { path: '/ok', headers: [['X-A', 'a\x00b']] }), 'refused'],
    [
      'cr-in-header-value',
      (tool) => raw(hostOf(tool), { path: '/ok', headers: [['X-A', 'a\rTransfer-Encoding: chunked']] }),
      'refused',
    ],
    ['body-longer-than-length', (tool) => post(tool, ['Content-Length: 2'], `{}${hidden(tool)}`), 'decided', 2],
    [
      'pipelined-allowed-then-admin',
      (tool) => raw(hostOf(tool), { path: '/ok' }) + raw(hostOf(tool), { path: '/admin' }),
      'decided',
      2,
    ],
    [
      'get-with-denied-body',
      (tool) =>
        raw(hostOf(tool), {
          method: 'GET',
          path: '/mcp',
          headers: [...MCP_ACCEPT, ['Content-Type', 'application/json']],
          body: mcpCall('delete_customer', { id: 'c-1' }),
        }),
      'decided',
    ],
    [
      'expect-100-continue-delete',
      (tool) =>
        raw(hostOf(tool), {
          method: 'POST',
          path: '/mcp',
          headers: [...MCP_ACCEPT, ['Content-Type', 'application/json'], ['Expect', '100-continue']],
          body: mcpCall('delete_customer', { id: 'c-1' }),
        }),
      'decided',
    ],
    [
      'expect-100-continue-upper',
      (tool) =>
        raw(hostOf(tool), {
          method: 'POST',
          path: '/refund',
          headers: [
            ['Content-Type', 'application/json'],
            ['Expect', '100-Continue'],
          ],
          body: '{"amount":900}',
        }),
      'decided',
    ],
    [
      'http10-post-delete',
      (tool) =>
        raw(hostOf(tool), {
          method: 'POST',
          path: '/mcp',
          version: 'HTTP/1.0',
          headers: [...MCP_ACCEPT, ['Content-Type', 'application/json']],
          body: mcpCall('delete_customer', { id: 'c-1' }),
        }),
      'decided',
    ],
    ['http09-style', (tool) => `GET /admin\r\n\r\n${hidden(tool)}`, 'refused'],
    [
      'method-override-header',
      (tool) =>
        raw(hostOf(tool), {
          method: 'POST',
          path: '/orders/o-1',
          headers: [
            ['X-HTTP-Method-Override', 'DELETE'],
            ['Content-Type', 'application/json'],
          ],
          body: '{}',
        }),
      'decided',
    ],
    [
      'absolute-form-host-mismatch-path',
      (tool) =>
        raw(hostOf(tool), {
          target: `http://${hostOf(tool)}/ok`,
          headers: [
            ['X-Original-URL', '/admin'],
            ['X-Rewrite-URL', '/admin'],
          ],
        }),
      'decided',
    ],
  ];
  const out: CorpusCase[] = [];
  for (const [name, make, expect, responses] of cases) {
    out.push(
      ...perTool(
        (tool) => ({
          id: `framing/${name}`,
          family: fam,
          expect,
          bytes: make(tool),
          ...(responses ? { responses } : {}),
        }),
        HTTP_STACKS,
      ),
    );
  }
  return out;
}
