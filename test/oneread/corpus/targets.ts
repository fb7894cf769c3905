/**
 * Corpus families about targets: paths that servers read differently (dot-segments,
 * path parameters, double escapes, overlong UTF-8, Unicode look-alikes of / \ .), hosts
 * (case, trailing dot, duplicates, absolute-form against Host, userinfo) and the many
 * spellings of an IPv4 address, including its IPv6-mapped forms.
 */
import { DENIED_IP } from '../harness.ts';
import { type CorpusCase, hostOf, HTTP_STACKS, perTool, raw } from './case.ts';

/** Paths aimed at the /admin rule. */
export function pathCases(): CorpusCase[] {
  const paths: Array<[string, string, CorpusCase['expect']]> = [
    ['dot-segment', '/./admin', 'decided'],
    ['dot-dot-segment', '/x/../admin', 'decided'],
    ['double-slash', '//admin', 'decided'],
    ['upper-case', '/ADMIN', 'decided'],
    ['escaped-letter', '/%61dmin', 'decided'],
    ['escaped-dots', '/x/%2e%2e/admin', 'decided'],
    ['escaped-dots-upper', '/x/%2E%2E/admin', 'decided'],
    ['escaped-slash', '/x/..%2fadmin', 'decided'],
    ['escaped-slash-first', '/%2fadmin', 'decided'],
    ['trailing-escaped-slash', '/admin%2f', 'decided'],
    ['fragment', '/admin#x', 'decided'],
    ['semicolon-dot-dot', '/x/..;/admin', 'refused'],
    ['semicolon-parameter', '/admin;x=1', 'refused'],
    ['semicolon-before-dot-dot', '/x;/../admin', 'refused'],
    ['semicolon-escaped', '/x/..%3b/admin', 'refused'],
    ['double-escape-letter', '/%2561dmin', 'refused'],
    ['double-escape-dots', '/x/%252e%252e/admin', 'refused'],
    ['double-escape-slash', '/x/..%252fadmin', 'refused'],
    ['overlong-dots', '/x/%c0%ae%c0%ae/admin', 'refused'],
    ['overlong-slash', '/x/..%c0%afadmin', 'refused'],
    ['overlong-3byte-dot', '/x/%e0%80%ae%e0%80%ae/admin', 'refused'],
    ['invalid-utf8', '/%ff/../admin', 'refused'],
    ['fullwidth-dots', '/x/%ef%bc%8e%ef%bc%8e/admin', 'refused'],
    ['fullwidth-solidus', '/x%ef%bc%8f..%ef%bc%8fadmin', 'refused'],
    ['fullwidth-reverse-solidus', '/x/..%ef%bc%bcadmin', 'refused'],
    ['one-dot-leader', '/x/%e2%80%a4%e2%80%a4/admin', 'refused'],
    ['division-slash', '/x/..%e2%88%95admin', 'refused'],
    ['escaped-backslash', '/x/..%5cadmin', 'refused'],
    ['raw-backslash', '/x\\..\\admin', 'refused'],
    ['nul-escape', '/admin%00', 'refused'],
    ['tab-escape', '/ad%09min', 'decided'],
  ];
  const out: CorpusCase[] = [];
  for (const [name, path, expect] of paths) {
    out.push(
      ...perTool(
        (tool) => ({ id: `path/${name}`, family: 'path', expect, bytes: raw(hostOf(tool), { path }) }),
        HTTP_STACKS,
      ),
    );
    out.push({ id: `path/${name}/origin-form/py`, family: 'path', expect, bytes: raw(hostOf('py'), { target: path }) });
  }
  const queries: Array<[string, string, CorpusCase['expect']]> = [
    ['query-semicolon', '/ok?a=1;b=2', 'decided'],
    ['query-escaped-key', '/ok?%61=1&a=2', 'decided'],
    ['query-invalid-utf8', '/ok?a=%ff', 'decided'],
    ['query-plus', '/ok?a=b+c&a=b%2Bc', 'decided'],
    ['query-bad-escape', '/ok?a=%zz', 'decided'],
  ];
  for (const [name, path, expect] of queries) {
    out.push(
      ...perTool(
        (tool) => ({ id: `path/${name}`, family: 'query', expect, bytes: raw(hostOf(tool), { path }) }),
        HTTP_STACKS,
      ),
    );
  }
  return out;
}

