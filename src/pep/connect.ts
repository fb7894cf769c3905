/**
 * CONNECT on the outbound listener (RFC 9110 §9.3.6). The policy decides on the
 * tunnel — method CONNECT, `host` = the authority, the agent — before any byte
 * flows. Then, per destination: "tunnel" relays TLS (an L4 decision, plus a second
 * decision when the ClientHello names another host than the CONNECT), "intercept"
 * terminates TLS with a leaf from the local CA and decides on every request inside.
 * In either mode plain HTTP inside the tunnel is decided request by request, and
 * bytes that are neither TLS nor HTTP are refused unless the policy allows the
 * "opaque" phase.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { TollgateError } from '../errors.ts';
import { normalizeHost } from '../http/normalize.ts';
import { errorReply } from '../enforce/reply.ts';
import { peerSpiffeId } from '../identity/mtls.ts';
import type { Socket } from 'node:net';
import type { Interceptor } from './intercept.ts';
import {
  authorityOf,
  awaitAfterSilence,
  connectUpstream,
  decideTunnel,
  modeFor,
  peekFirstBytes,
  peekPlain,
  relay,
  writeReply,
  type ConnectInput,
  type TunnelDeps,
} from './tunnel.ts';

/** Options of createConnectHandler. */
export interface ConnectOptions extends TunnelDeps {
  readonly interceptor: Interceptor;
}

