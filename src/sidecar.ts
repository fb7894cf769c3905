/**
 * The composition root: builds every long-lived component from a validated Config,
 * starts them in dependency order and closes them in reverse.
 */
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Config } from './config/schema.ts';
import { loadBundle } from './bundle/load.ts';
import { createWasmPdp } from './pdp/wasm.ts';
import { createExtAuthzPdp } from './pdp/extauthz-client.ts';
import { createExtAuthzServer } from './extauthz/server.ts';
import type { Pdp } from './pdp/types.ts';
import { createUpstreams } from './upstream/pool.ts';
import { createProxy } from './pep/proxy.ts';
import { createAdmin } from './admin/server.ts';
import { VERSION } from './version.ts';

/** The embedded default bundle, built from policies/ and committed. */
export const DEFAULT_BUNDLE = fileURLToPath(new URL('../policies/dist/bundle.tar.gz', import.meta.url));

/** Addresses the sidecar listens on once started. */
export interface SidecarAddresses {
  readonly proxy: AddressInfo;
  readonly admin: AddressInfo;
  /** The ext_authz gRPC listener, when enabled. */
  readonly extAuthz?: AddressInfo;
}

/** A running sidecar. */
export interface Sidecar {
  readonly addresses: SidecarAddresses;
  readonly pdp: Pdp;
  close(): Promise<void>;
}

/** Creates the configured PDP (loading its bundle). */
export async function createPdp(config: Config): Promise<Pdp> {
  if (config.pdp.type === 'extauthz') {
    return createExtAuthzPdp({ target: config.pdp.target, timeoutMs: config.pdp.timeoutMs, circuitBreaker: config.pdp.circuitBreaker });
  }
  const bundle = await loadBundle(config.pdp.bundle === '' ? DEFAULT_BUNDLE : config.pdp.bundle);
  return createWasmPdp({ bundle, decisionPath: config.pdp.decisionPath, data: config.pdp.data, timeoutMs: config.pdp.timeoutMs });
}

/** Starts the sidecar: PDP, upstream pools, proxy listener, ext_authz server, admin listener. */
export async function startSidecar(config: Config, logger: Logger): Promise<Sidecar> {
  const pdp = await createPdp(config);
  const upstreams = createUpstreams({
    resolve: config.proxy.resolve,
    headersTimeoutMs: config.proxy.upstreamTimeoutMs,
    connectTimeoutMs: config.proxy.upstreamConnectTimeoutMs,
  });
  const proxy = createProxy({ config, pdp, upstreams, logger });
  const admin = createAdmin({ listen: config.admin.listen, pdp, version: VERSION });
  const closers: Array<() => Promise<void>> = [() => pdp.close(), () => upstreams.close()];
  try {
    const proxyAddress = await proxy.listen();
    closers.push(() => proxy.close());
    let extAuthzAddress: AddressInfo | undefined;
    if (config.extAuthz.enabled) {
      const extAuthz = createExtAuthzServer({
        listen: config.extAuthz.listen,
        pdp,
        agent: { id: config.agent.id, role: config.agent.role, labels: config.agent.labels },
        ...(config.agent.token === undefined ? {} : { agentToken: config.agent.token }),
        dryRun: config.extAuthz.dryRun,
        maxReceiveBytes: config.extAuthz.maxReceiveBytes,
        logger,
      });
      extAuthzAddress = await extAuthz.listen();
      closers.push(() => extAuthz.close());
    }
    const adminAddress = await admin.listen();
    closers.push(() => admin.close());
    return {
      addresses: { proxy: proxyAddress, admin: adminAddress, ...(extAuthzAddress === undefined ? {} : { extAuthz: extAuthzAddress }) },
      pdp,
      async close() {
        for (const close of closers.reverse()) await close();
      },
    };
  } catch (err) {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    throw err;
  }
}
