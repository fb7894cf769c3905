/**
 * The transparent listener: outbound TCP redirected by iptables (nat OUTPUT
 * REDIRECT, scripts/iptables-redirect.sh) arrives here without proxy settings.
 * The original destination comes from SO_ORIGINAL_DST. Then, from the first bytes:
 * plain HTTP → the request handler decides each request on its Host; TLS with SNI →
 * decided on the server name, then intercepted or tunnelled by the destination's
 * mode; TLS without SNI → the policy sees only the original IP:port (as a CONNECT
 * to it) and decides; anything else (other protocols, a broken ClientHello, a silent
 * client) → the "opaque" phase on the original IP:port, relayed only when the policy
 * allows it explicitly (the seed policy never does).
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { splitHostPort } from '../config/load.ts';
import type { Interceptor } from './intercept.ts';
import { originalDestination } from './original-dst.ts';
import {
  authorityOf,
  awaitAfterSilence,
  connectUpstream,
  decideTunnel,
  modeFor,
  peekFirstBytes,
  peekPlain,
  relay,
  type ConnectInput,
  type TunnelDeps,
} from './tunnel.ts';

/** Options of createTransparentListener. */
export interface TransparentOptions extends TunnelDeps {
  readonly interceptor: Interceptor;
}

/** The running transparent listener. */
export interface TransparentListener {
  listen(): Promise<AddressInfo>;
  close(): Promise<void>;
}