/** Hosts aimed at the blocked.test rule and the denied 127.0.0.9 destination. */
export function hostCases(deniedPort: number): CorpusCase[] {
  const fam = 'host';
  const out: CorpusCase[] = [
    ...perTool((tool) => ({
      id: 'host/absolute-allowed-host-header-blocked',
      family: fam,
      expect: 'decided',
      bytes: raw(hostOf(tool), { host: 'blocked.test' }),
    })),
    ...perTool((tool) => ({
      id: 'host/two-host-headers',
      family: fam,
      expect: 'refused',
      bytes: raw(hostOf(tool), { target: '/', headers: [['Host', 'blocked.test']] }),
    })),
    ...perTool((tool) => ({
      id: 'host/two-host-headers-blocked-first',
      family: fam,
      expect: 'refused',
      bytes: raw(hostOf(tool), { target: '/', host: 'blocked.test', headers: [['Host', hostOf(tool)]] }),
    })),
    ...perTool((tool) => ({
      id: 'host/userinfo-allowed-at-blocked',
      family: fam,
      expect: 'decided',
      bytes: raw(hostOf(tool), { target: `http://${hostOf(tool)}@blocked.test/`, host: 'blocked.test' }),
    })),
    ...perTool((tool) => ({
      id: 'host/absolute-form-https-scheme',
      family: fam,
      expect: 'decided',
      bytes: raw(hostOf(tool), { target: `https://${hostOf(tool)}/admin` }),
    })),
    ...perTool((tool) => ({
      id: 'host/http10-no-host',
      family: fam,
      expect: 'decided',
      bytes: raw(hostOf(tool), { target: '/admin', host: null, version: 'HTTP/1.0' }),
    })),
    ...perTool((tool) => ({
      id: 'host/http10-absolute-delete',
      family: fam,
      expect: 'decided',
      bytes: raw(hostOf(tool), { version: 'HTTP/1.0', path: '/admin' }),
    })),
  ];
  for (const [name, host, expect] of [
    ['upper', 'BLOCKED.TEST', 'decided'],
    ['trailing-dot', 'blocked.test.', 'decided'],
    ['explicit-port', 'blocked.test:80', 'decided'],
    ['mixed-case', 'Blocked.Test', 'decided'],
    ['escaped', 'blocked%2etest', 'refused'],
    ['leading-space', ' blocked.test', 'refused'],
    ['fullwidth-dot', 'blocked\uff0etest', 'refused'],
  ] as Array<[string, string, CorpusCase['expect']]>) {
    out.push({
      id: `host/origin-form/${name}`,
      family: fam,
      expect,
      bytes: raw('blocked.test', { target: '/', host: Buffer.from(host, 'utf8').toString('latin1') }),
    });
    out.push({
      id: `host/absolute-form/${name}`,
      family: fam,
      expect,
      bytes: raw('blocked.test', {
        target: `http://${Buffer.from(host, 'utf8').toString('latin1')}/`,
        host: Buffer.from(host, 'utf8').toString('latin1'),
      }),
    });
  }
  const ipForms: Array<[string, string]> = [
    ['dotted', DENIED_IP],
    ['decimal', '2130706441'],
    ['hex', '0x7f000009'],
    ['octal-parts', '0177.0.0.011'],
    ['zero-padded', '127.000.000.009'],
    ['two-parts', '127.9'],
    ['three-parts', '127.0.9'],
    ['hex-parts', '0x7f.0.0.0x9'],
    ['ipv6-mapped-dotted', '[::ffff:127.0.0.9]'],
    ['ipv6-mapped-hex', '[::ffff:7f00:9]'],
    ['ipv6-mapped-long', '[0:0:0:0:0:ffff:127.0.0.9]'],
    ['ipv6-compatible', '[::127.0.0.9]'],
    ['nat64', '[64:ff9b::7f00:9]'],
  ];
  for (const [name, addr] of ipForms) {
    out.push({ id: `ip/${name}`, family: 'ip', expect: 'refused', bytes: raw(`${addr}:${deniedPort}`, {}) });
    out.push({
      id: `ip/${name}/connect`,
      family: 'ip',
      expect: 'refused',
      bytes: `CONNECT ${addr}:${deniedPort} HTTP/1.1\r\nHost: ${addr}:${deniedPort}\r\n\r\n`,
      tunnel: `GET / HTTP/1.1\r\nHost: ${addr}:${deniedPort}\r\n\r\n`,
    });
  }
  return out;
}
