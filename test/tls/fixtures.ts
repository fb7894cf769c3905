/**
 * TLS test fixtures: Tollgate's CA made by the real `ca init` code, an upstream CA
 * Tollgate is told to trust, HTTPS upstreams that record what reaches them, and a
 * raw CONNECT helper. Everything on 127.0.0.1 port 0, torn down with t.teardown.
 */
import { createServer as createHttpsServer } from 'node:https';
import { connect as tlsConnect, createSecureContext } from 'node:tls';
import { Duplex } from 'node:stream';
import { connect, type Socket } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { caInit } from '../../src/cli/ca.ts';
import { generateCa, generateLeafKey, issueLeaf, loadCa } from '../../src/tls/ca.ts';
import { tempDir, type Received, type TestLike } from '../helpers/processes.ts';

/** Paths of a CA on disk. */
export interface CaFiles {
  readonly dir: string;
  readonly certFile: string;
  readonly keyFile: string;
}

/** Creates Tollgate's interception CA with `tollgate ca init`'s code. */
export async function tollgateCa(): Promise<CaFiles> {
  const dir = await tempDir('tollgate-ca-');
  const { certFile, keyFile } = await caInit({ out: dir });
  return { dir, certFile, keyFile };
}

/** An HTTPS upstream whose certificates (any SNI) come from its own CA. */
export interface HttpsUpstream {
  readonly port: number;
  readonly caFile: string;
  readonly received: Received[];
}

/** Starts an HTTPS upstream answering 200 JSON echoing the request; `trusted` false makes a CA nobody is told about. */
export async function startHttpsUpstream(t: TestLike): Promise<HttpsUpstream> {
  const dir = await tempDir('tollgate-upstream-ca-');
  const pair = generateCa({ commonName: 'upstream test CA' });
  const ca = loadCa(pair.certPem, pair.keyPem);
  const leaf = generateLeafKey();
  const caFile = join(dir, 'upstream-ca.crt');
  await writeFile(caFile, pair.certPem);
  const received: Received[] = [];
  const server = createHttpsServer(
    {
      SNICallback: (name, cb) =>
        cb(null, createSecureContext({ cert: issueLeaf(ca, name, leaf.key).certPem, key: leaf.keyPem })),
      ...(() => {
        const fallback = issueLeaf(ca, '127.0.0.1', leaf.key);
        return { cert: fallback.certPem, key: leaf.keyPem };
      })(),
    },
    (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        received.push({
          method: req.method ?? '',
          url: req.url ?? '',
          headers: req.headers,
          rawHeaders: req.rawHeaders,
          body,
        });
        const out = JSON.stringify({ ok: true, method: req.method, url: req.url, host: req.headers.host, body });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
        res.end(out);
      });
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { port: (server.address() as AddressInfo).port, caFile, received };
}

/** Opens a CONNECT tunnel through the proxy; resolves with the status line and the socket (left open on 200). */
export function openTunnel(
  proxyPort: number,
  authority: string,
  extraHeaders = '',
): Promise<{ status: number; head: string; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const socket = connect(proxyPort, '127.0.0.1');
    let data = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      const end = data.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.off('data', onData);
      const head = data.subarray(0, end).toString('latin1');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
      const rest = data.subarray(end + 4);
      if (rest.length > 0) socket.unshift(rest);
      resolve({ status, head: `${head}\r\n\r\n${rest.toString('latin1')}`, socket });
    };
    socket.on('data', onData);
    socket.on('error', reject);
    socket.on('close', () => resolve({ status: 0, head: data.toString('latin1'), socket }));
    socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${extraHeaders}\r\n`);
  });
}

/** Resolves when the socket closes (or rejects after ms). */
export function closed(socket: Socket, ms = 15_000): Promise<number> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    if (socket.destroyed) return resolve(0);
    const timer = setTimeout(() => reject(new Error(`socket still open after ${ms} ms`)), ms);
    socket.on('error', () => undefined);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - started);
    });
    socket.resume();
  });
}

/** Resolve overrides pointing the demo destinations at one local port. */
export function resolveTo(
  port: number,
  hosts = ['payments.internal', 'hr.internal', 'crm.internal'],
  destPort = 443,
): Record<string, string> {
  return Object.fromEntries(hosts.map((h) => [`${h}:${destPort}`, `127.0.0.1:${port}`]));
}

/** The ClientHello Node's TLS client sends for the given options (captured, never sent). */
export function captureClientHello(options: { servername?: string; ALPNProtocols?: string[] }): Promise<Buffer> {
  return new Promise((resolve) => {
    const sink = new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) {
        resolve(chunk);
        cb();
        setImmediate(() => socket.destroy());
      },
    });
    const socket = tlsConnect({
      socket: sink,
      ...(options.servername === undefined ? {} : { servername: options.servername }),
      ...(options.ALPNProtocols ? { ALPNProtocols: options.ALPNProtocols } : {}),
    });
    socket.on('error', () => undefined);
  });
}
