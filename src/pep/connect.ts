/**
 * CONNECT on the outbound listener (RFC 9110 §9.3.6). The policy decides on the
 * tunnel — method CONNECT, `host` = the authority, the agent — before any byte
 * flows. Then, per destination: "tunnel" relays bytes (an L4 decision, plus a second
 * decision when the ClientHello names another host than the CONNECT), "intercept"
 * terminates TLS with a leaf from the local CA and decides on every request inside.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { TollgateError } from '../errors.ts';
import { normalizeHost } from '../http/normalize.ts';
import { errorReply } from '../enforce/reply.ts';
import type { AgentIdentity } from '../input/build.ts';
import { verifyAgentToken } from '../input/identity.ts';
import type { Interceptor } from './intercept.ts';
import { authorityOf, connectUpstream, decideTunnel, modeFor, peekFirstBytes, relay, tunnelInput, writeReply, type ConnectInput, type TunnelDeps } from './tunnel.ts';

/** Options of createConnectHandler. */
export interface ConnectOptions extends TunnelDeps {
  readonly interceptor: Interceptor;
}

// authority-form (RFC 9110 §9.3.6 / RFC 3986 §3.2.2): host ":" port, both required.
const AUTHORITY_FORM = /^(\[[0-9A-Fa-f:.]+\]|[^\s:/?#@[\]\\]+):(\d{1,5})$/;

/** Parses a CONNECT target into a canonical host and port; throws TG_ERR_BAD_REQUEST. */
export function parseConnectTarget(target: string): { host: string; port: number } {
  const m = AUTHORITY_FORM.exec(target);
  if (!m) throw new TollgateError('TG_ERR_BAD_REQUEST', `CONNECT target must be host:port, got ${JSON.stringify(target.slice(0, 64))}`);
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
export function createConnectHandler(options: ConnectOptions): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  const { config, interceptor } = options;
  const log = options.logger.child({ component: 'connect' });
  const configuredAgent: AgentIdentity = { id: config.agent.id, role: config.agent.role, labels: config.agent.labels };
  const tokenHeader = config.agent.token?.header.toLowerCase();

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
    let agent = configuredAgent;
    if (tokenHeader !== undefined && headers[tokenHeader] !== undefined) {
      try {
        agent = verifyAgentToken(headers[tokenHeader], config.agent.token!.secret);
      } catch (err) {
        writeReply(socket, errorReply(new TollgateError('TG_ERR_IDENTITY', `agent identity: ${(err as Error).message}`, { cause: err })));
        return;
      }
      delete headers[tokenHeader];
    }
    const mode = modeFor(config, options.canIntercept, host);
    const source = { address: req.socket.remoteAddress ?? '', port: req.socket.remotePort ?? 0 };
    const destination = { address: req.socket.localAddress ?? '', port: req.socket.localPort ?? 0 };
    const connect: ConnectInput = { phase: 'connect', authority, host, port, mode };
    const decisionId = randomUUID();
    const verdict = await decideTunnel(options, tunnelInput({ id: randomUUID(), authority, headers, source, destination, connect, agent }), host, decisionId);
    if (!verdict.allowed) {
      log.debug({ authority, decisionId, reasons: verdict.reasons }, 'CONNECT denied');
      writeReply(socket, verdict.reply);
      return;
    }

    // The ClientHello's server name, when it names another host than the CONNECT (or the
    // CONNECT named an IP), is decided again: the policy sees both, host = the SNI.
    const decideSni = async (sni: string, alpn: readonly string[]): Promise<boolean> => {
      const sniAuthority = authorityOf(sni, port);
      const sniConnect: ConnectInput = { ...connect, phase: 'tls', sni, alpn: [...alpn] };
      const v = await decideTunnel(options, tunnelInput({ id: randomUUID(), authority: sniAuthority, headers, source, destination, connect: sniConnect, agent }), sni, randomUUID());
      if (!v.allowed) log.debug({ authority, sni, reasons: v.reasons }, 'TLS server name denied inside an allowed tunnel');
      return v.allowed;
    };

    if (mode === 'tunnel') {
      let upstream;
      try {
        upstream = await connectUpstream(config, host, port);
      } catch (err) {
        writeReply(socket, errorReply(err as TollgateError, decisionId));
        return;
      }
      if (socket.destroyed) {
        upstream.destroy();
        return;
      }
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      const peeked = await peekFirstBytes(socket, head, config.connect.peekTimeoutMs);
      if (peeked.hello.kind === 'closed') {
        upstream.destroy();
        return;
      }
      if (peeked.hello.kind === 'client-hello' && peeked.hello.serverName !== undefined && peeked.hello.serverName !== host) {
        if (!(await decideSni(peeked.hello.serverName, peeked.hello.alpn))) {
          upstream.destroy();
          socket.destroy();
          return;
        }
      }
      relay(socket, upstream, peeked.bytes);
      return;
    }

    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    const peeked = await peekFirstBytes(socket, head, config.connect.peekTimeoutMs);
    const hello = peeked.hello;
    switch (hello.kind) {
      case 'client-hello': {
        const sni = hello.serverName;
        if (sni !== undefined && sni !== host && !(await decideSni(sni, hello.alpn))) {
          socket.destroy();
          return;
        }
        const name = sni ?? host;
        interceptor.serveTls(socket, {
          leafHost: name,
          tunnelAuthority: authorityOf(name, port),
          connect: { ...connect, ...(sni === undefined ? {} : { sni }), alpn: [...hello.alpn] },
          firstBytes: peeked.bytes,
        });
        return;
      }
      case 'not-tls':
        // Plain HTTP sent through the tunnel: decided request by request like TLS.
        interceptor.servePlain(socket, { tunnelAuthority: authority, connect, firstBytes: peeked.bytes });
        return;
      case 'malformed':
        log.debug({ authority, reason: hello.reason }, 'malformed ClientHello in an intercepted tunnel');
        socket.destroy();
        return;
      case 'silent':
      case 'closed':
      case 'need-more':
        socket.destroy();
        return;
      default:
        return hello satisfies never;
    }
  }

  return (req, socket, head) => {
    handle(req, socket, head).catch((err: unknown) => {
      log.error({ err }, 'unexpected error while handling CONNECT');
      socket.destroy();
    });
  };
}