/** Creates the transparent listener (not yet listening). */
export function createTransparentListener(options: TransparentOptions): TransparentListener {
  const { config, interceptor } = options;
  const log = options.logger.child({ component: 'transparent' });
  const sockets = new Set<Socket>();
  let warnedNoOriginalDst = false;

  async function handle(socket: Socket): Promise<void> {
    socket.on('error', () => socket.destroy());
    const source = { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
    const original = originalDestination(socket);
    if (original === undefined && !warnedNoOriginalDst) {
      warnedNoOriginalDst = true;
      log.warn('SO_ORIGINAL_DST unavailable: the policy sees the listener address as the destination');
    }
    const destination = original ?? { address: socket.localAddress ?? '', port: socket.localPort ?? 0 };
    let peeked = await peekFirstBytes(socket, Buffer.alloc(0), config.connect.peekTimeoutMs);
    const base = { ...(original === undefined ? {} : { original_destination: original }) };
    // A silent client (server-speaks-first protocol) is the "opaque" phase on the original
    // IP:port. When allowed, the upstream may speak first, and the client's first bytes are
    // still classified (TLS, HTTP or opaque) before any of them is relayed.
    let opened: Socket | undefined;
    if (peeked.hello.kind === 'silent') {
      const host = destination.address;
      const authority = authorityOf(host, destination.port);
      const connect: ConnectInput = {
        phase: 'opaque',
        authority,
        host,
        port: destination.port,
        mode: 'tunnel',
        ...base,
      };
      const verdict = await decideTunnel(options, { authority, host, headers: {}, source, destination, connect });
      if (!verdict.allowed || original === undefined) {
        log.debug(
          {
            code: 'TG_ERR_PROTOCOL_REFUSED',
            authority,
            kind: 'silent',
            reasons: verdict.allowed ? ['original destination unknown'] : verdict.reasons,
          },
          'silent transparent connection denied',
        );
        socket.destroy();
        return;
      }
      try {
        opened = await connectUpstream(config, original.address, original.port);
      } catch (err) {
        log.debug({ err, original }, 'transparent tunnel upstream failed');
        socket.destroy();
        return;
      }
      peeked = await awaitAfterSilence(socket, opened, config.connect.peekTimeoutMs);
    }
    const hello = peeked.hello;

    if (hello.kind === 'closed' || hello.kind === 'silent') {
      opened?.destroy();
      socket.destroy();
      return;
    }
    if (opened !== undefined && hello.kind !== 'client-hello' && hello.kind !== 'not-tls') {
      // An allowed silent start followed by bytes that are not HTTP: the opaque decision covers them.
      relay(socket, opened, peeked.bytes);
      return;
    }
    if (hello.kind !== 'not-tls') {
      opened?.destroy();
      opened = undefined;
    }
    if (hello.kind === 'client-hello' && hello.serverName !== undefined) {
      const host = hello.serverName;
      const port = destination.port;
      const authority = authorityOf(host, port);
      const mode = modeFor(config, options.canIntercept, host);
      const connect: ConnectInput = {
        phase: 'transparent',
        authority,
        host,
        port,
        mode,
        sni: host,
        alpn: [...hello.alpn],
        ...base,
      };
      const verdict = await decideTunnel(options, { authority, host, headers: {}, source, destination, connect });
      if (!verdict.allowed) {
        log.debug({ authority, reasons: verdict.reasons }, 'transparent TLS connection denied');
        socket.destroy();
        return;
      }
      if (mode === 'intercept') {
        interceptor.serveTls(socket, { leafHost: host, tunnelAuthority: authority, connect, firstBytes: peeked.bytes });
        return;
      }
      await tunnelTo(socket, original ?? { address: host, port }, peeked.bytes);
      return;
    }
    const host = destination.address;
    const authority = authorityOf(host, destination.port);
    let first = peeked.bytes;
    if (hello.kind === 'not-tls') {
      const plain = await peekPlain(socket, peeked.bytes, config.connect.peekTimeoutMs, config.proxy.maxHeaderBytes);
      first = plain.bytes;
      if (plain.kind === 'need-more') {
        // Bytes that may still become a request line are never relayed unclassified.
        log.debug({ code: 'TG_ERR_PROTOCOL_REFUSED', authority }, 'unclassified bytes refused');
        opened?.destroy();
        socket.destroy();
        return;
      }
      if (opened !== undefined && plain.kind === 'opaque') {
        relay(socket, opened, first);
        return;
      }
      opened?.destroy();
      if (plain.kind === 'http') {
        const connect: ConnectInput = {
          phase: 'request',
          authority,
          host,
          port: destination.port,
          mode: 'intercept',
          ...base,
        };
        interceptor.servePlain(socket, { connect, firstBytes: first });
        return;
      }
    }
    // TLS without a name: the policy sees only the original IP:port, as a CONNECT to it.
    // Anything else (opaque bytes, a broken ClientHello, silence) is the "opaque" phase,
    // relayed only when the policy allows it explicitly.
    const phase = hello.kind === 'client-hello' ? 'transparent' : 'opaque';
    const connect: ConnectInput = { phase, authority, host, port: destination.port, mode: 'tunnel', ...base };
    const verdict = await decideTunnel(options, { authority, host, headers: {}, source, destination, connect });
    if (!verdict.allowed || original === undefined) {
      log.debug(
        {
          ...(phase === 'opaque' ? { code: 'TG_ERR_PROTOCOL_REFUSED' } : {}),
          authority,
          phase,
          kind: hello.kind,
          reasons: verdict.allowed ? ['original destination unknown'] : verdict.reasons,
        },
        'transparent connection without a name denied',
      );
      socket.destroy();
      return;
    }
    await tunnelTo(socket, original, first);
  }

  async function tunnelTo(socket: Socket, target: { address: string; port: number }, first: Buffer): Promise<void> {
    try {
      const upstream = await connectUpstream(config, target.address, target.port);
      relay(socket, upstream, first);
    } catch (err) {
      log.debug({ err, target }, 'transparent tunnel upstream failed');
      socket.destroy();
    }
  }

  const server: Server = createServer({ pauseOnConnect: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    handle(socket).catch((err: unknown) => {
      log.error({ err }, 'unexpected error on the transparent listener');
      socket.destroy();
    });
  });
  const { host, port } = splitHostPort(config.transparent.listen);
  return {
    listen() {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          const address = server.address() as AddressInfo;
          log.info({ address }, 'transparent listener started');
          resolve(address);
        });
      });
    },
    close() {
      return new Promise((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
    },
  };
}
