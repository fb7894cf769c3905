/**
 * Assembles what CONNECT, TLS interception and transparent mode add to the data path for the composition root:
 * the local CA and leaf cache, upstream trust (system roots + extra CA files), the
 * CONNECT and upgrade hooks for the outbound listener, and the transparent listener.
 */
import type { Observer } from '../telemetry/observer.ts';
import { readFileSync } from 'node:fs';
import { getCACertificates, setDefaultCACertificates } from 'node:tls';
import type { Logger } from 'pino';
import { TollgateError } from '../errors.ts';
import type { Config } from '../config/schema.ts';
import type { DecisionStep } from '../enforce/decide.ts';
import type { Upstreams } from '../upstream/pool.ts';
import type { ResponseStage } from '../mcp/response-relay.ts';
import { loadCa } from '../tls/ca.ts';
import { createLeafCache, type LeafCache } from '../tls/certs.ts';
import { createRequestHandler, type ProxyHooks } from './proxy.ts';
import { createInterceptor } from './intercept.ts';
import { createConnectHandler } from './connect.ts';
import { createUpgradeHandler } from './upgrade.ts';
import { createTransparentListener, type TransparentListener } from './transparent.ts';

/** Options of createEgress. */
export interface EgressOptions {
  readonly config: Config;
  /** The one decision step every door calls. */
  readonly step: DecisionStep;
  readonly upstreams: Upstreams;
  readonly logger: Logger;
  /** Spans, metrics and the decision log of the requests it decides (default: records nothing). */
  readonly observer?: Observer;
  /** Response decisions and tool pinning on MCP answers (absent: answers are relayed untouched). */
  readonly responses?: ResponseStage;
}

/** The CONNECT, interception and transparent parts of the sidecar. */
export interface Egress {
  readonly hooks: ProxyHooks;
  /** The transparent listener, when enabled. */
  readonly transparent?: TransparentListener;
  readonly leaves?: LeafCache;
  close(): Promise<void>;
}

function readPem(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new TollgateError(
      'TG_ERR_CONFIG_INVALID',
      `${what}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      { cause: err },
    );
  }
}

/**
 * Upstream TLS trust: Node's default store (bundled Mozilla roots, NODE_EXTRA_CA_CERTS),
 * the operating system's store (/etc/ssl/certs: enterprise roots an admin installed),
 * plus tls.upstreamCaFiles. Set process-wide, so the undici pools and the WebSocket
 * relay verify against the same list. Verification itself is never turned off.
 */
function configureUpstreamTrust(config: Config, logger: Logger): void {
  const extra = config.tls.upstreamCaFiles.map((file) => readPem(file, '/tls/upstreamCaFiles'));
  let system: string[] = [];
  try {
    system = getCACertificates('system');
  } catch (err) {
    logger.warn(
      { err },
      "the system certificate store could not be read: upstream trust is Node's bundled roots and upstreamCaFiles",
    );
  }
  setDefaultCACertificates([...new Set([...getCACertificates('default'), ...system, ...extra])]);
}

/** Builds the CA, hooks and transparent listener from the config (start-up: throws TG_ERR_CONFIG_INVALID). */
export function createEgress(options: EgressOptions): Egress {
  const { config, logger } = options;
  const { caCertFile, caKeyFile } = config.tls;
  if ((caCertFile === '') !== (caKeyFile === '')) {
    throw new TollgateError('TG_ERR_CONFIG_INVALID', '/tls: caCertFile and caKeyFile must be set together');
  }
  let leaves: LeafCache | undefined;
  if (caCertFile !== '') {
    const ca = loadCa(readPem(caCertFile, '/tls/caCertFile'), readPem(caKeyFile, '/tls/caKeyFile'));
    leaves = createLeafCache({ ca, maxEntries: config.tls.leafCacheSize, validDays: config.tls.leafValidDays });
  }
  const wantsIntercept =
    config.connect.defaultMode === 'intercept' || Object.values(config.connect.modes).includes('intercept');
  if (wantsIntercept && leaves === undefined) {
    throw new TollgateError(
      'TG_ERR_CONFIG_INVALID',
      '/connect: intercept mode needs /tls/caCertFile and /tls/caKeyFile (run `tollgate ca init --out DIR`)',
    );
  }
  configureUpstreamTrust(config, logger);

  const handler = createRequestHandler(options);
  const onUpgrade = createUpgradeHandler(options);
  const interceptor = createInterceptor({
    config,
    handler,
    logger,
    onUpgrade,
    ...(leaves === undefined ? {} : { leaves }),
  });
  const deps = { config, step: options.step, logger, canIntercept: leaves !== undefined };
  const hooks: ProxyHooks = {
    ...(config.connect.enabled ? { onConnect: createConnectHandler({ ...deps, interceptor }) } : {}),
    onUpgrade: (req, socket, head) => onUpgrade(req, socket, head, { scheme: 'http' }),
  };
  const transparent = config.transparent.enabled ? createTransparentListener({ ...deps, interceptor }) : undefined;
  return {
    hooks,
    ...(transparent === undefined ? {} : { transparent }),
    ...(leaves === undefined ? {} : { leaves }),
    async close() {
      if (transparent !== undefined) await transparent.close();
      interceptor.close();
    },
  };
}
