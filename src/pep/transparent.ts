/**
 * The transparent listener: outbound TCP redirected by iptables (nat OUTPUT
 * REDIRECT, scripts/iptables-redirect.sh) arrives here without proxy settings.
 * The original destination comes from SO_ORIGINAL_DST. Then, from the first bytes:
 * plain HTTP → the request handler decides each request on its Host; TLS with SNI →
 * decided on the server name, then intercepted or tunnelled by the destination's
 * mode; anything else (TLS without SNI, other protocols, a silent client) → the
 * policy sees only the original IP:port (as a CONNECT to it) and decides (the seed
 * policy denies unregistered destinations).
 */
import { randomUUID } from 'node:crypto';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { splitHostPort } from '../config/load.ts';
import type { AgentIdentity } from '../input/build.ts';
import type { Interceptor } from './intercept.ts';
import { originalDestination } from './original-dst.ts';
import { authorityOf, connectUpstream, decideTunnel, modeFor, peekFirstBytes, relay, tunnelInput, type ConnectInput, type TunnelDeps } from './tunnel.ts';

/** Options of createTransparentListener. */
export interface TransparentOptions extends TunnelDeps {
  readonly interceptor: Interceptor;
}

/** The running transparent listener. */
export interface TransparentListener {
  listen(): Promise<AddressInfo>;
  close(): Promise<void>;
}

// An HTTP/1.x request line starts with a method token and a space (RFC 9112 §3).
const HTTP_REQUEST_LINE = /^[A-Z]{3,10} /;

/** Creates the transparent listener (not yet listening). */
export function createTransparentListener(options: TransparentOptions): TransparentListener {
  const { config, interceptor } = options;
  const log = options.logger.child({ component: 'transparent' });
  const agent: AgentIdentity = { id: config.agent.id, role: config.agent.role, labels: config.agent.labels };
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
    const peeked = await peekFirstBytes(socket, Buffer.alloc(0), config.connect.peekTimeoutMs);
    const hello = peeked.hello;
    const base = { ...(original === undefined ? {} : { original_destination: original }) };

    if (hello.kind === 'closed') return;
    if (hello.kind === 'malformed') {
      log.debug({ reason: hello.reason, destination }, 'malformed ClientHello on the transparent listener');
      socket.destroy();
      return;
    }
    if (hello.kind === 'not-tls' && HTTP_REQUEST_LINE.test(peeked.bytes.subarray(0, 11).toString('latin1'))) {
      const connect: ConnectInput = { phase: 'request', authority: authorityOf(destination.address, destination.port), host: destination.address, port: destination.port, mode: 'intercept', ...base };
      interceptor.servePlain(socket, { connect, firstBytes: peeked.bytes });
      return;
    }
    if (hello.kind === 'client-hello' && hello.serverName !== undefined) {
      const host = hello.serverName;
      const port = destination.port;
      const authority = authorityOf(host, port);
      const mode = modeFor(config, options.canIntercept, host);
      const connect: ConnectInput = { phase: 'transparent', authority, host, port, mode, sni: host, alpn: [...hello.alpn], ...base };
      const verdict = await decideTunnel(options, tunnelInput({ id: randomUUID(), authority, headers: {}, source, destination, connect, agent }), host, randomUUID());
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
    // No name to decide on: the policy sees the original IP:port, as a CONNECT to it.
    const host = destination.address;
    const authority = authorityOf(host, destination.port);
    const connect: ConnectInput = { phase: 'transparent', authority, host, port: destination.port, mode: 'tunnel', ...base };
    const verdict = await decideTunnel(options, tunnelInput({ id: randomUUID(), authority, headers: {}, source, destination, connect, agent }), host, randomUUID());
    if (!verdict.allowed || original === undefined) {
      log.debug({ authority, reasons: verdict.allowed ? ['original destination unknown'] : verdict.reasons }, 'transparent connection without a name denied');
      socket.destroy();
      return;
    }
    await tunnelTo(socket, original, peeked.bytes);
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
