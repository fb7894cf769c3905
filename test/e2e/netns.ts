/**
 * Network namespaces for e2e tests: created and removed by the test itself, linked
 * by one veth pair with addresses in 10.233.x.0/30 that exist only inside them —
 * nothing is routed anywhere else. Needs root (CI runs as root). When the kernel
 * or the container forbids namespaces, `probeNetns` says why, and the caller fails.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import type { TestLike } from '../helpers/processes.ts';

const run = promisify(execFile);

/** Runs a command, resolving with stdout; rejects with stderr in the message. */
export async function sh(cmd: string, args: string[]): Promise<string> {
  try {
    return (await run(cmd, args, { timeout: 30_000 })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${e.stderr?.trim() || e.message}`);
  }
}

/** Why namespaces cannot be used here, or undefined when they can. */
export async function probeNetns(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'not running as root (ip netns needs CAP_SYS_ADMIN and CAP_NET_ADMIN)';
  const name = `tgprobe${process.pid}`;
  try {
    await sh('ip', ['netns', 'add', name]);
    await sh('ip', ['netns', 'exec', name, 'iptables', '-t', 'nat', '-S']);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  } finally {
    await sh('ip', ['netns', 'del', name]).catch(() => undefined);
  }
}

/** Two namespaces joined by a veth pair. */
export interface NamespacePair {
  readonly agent: string;
  readonly upstream: string;
  readonly agentIp: string;
  readonly upstreamIp: string;
  /** IPv6 (ULA fd00:SUBNET::/64, on the veth only). */
  readonly agentIp6: string;
  readonly upstreamIp6: string;
}

/** Creates the agent and upstream namespaces (removed at teardown). */
export async function createNamespacePair(t: TestLike, subnet = 233): Promise<NamespacePair> {
  const id = `${process.pid % 100000}`;
  const agent = `tga${id}`;
  const upstream = `tgu${id}`;
  const agentIp = `10.${subnet}.0.1`;
  const upstreamIp = `10.${subnet}.0.2`;
  const agentIp6 = `fd00:${subnet}::1`;
  const upstreamIp6 = `fd00:${subnet}::2`;
  const vethA = `tgva${id}`;
  const vethU = `tgvu${id}`;
  t.teardown(async () => {
    await sh('ip', ['netns', 'del', agent]).catch(() => undefined);
    await sh('ip', ['netns', 'del', upstream]).catch(() => undefined);
  });
  await sh('ip', ['netns', 'add', agent]);
  await sh('ip', ['netns', 'add', upstream]);
  await sh('ip', ['link', 'add', vethA, 'type', 'veth', 'peer', 'name', vethU]);
  await sh('ip', ['link', 'set', vethA, 'netns', agent]);
  await sh('ip', ['link', 'set', vethU, 'netns', upstream]);
  for (const [ns, dev, ip, ip6] of [
    [agent, vethA, agentIp, agentIp6],
    [upstream, vethU, upstreamIp, upstreamIp6],
  ] as const) {
    await sh('ip', ['-n', ns, 'addr', 'add', `${ip}/30`, 'dev', dev]);
    // nodad: usable at once, no duplicate-address-detection wait.
    await sh('ip', ['-n', ns, 'addr', 'add', `${ip6}/64`, 'dev', dev, 'nodad']);
    await sh('ip', ['-n', ns, 'link', 'set', dev, 'up']);
    await sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  }
  return { agent, upstream, agentIp, upstreamIp, agentIp6, upstreamIp6 };
}

/** A long-running process inside a namespace whose stdout is collected. */
export interface NsProcess {
  readonly child: ChildProcess;
  output(): string;
  /** Resolves when stdout matches (or rejects when the process exits first or after ms). */
  waitFor(pattern: RegExp, ms?: number): Promise<RegExpExecArray>;
}

/** Spawns `ip netns exec NS cmd...` (optionally as another uid via setpriv), killed at teardown. */
export function spawnInNs(
  t: TestLike,
  ns: string,
  cmd: string[],
  options: { uid?: number; env?: Record<string, string> } = {},
): NsProcess {
  const prefix =
    options.uid === undefined ? [] : ['setpriv', `--reuid=${options.uid}`, `--regid=${options.uid}`, '--clear-groups'];
  const child = spawn('ip', ['netns', 'exec', ns, ...prefix, ...cmd], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
  });
  let out = '';
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stdout!.on('data', (c: string) => (out += c));
  child.stderr!.on('data', (c: string) => (out += c));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  t.teardown(async () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
  });
  return {
    child,
    output: () => out,
    waitFor(pattern, ms = 20_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${pattern}:\n${out}`)), ms);
        const check = () => {
          const m = pattern.exec(out);
          if (m) {
            clearTimeout(timer);
            child.stdout!.off('data', check);
            resolve(m);
          }
        };
        child.stdout!.on('data', check);
        child.stderr!.on('data', check);
        void exited.then(() => {
          clearTimeout(timer);
          reject(new Error(`process exited before ${pattern}:\n${out}`));
        });
        check();
      });
    },
  };
}