// authority-form (RFC 9110 §9.3.6 / RFC 3986 §3.2.2): host ":" port, both required.
const AUTHORITY_FORM = /^(\[[0-9A-Fa-f:.]+\]|[^\s:/?#@[\]\\]+):(\d{1,5})$/;

/** Parses a CONNECT target into a canonical host and port; throws TG_ERR_BAD_REQUEST. */
export function parseConnectTarget(target: string): { host: string; port: number } {
  const m = AUTHORITY_FORM.exec(target);
  if (!m)
    throw new TollgateError(
      'TG_ERR_BAD_REQUEST',
      `CONNECT target must be host:port, got ${JSON.stringify(target.slice(0, 64))}`,
    );
  const port = Number(m[2]);
  if (port < 1 || port > 65535) throw new TollgateError('TG_ERR_BAD_REQUEST', `CONNECT port ${m[2]} is out of range`);
  const host = normalizeHost(m[1]!);
  return { host: host.startsWith('[') ? host.slice(1, -1) : host, port };
}

function headerMap(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!.toLowerCase();
    const value = req.rawHeaders[i + 1]!;
    out[name] = out[name] === undefined ? value : `${out[name]},${value}`;
  }
  return out;
}

/** Creates the ProxyHooks.onConnect handler. */
export function createConnectHandler(
  options: ConnectOptions,
): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  const { config, interceptor } = options;
  const log = options.logger.child({ component: 'connect' });

  async function handle(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => socket.destroy());
    let target: { host: string; port: number };
    try {
      target = parseConnectTarget(req.url ?? '');
    } catch (err) {
      writeReply(socket, errorReply(err as TollgateError));
      return;
    }
    const { host, port } = target;
    const authority = authorityOf(host, port);
    const headers = headerMap(req);
    const mode = modeFor(config, options.canIntercept, host);
    const principal = peerSpiffeId(req.socket);
    const source = {
      address: req.socket.remoteAddress ?? '',
      port: req.socket.remotePort ?? 0,
      ...(principal === undefined ? {} : { principal }),
    };
    const destination = { address: req.socket.localAddress ?? '', port: req.socket.localPort ?? 0 };
    const connect: ConnectInput = { phase: 'connect', authority, host, port, mode };
    const verdict = await decideTunnel(options, { authority, host, headers, source, destination, connect });
    if (!verdict.allowed) {
      log.debug({ authority, reasons: verdict.reasons }, 'CONNECT denied');
      writeReply(socket, verdict.reply);
      return;
    }
    // Later phases are decided for the agent the CONNECT was decided for (its token, if any, included).
    const decideAgain = async (phase: ConnectInput, name: string): Promise<boolean> => {
      const v = await decideTunnel(options, {
        authority: phase.phase === 'tls' ? authorityOf(name, port) : authority,
        host: name,
        headers,
        source,
        destination,
        connect: phase,
      });
      if (!v.allowed)
        log.debug(
          { authority, phase: phase.phase, sni: phase.sni, reasons: v.reasons },
          'tunnel phase denied inside an allowed tunnel',
        );
      return v.allowed;
    };

    let upstream: Socket | undefined;
    if (mode === 'tunnel') {
      try {
        upstream = await connectUpstream(config, host, port);
      } catch (err) {
        writeReply(socket, errorReply(err as TollgateError, verdict.decisionId));
        return;
      }
      if (socket.destroyed) {
        upstream.destroy();
        return;
      }
    }
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    let peeked = await peekFirstBytes(socket, head, config.connect.peekTimeoutMs);
    let opaqueAllowed = false;
    if (peeked.hello.kind === 'silent') {
      // A silent agent (server-speaks-first protocol) is the "opaque" phase. When allowed,
      // the upstream may speak first, and the agent's first bytes are still classified
      // (TLS, HTTP or opaque) before any of them is relayed.
      if (!(await decideAgain({ ...connect, phase: 'opaque' }, host))) {
        log.debug({ code: 'TG_ERR_PROTOCOL_REFUSED', authority, kind: 'silent' }, 'silent tunnel refused');
        upstream?.destroy();
        socket.destroy();
        return;
      }
      opaqueAllowed = true;
      if (upstream === undefined) {
        try {
          upstream = await connectUpstream(config, host, port);
        } catch (err) {
          log.debug({ err, authority }, 'tunnel upstream failed');
          socket.destroy();
          return;
        }
      }
      peeked = await awaitAfterSilence(socket, upstream, config.connect.peekTimeoutMs);
    }
    const hello = peeked.hello;
    if (hello.kind === 'client-hello') {
      // The ClientHello's server name, when it names another host than the CONNECT (or the
      // CONNECT named an IP), is decided again: the policy sees both, host = the SNI.
      const sni = hello.serverName;
      if (
        sni !== undefined &&
        sni !== host &&
        !(await decideAgain({ ...connect, phase: 'tls', sni, alpn: [...hello.alpn] }, sni))
      ) {
        upstream?.destroy();
        socket.destroy();
        return;
      }
      if (mode === 'tunnel' && upstream !== undefined) {
        // Tunnel mode: TLS is relayed after the decisions on the CONNECT and the SNI.
        relay(socket, upstream, peeked.bytes);
        return;
      }
      upstream?.destroy();
      const name = sni ?? host;
      interceptor.serveTls(socket, {
        leafHost: name,
        tunnelAuthority: authorityOf(name, port),
        connect: { ...connect, ...(sni === undefined ? {} : { sni }), alpn: [...hello.alpn] },
        firstBytes: peeked.bytes,
      });
      return;
    }
    if (hello.kind === 'closed' || hello.kind === 'need-more' || hello.kind === 'silent') {
      upstream?.destroy();
      socket.destroy();
      return;
    }
    let first = peeked.bytes;
    if (hello.kind === 'not-tls') {
      const plain = await peekPlain(socket, peeked.bytes, config.connect.peekTimeoutMs, config.proxy.maxHeaderBytes);
      first = plain.bytes;
      if (plain.kind === 'http') {
        // Plain HTTP inside any tunnel is decided request by request, pinned to the
        // tunnel's authority, whatever the port and the mode: never relayed undecided.
        upstream?.destroy();
        interceptor.servePlain(socket, { tunnelAuthority: authority, connect, firstBytes: first });
        return;
      }
      if (plain.kind === 'need-more') {
        // Bytes that may still become a request line are never relayed unclassified.
        log.debug({ code: 'TG_ERR_PROTOCOL_REFUSED', authority }, 'unclassified bytes refused in a tunnel');
        upstream?.destroy();
        socket.destroy();
        return;
      }
    }
    // Neither TLS nor HTTP (or a broken ClientHello): relayed only when the policy
    // explicitly allows the opaque phase.
    if (!opaqueAllowed && !(await decideAgain({ ...connect, phase: 'opaque' }, host))) {
      log.debug({ code: 'TG_ERR_PROTOCOL_REFUSED', authority, kind: hello.kind }, 'opaque bytes refused in a tunnel');
      upstream?.destroy();
      socket.destroy();
      return;
    }
    if (upstream === undefined) {
      try {
        upstream = await connectUpstream(config, host, port);
      } catch (err) {
        log.debug({ err, authority }, 'tunnel upstream failed');
        socket.destroy();
        return;
      }
    }
    relay(socket, upstream, first);
  }

  return (req, socket, head) => {
    handle(req, socket, head).catch((err: unknown) => {
      log.error({ err }, 'unexpected error while handling CONNECT');
      socket.destroy();
    });
  };
}
