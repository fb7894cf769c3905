/**
 * X.509 SVIDs minted with the real openssl CLI, for the mTLS tests that do not run
 * SPIRE: a CA per trust domain, leaves with a spiffe:// URI SAN (or none), and a
 * serving certificate for Tollgate. An HTTPS-proxy client presents them.
 */
import { execFile } from 'node:child_process';
import { request as httpsRequest } from 'node:https';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import type { Reply } from './processes.ts';

const run = promisify(execFile);

/** A certificate and key on disk, and their PEM text. */
export interface Minted {
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: string;
  readonly key: string;
}

/** Creates a self-signed CA (EC P-256) in dir/<name>.{crt,key}. */
export async function mintCa(dir: string, name: string): Promise<Minted> {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-days',
    '2',
    '-subj',
    `/O=SPIFFE/CN=${name}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return { certFile, keyFile, cert: await readFile(certFile, 'utf8'), key: await readFile(keyFile, 'utf8') };
}

/** Issues a leaf from `ca` with the given subjectAltName (e.g. "URI:spiffe://example.org/agent/x"), or none. */
export async function mintLeaf(dir: string, name: string, ca: Minted, san?: string): Promise<Minted> {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  await writeFile(
    ext,
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment,keyAgreement',
      'extendedKeyUsage=serverAuth,clientAuth',
      ...(san === undefined ? [] : [`subjectAltName=${san}`]),
    ].join('\n'),
  );
  await run('openssl', [
    'req',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    keyFile,
    '-out',
    csr,
    '-subj',
    `/O=SPIFFE/CN=${name}`,
  ]);
  await run('openssl', [
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca.certFile,
    '-CAkey',
    ca.keyFile,
    '-CAcreateserial',
    '-out',
    certFile,
    '-days',
    '1',
    '-extfile',
    ext,
  ]);
  return { certFile, keyFile, cert: await readFile(certFile, 'utf8'), key: await readFile(keyFile, 'utf8') };
}

/** TLS options of an agent talking to Tollgate's mTLS listener: its SVID (if any) and the CA it trusts for Tollgate. */
export interface AgentTls {
  readonly cert?: string;
  readonly key?: string;
  readonly ca: string;
  /** The SPIFFE ID Tollgate's certificate must carry (SPIFFE clients check the ID, not a host name). */
  readonly serverId: string;
}

function checkServerId(serverId: string) {
  return (_host: string, cert: PeerCertificate): Error | undefined =>
    cert.subjectaltname?.split(', ').includes(`URI:${serverId}`)
      ? undefined
      : new Error(`server certificate is not ${serverId}: ${cert.subjectaltname}`);
}

/** Sends one absolute-form request to the proxy over TLS. */
export function viaTlsProxy(
  port: number,
  tls: AgentTls,
  options: { url: string; method?: string; headers?: Record<string, string> },
): Promise<Reply> {
  const url = new URL(options.url);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        method: options.method ?? 'GET',
        path: options.url,
        headers: { host: url.host, ...options.headers },
        agent: false,
        ca: tls.ca,
        ...(tls.cert === undefined ? {} : { cert: tls.cert, key: tls.key }),
        checkServerIdentity: checkServerId(tls.serverId),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** Sends CONNECT over TLS and returns the proxy's status line and head. */
export function connectViaTlsProxy(port: number, tls: AgentTls, authority: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({
      host: '127.0.0.1',
      port,
      ca: tls.ca,
      ...(tls.cert === undefined ? {} : { cert: tls.cert, key: tls.key }),
      checkServerIdentity: checkServerId(tls.serverId),
    });
    let data = '';
    socket.setEncoding('latin1');
    socket.on('secureConnect', () => socket.write(`CONNECT ${authority} HTTP/1.1\r\nhost: ${authority}\r\n\r\n`));
    socket.on('data', (c: string) => {
      data += c;
      if (data.includes('\r\n\r\n')) {
        socket.destroy();
        resolve(data);
      }
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(data));
  });
}
