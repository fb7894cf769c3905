/**
 * A real SPIRE deployment for tests: spire-server (SQLite datastore, in-memory keys)
 * and a join-token attested spire-agent on 127.0.0.1, in a temporary directory,
 * both stopped in t.teardown. Workload entries use the unix:uid selector of this
 * process, so `spire-agent api fetch x509` run by the test gets their SVIDs.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT, tempDir, type TestLike } from './processes.ts';
import { freePort, waitFor } from '../extauthz/peers.ts';

const run = promisify(execFile);
export const SPIRE_SERVER = join(ROOT, '.tools/bin/spire-server');
export const SPIRE_AGENT = join(ROOT, '.tools/bin/spire-agent');

/** An SVID fetched from the agent: files on disk and the SPIFFE ID it carries. */
export interface FetchedSvid {
  readonly spiffeId: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: string;
  readonly key: string;
}

/** A running SPIRE server and agent. */
export interface Spire {
  readonly trustDomain: string;
  /** Registers a workload entry for this process's uid. */
  register(spiffeId: string): Promise<void>;
  /** Fetches this workload's SVIDs (and the bundle) into a directory once they include `ids`. */
  fetch(ids: readonly string[]): Promise<{ dir: string; bundleFile: string; svids: Map<string, FetchedSvid> }>;
}

function daemon(t: TestLike, bin: string, args: string[]): { child: ChildProcess; output(): string } {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  });
  return { child, output: () => out };
}

async function healthy(bin: string, socket: string, child: ChildProcess, output: () => string): Promise<void> {
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`${bin} exited:\n${output()}`);
      try {
        await run(bin, ['healthcheck', '-socketPath', socket]);
        return true;
      } catch {
        return false;
      }
    },
    `${bin} to be healthy`,
    60_000,
  );
}

/** Starts spire-server and a join-token attested spire-agent for trust domain `trustDomain`. */
export async function startSpire(t: TestLike, trustDomain = 'example.org'): Promise<Spire> {
  const dir = await tempDir('tollgate-spire-');
  const port = await freePort();
  const serverSocket = join(dir, 'server.sock');
  const agentSocket = join(dir, 'agent.sock');
  await writeFile(
    join(dir, 'server.conf'),
    `server {
  bind_address = "127.0.0.1"
  bind_port = "${port}"
  socket_path = "${serverSocket}"
  trust_domain = "${trustDomain}"
  data_dir = "${join(dir, 'server-data')}"
  log_level = "WARN"
  default_x509_svid_ttl = "1h"
}
plugins {
  DataStore "sql" {
    plugin_data {
      database_type = "sqlite3"
      connection_string = "${join(dir, 'datastore.sqlite3')}"
    }
  }
  KeyManager "memory" {
    plugin_data {}
  }
  NodeAttestor "join_token" {
    plugin_data {}
  }
}
`,
  );
  const server = daemon(t, SPIRE_SERVER, ['run', '-config', join(dir, 'server.conf')]);
  await healthy(SPIRE_SERVER, serverSocket, server.child, server.output);

  const hostId = `spiffe://${trustDomain}/host/test-node`;
  const { stdout } = await run(SPIRE_SERVER, ['token', 'generate', '-socketPath', serverSocket, '-spiffeID', hostId]);
  const token = /Token:\s*(\S+)/.exec(stdout)?.[1];
  if (token === undefined) throw new Error(`spire-server token generate printed no token: ${stdout}`);

  await writeFile(
    join(dir, 'agent.conf'),
    `agent {
  data_dir = "${join(dir, 'agent-data')}"
  log_level = "WARN"
  server_address = "127.0.0.1"
  server_port = "${port}"
  socket_path = "${agentSocket}"
  trust_domain = "${trustDomain}"
  insecure_bootstrap = true
}
plugins {
  NodeAttestor "join_token" {
    plugin_data {}
  }
  KeyManager "memory" {
    plugin_data {}
  }
  WorkloadAttestor "unix" {
    plugin_data {}
  }
}
`,
  );
  const agent = daemon(t, SPIRE_AGENT, ['run', '-config', join(dir, 'agent.conf'), '-joinToken', token]);
  await healthy(SPIRE_AGENT, agentSocket, agent.child, agent.output);
  const uid = process.getuid?.() ?? 0;

  return {
    trustDomain,
    async register(spiffeId) {
      await run(SPIRE_SERVER, [
        'entry',
        'create',
        '-socketPath',
        serverSocket,
        '-parentID',
        hostId,
        '-spiffeID',
        spiffeId,
        '-selector',
        `unix:uid:${uid}`,
      ]);
    },
    async fetch(ids) {
      const out = join(await tempDir('tollgate-svid-'), 'svids');
      await mkdir(out, { recursive: true });
      const svids = new Map<string, FetchedSvid>();
      // The agent learns new entries on its next sync with the server: poll until they are all there.
      await waitFor(
        async () => {
          try {
            await run(SPIRE_AGENT, ['api', 'fetch', 'x509', '-socketPath', agentSocket, '-write', out]);
          } catch {
            return false;
          }
          svids.clear();
          for (const name of await readdir(out)) {
            const m = /^svid\.(\d+)\.pem$/.exec(name);
            if (m === null) continue;
            const certFile = join(out, name);
            const keyFile = join(out, `svid.${m[1]}.key`);
            const cert = await readFile(certFile, 'utf8');
            const spiffeId = (new X509Certificate(cert).subjectAltName ?? '').replace(/^URI:/, '');
            svids.set(spiffeId, { spiffeId, certFile, keyFile, cert, key: await readFile(keyFile, 'utf8') });
          }
          return ids.every((id) => svids.has(id));
        },
        `SVIDs ${ids.join(', ')} from spire-agent`,
        60_000,
      );
      return { dir: out, bundleFile: join(out, 'bundle.0.pem'), svids };
    },
  };
}
