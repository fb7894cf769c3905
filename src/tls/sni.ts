/**
 * Reads a TLS ClientHello without consuming it (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2)
 * to learn the server name (RFC 6066 §3) and ALPN list (RFC 7301) before deciding
 * whether to intercept, tunnel or refuse. Only lengths inside the bytes seen are
 * trusted: every read is bounds-checked, and anything inconsistent is "malformed".
 */

/** What the first bytes of a connection are. */
export type ClientHelloResult =
  | { readonly kind: 'need-more' }
  | { readonly kind: 'not-tls' }
  | { readonly kind: 'malformed'; readonly reason: string }
  | { readonly kind: 'client-hello'; readonly serverName?: string; readonly alpn: readonly string[] };

/** Largest ClientHello accepted (handshake message bytes); real ones are under 2 KiB, with PQ key shares under 8 KiB. */
export const MAX_CLIENT_HELLO = 64 * 1024;

// RFC 1123 host name labels (SNI carries no trailing dot, RFC 6066 §3), plus "_" seen in the wild.
const HOST_NAME = /^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

/** True when the first byte could start a TLS handshake record. */
export function looksLikeTls(first: number): boolean {
  return first === 0x16;
}

/** Parses the ClientHello at the start of `data` (possibly spread over several records). */
export function parseClientHello(data: Buffer): ClientHelloResult {
  if (data.length === 0) return { kind: 'need-more' };
  if (data[0] !== 0x16) return { kind: 'not-tls' };
  // Reassemble the handshake bytes from consecutive handshake records.
  const parts: Buffer[] = [];
  let total = 0;
  let at = 0;
  let needed = -1;
  while (needed === -1 || total < needed) {
    if (data.length < at + 5) return { kind: 'need-more' };
    if (data[at] !== 0x16) return { kind: 'malformed', reason: 'handshake interrupted by another record type' };
    if (data[at + 1] !== 0x03) return { kind: 'malformed', reason: `record version ${data[at + 1]}.${data[at + 2]}` };
    const len = data.readUInt16BE(at + 3);
    if (len === 0 || len > 16384 + 2048) return { kind: 'malformed', reason: `record length ${len}` };
    if (data.length < at + 5 + len) return { kind: 'need-more' };
    parts.push(data.subarray(at + 5, at + 5 + len));
    total += len;
    at += 5 + len;
    if (needed === -1) {
      const first = Buffer.concat(parts);
      if (first.length < 4) continue;
      if (first[0] !== 0x01)
        return { kind: 'malformed', reason: `first handshake message is type ${first[0]}, not ClientHello` };
      needed = 4 + first.readUIntBE(1, 3);
      if (needed > MAX_CLIENT_HELLO) return { kind: 'malformed', reason: `ClientHello of ${needed} bytes` };
    }
  }
  return parseHello(Buffer.concat(parts).subarray(4, needed));
}

function parseHello(body: Buffer): ClientHelloResult {
  const bad = (reason: string): ClientHelloResult => ({ kind: 'malformed', reason });
  let at = 2 + 32; // legacy_version, random
  if (body.length < at + 1) return bad('truncated before session id');
  at += 1 + body[at]!;
  if (body.length < at + 2) return bad('truncated before cipher suites');
  at += 2 + body.readUInt16BE(at);
  if (body.length < at + 1) return bad('truncated before compression methods');
  at += 1 + body[at]!;
  if (at === body.length) return { kind: 'client-hello', alpn: [] }; // no extensions (TLS 1.0 style)
  if (body.length < at + 2) return bad('truncated before extensions');
  const end = at + 2 + body.readUInt16BE(at);
  if (end !== body.length) return bad('extensions length disagrees with the message length');
  at += 2;
  let serverName: string | undefined;
  let alpn: string[] = [];
  while (at < end) {
    if (end < at + 4) return bad('truncated extension header');
    const type = body.readUInt16BE(at);
    const len = body.readUInt16BE(at + 2);
    const ext = body.subarray(at + 4, at + 4 + len);
    if (ext.length !== len) return bad('truncated extension');
    at += 4 + len;
    if (type === 0) {
      if (serverName !== undefined) return bad('two server_name extensions');
      const name = parseServerName(ext);
      if (typeof name === 'object') return name;
      serverName = name;
    } else if (type === 16) {
      const list = parseAlpn(ext);
      if (list === undefined) return bad('malformed ALPN extension');
      alpn = list;
    }
  }
  return serverName === undefined ? { kind: 'client-hello', alpn } : { kind: 'client-hello', serverName, alpn };
}

function parseServerName(ext: Buffer): string | undefined | ClientHelloResult {
  if (ext.length === 0) return undefined; // server's empty echo; not expected from a client
  if (ext.length < 2 || ext.readUInt16BE(0) !== ext.length - 2)
    return { kind: 'malformed', reason: 'server_name list length' };
  let at = 2;
  while (at < ext.length) {
    if (ext.length < at + 3) return { kind: 'malformed', reason: 'truncated server name' };
    const type = ext[at]!;
    const len = ext.readUInt16BE(at + 1);
    const raw = ext.subarray(at + 3, at + 3 + len);
    if (raw.length !== len) return { kind: 'malformed', reason: 'truncated server name' };
    at += 3 + len;
    if (type !== 0) continue;
    const name = raw.toString('latin1').toLowerCase();
    if (!HOST_NAME.test(name))
      return { kind: 'malformed', reason: `invalid server name ${JSON.stringify(name.slice(0, 64))}` };
    return name;
  }
  return undefined;
}

function parseAlpn(ext: Buffer): string[] | undefined {
  if (ext.length < 2 || ext.readUInt16BE(0) !== ext.length - 2) return undefined;
  const out: string[] = [];
  let at = 2;
  while (at < ext.length) {
    const len = ext[at]!;
    if (len === 0 || at + 1 + len > ext.length) return undefined;
    out.push(ext.subarray(at + 1, at + 1 + len).toString('latin1'));
    at += 1 + len;
  }
  return out;
}
