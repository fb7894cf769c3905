/**
 * The policy lifecycle, assembled from config: where bundles come from (a bundle
 * server, a file or directory, or the static pdp.bundle), how they are verified and
 * activated (src/pdp/swap.ts), where the last-known-good is kept, the shadow candidate,
 * and live data (admin patches and a watched file). The composition root creates one,
 * awaits start() before listening (start rejects when no policy at all can be
 * activated: never "no policy = allow"), hands `pdp` to enforcement and closes it last.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { BundleConfig, LiveDataConfig, ShadowConfig, WasmPdpConfig } from '../config/schema.ts';
import { TollgateError } from '../errors.ts';
import type { PolicyInput } from '../input/build.ts';
import { createShadowPdp, type ShadowDisagreement } from '../pdp/shadow.ts';
import {
  createSwappablePdp,
  type ActivationEvent,
  type ActivationOrigin,
  type DataChangeEvent,
  type RejectionEvent,
  type RejectionReason,
  type SwapHooks,
  type SwappablePdp,
  type SwapStatus,
} from '../pdp/swap.ts';
import type { Pdp } from '../pdp/types.ts';
import { createBundlePoller, downloadBundle, type BundlePoller } from './fetch.ts';
import { parsePatch } from './json-patch.ts';
import { loadBundle, parseBundleArchive, type Bundle } from './load.ts';
import { createBundleStore, type BundleStore } from './store.ts';
import { createBundleVerifier, type BundleVerifier } from './verify.ts';
import { fingerprint, watchPath, type Watcher } from './watch.ts';

/** Callbacks for metrics, logs and the decision log. None of them may throw. */
export interface LifecycleHooks extends SwapHooks {
  /** A download or file read failed (the active revision stays). */
  onSourceError?(error: TollgateError, role: 'active' | 'shadow'): void;
  /** A live-data change was refused (not JSON, not a patch, does not apply). */
  onDataRejected?(error: TollgateError, origin: 'api' | 'file'): void;
  onShadowDisagreement?(disagreement: ShadowDisagreement): void;
  onShadowCompared?(agreed: boolean): void;
}

/** Options of createPolicyLifecycle: the config sections it reads. */
export interface PolicyLifecycleOptions {
  readonly pdp: WasmPdpConfig;
  readonly bundle: BundleConfig;
  readonly shadow: ShadowConfig;
  readonly data: LiveDataConfig;
  /** Bundle used when neither bundle.source nor pdp.bundle is set (the embedded seed). */
  readonly defaultBundle: string;
  readonly logger: Logger;
  readonly hooks?: LifecycleHooks;
}

/** Counters and revisions for /v1/bundle/status and metrics. */
export interface LifecycleStatus extends SwapStatus {
  readonly source: string;
  readonly rejections: Readonly<Record<RejectionReason, number>>;
  readonly sourceErrors: number;
  readonly shadow?: SwapStatus & { readonly source: string; readonly compared: number; readonly disagreements: number };
}

/** The running policy lifecycle. */
export interface PolicyLifecycle {
  /** The PDP enforcement uses (the active policy; with shadow mode, wrapped to also ask the candidate). */
  readonly pdp: Pdp;
  /** The swappable active policy. */
  readonly active: SwappablePdp;
  /** The shadow candidate, when shadow mode is on. */
  readonly candidate: SwappablePdp | undefined;
  /** Activates the first policy (download, file, or last-known-good) and starts polling/watching. */
  start(): Promise<ActivationEvent>;
  /** Switches back to the previous revision (held until the source publishes a new one). */
  rollback(): Promise<ActivationEvent>;
  /** Applies an RFC 6902 JSON Patch given as text (admin PATCH body) to the live data. */
  patchData(text: string): DataChangeEvent;
  status(): LifecycleStatus;
  close(): Promise<void>;
}

const isUrl = (s: string): boolean => /^https?:\/\//i.test(s);

async function verifierFor(config: BundleConfig): Promise<BundleVerifier | undefined> {
  const v = config.verification;
  if (v === undefined) return undefined;
  let publicKey = v.publicKey;
  if (publicKey === '' && v.publicKeyFile !== '') {
    try {
      publicKey = await readFile(v.publicKeyFile, 'utf8');
    } catch (cause) {
      throw new TollgateError(
        'TG_ERR_CONFIG_INVALID',
        `/bundle/verification/publicKeyFile: cannot read ${v.publicKeyFile}`,
        { cause },
      );
    }
  }
  if (publicKey === '')
    throw new TollgateError('TG_ERR_CONFIG_INVALID', '/bundle/verification: publicKey or publicKeyFile is required');
  return createBundleVerifier({
    keyId: v.keyId,
    publicKey,
    algorithm: v.algorithm,
    scope: v.scope,
    excludeFiles: v.excludeFiles,
  });
}

/** One bundle location feeding one swappable PDP. */
interface SourceRunner {
  first(): Promise<ActivationEvent>;
  follow(): void;
  close(): Promise<void>;
}

interface RunnerOptions {
  readonly location: string;
  readonly target: SwappablePdp;
  readonly role: 'active' | 'shadow';
  readonly config: BundleConfig;
  /** Polls/watches the location for new revisions after the first one. */
  readonly follow: boolean;
  readonly store: BundleStore | undefined;
  readonly logger: Logger;
  onSourceError(error: TollgateError): void;
}

function createSourceRunner(o: RunnerOptions): SourceRunner {
  let etag: string | undefined;
  let poller: BundlePoller | undefined;
  let watcher: Watcher | undefined;
  let seen: string | undefined;
  let lastDigest: string | undefined;

  const activate = async (
    bundle: Bundle,
    origin: ActivationOrigin,
    tag: string | undefined,
  ): Promise<ActivationEvent> => {
    const event = await o.target.activate(bundle, origin);
    if (o.store !== undefined && origin !== 'last-known-good') {
      await o.store
        .save(bundle, tag)
        .catch((err: unknown) => o.logger.warn({ err }, 'could not persist the last-known-good bundle'));
    }
    return event;
  };

  const fromLastKnownGood = async (why: TollgateError): Promise<ActivationEvent> => {
    const stored =
      o.store === undefined
        ? undefined
        : await o.store.load().catch((err: unknown) => {
            o.logger.warn({ err }, 'the last-known-good bundle is unreadable');
            return undefined;
          });
    if (stored === undefined)
      throw new TollgateError(
        'TG_ERR_BUNDLE_INVALID',
        `no policy could be activated from ${o.location}: ${why.message}${o.store === undefined ? ' (no bundle.persistenceDir for a last-known-good bundle)' : ' (no last-known-good bundle stored)'}`,
        { cause: why },
      );
    o.logger.warn(
      { source: o.location, revision: stored.bundle.manifest.revision, err: why },
      'bundle source unavailable at start; enforcing the last-known-good bundle',
    );
    const event = await o.target.activate(stored.bundle, 'last-known-good');
    etag = stored.meta.etag;
    if (stored.bundle.archive !== undefined)
      lastDigest = createHash('sha256').update(stored.bundle.archive).digest('hex');
    return event;
  };

  return {
    async first() {
      try {
        if (isUrl(o.location)) {
          const got = await downloadBundle({
            url: o.location,
            token: o.config.token,
            timeoutMs: o.config.timeoutMs,
            maxBytes: o.config.maxBytes,
          });
          if (got.status !== 'modified')
            throw new TollgateError(
              'TG_ERR_BUNDLE_INVALID',
              `bundle server ${o.location}: answered 304 to a request without If-None-Match`,
            );
          const event = await activate(await parseBundleArchive(o.location, got.bytes), 'startup', got.etag);
          etag = got.etag;
          lastDigest = createHash('sha256').update(got.bytes).digest('hex');
          return event;
        }
        seen = await fingerprint(o.location).catch(() => undefined);
        return await activate(await loadBundle(o.location), 'startup', undefined);
      } catch (err) {
        const error =
          err instanceof TollgateError
            ? err
            : new TollgateError('TG_ERR_BUNDLE_INVALID', `${o.location}: ${(err as Error).message}`, { cause: err });
        o.onSourceError(error);
        return fromLastKnownGood(error);
      }
    },
    follow() {
      if (!o.follow) return;
      if (isUrl(o.location)) {
        poller = createBundlePoller({
          url: o.location,
          token: o.config.token,
          timeoutMs: o.config.timeoutMs,
          maxBytes: o.config.maxBytes,
          longPollSeconds: o.config.longPollSeconds,
          minDelayMs: o.config.minDelayMs,
          maxDelayMs: o.config.maxDelayMs,
          ...(etag === undefined ? {} : { etag }),
          onBundle: async (bytes, tag) => {
            // A server without ETags answers 200 every time: the same bytes are not activated again.
            const digest = createHash('sha256').update(bytes).digest('hex');
            if (digest === lastDigest) return;
            lastDigest = digest;
            const bundle = await parseBundleArchive(o.location, bytes);
            // A refused bundle was already reported (and counted) by the swap hooks; resolving
            // here records its ETag, so the same bad bundle is refused once, not on every poll.
            await activate(bundle, 'poll', tag).catch(() => undefined);
          },
          onError: o.onSourceError,
        });
        poller.start();
        return;
      }
      watcher = watchPath({
        path: o.location,
        intervalMs: o.config.minDelayMs,
        ...(seen === undefined ? {} : { initial: seen }),
        onChange: async () => {
          await activate(await loadBundle(o.location), 'file', undefined).catch((err: unknown) => {
            if (!(err instanceof TollgateError)) throw err; // rejections are reported by the swap hooks
          });
        },
        onError: (err) =>
          o.onSourceError(new TollgateError('TG_ERR_BUNDLE_INVALID', `${o.location}: ${err.message}`, { cause: err })),
      });
    },
    async close() {
      await poller?.close();
      await watcher?.close();
    },
  };
}

/** Creates the lifecycle from config (reads the verification key); call start() next. */
export async function createPolicyLifecycle(options: PolicyLifecycleOptions): Promise<PolicyLifecycle> {
  const { logger } = options;
  const log = logger.child({ component: 'bundle' });
  const hooks = options.hooks ?? {};
  const verifier = await verifierFor(options.bundle);
  const rejections: Record<RejectionReason, number> = {
    unsigned: 0,
    bad_signature: 0,
    digest_mismatch: 0,
    malformed: 0,
    invalid: 0,
    smoke: 0,
  };
  let sourceErrors = 0;
  let compared = 0;
  let disagreements = 0;
  const safe = (fn: () => void): void => {
    try {
      fn();
    } catch {
      // hooks are telemetry
    }
  };

  const swapHooks = (role: 'active' | 'shadow'): SwapHooks => ({
    onActivate(event) {
      log.info(
        {
          role,
          revision: event.revision,
          previous: event.previousRevision,
          origin: event.origin,
          prepareMs: event.prepareMs,
        },
        `${role} policy revision ${event.revision} activated`,
      );
      if (role === 'active') safe(() => hooks.onActivate?.(event));
    },
    onReject(event: RejectionEvent) {
      if (role === 'active') rejections[event.reason] += 1;
      log.warn(
        { role, reason: event.reason, code: event.error.code, err: event.error.message, kept: event.activeRevision },
        `bundle rejected (${event.reason}); revision ${event.activeRevision ?? '(none)'} stays active`,
      );
      if (role === 'active') safe(() => hooks.onReject?.(event));
    },
    onDataChange(event) {
      if (role === 'active') safe(() => hooks.onDataChange?.(event));
    },
  });

  const base = { decisionPath: options.pdp.decisionPath, timeoutMs: options.pdp.timeoutMs, data: options.pdp.data };
  const smoke = options.bundle.smoke && {
    input: options.bundle.smoke.input as unknown as PolicyInput,
    ...(options.bundle.smoke.expectAllowed === undefined ? {} : { expectAllowed: options.bundle.smoke.expectAllowed }),
  };
  const common = {
    ...base,
    ...(smoke === undefined ? {} : { smoke }),
    ...(verifier === undefined ? {} : { verifier }),
  };
  const active = createSwappablePdp({ ...common, hooks: swapHooks('active') });
  const candidate =
    options.shadow.bundle === '' ? undefined : createSwappablePdp({ ...common, hooks: swapHooks('shadow') });

  const dynamic = options.bundle.source !== '';
  const location = dynamic
    ? options.bundle.source
    : options.pdp.bundle === ''
      ? options.defaultBundle
      : options.pdp.bundle;
  const store = options.bundle.persistenceDir === '' ? undefined : createBundleStore(options.bundle.persistenceDir);
  const sourceError =
    (role: 'active' | 'shadow') =>
    (error: TollgateError): void => {
      if (role === 'active') sourceErrors += 1;
      log.warn({ role, code: error.code, err: error.message }, `bundle source failed; the ${role} revision stays`);
      safe(() => hooks.onSourceError?.(error, role));
    };
  const runner = createSourceRunner({
    location,
    target: active,
    role: 'active',
    config: options.bundle,
    follow: dynamic,
    store,
    logger: log,
    onSourceError: sourceError('active'),
  });
  const shadowRunner =
    candidate === undefined
      ? undefined
      : createSourceRunner({
          location: options.shadow.bundle,
          target: candidate,
          role: 'shadow',
          config: options.bundle,
          follow: true,
          store: undefined,
          logger: log,
          onSourceError: sourceError('shadow'),
        });

  const pdp: Pdp =
    candidate === undefined
      ? active
      : createShadowPdp({
          active,
          candidate,
          onCompared(agreed) {
            compared += 1;
            if (!agreed) disagreements += 1;
            safe(() => hooks.onShadowCompared?.(agreed));
          },
          onDisagreement(d) {
            log.warn(
              { decisionId: d.decisionId, kind: d.kind, active: d.active, candidate: d.candidate },
              `shadow policy disagrees (${d.kind})`,
            );
            safe(() => hooks.onShadowDisagreement?.(d));
          },
        });

  let dataWatcher: Watcher | undefined;
  const applyFilePatch = async (): Promise<void> => {
    try {
      const patch = parsePatch(await readFile(options.data.watchFile, 'utf8'), options.data.watchFile);
      active.setFilePatch(patch);
      if (candidate?.info() !== undefined) {
        try {
          candidate.setFilePatch(patch);
        } catch (err) {
          log.warn({ err: (err as Error).message }, 'the watched data patch does not apply to the shadow candidate');
        }
      }
      log.info({ file: options.data.watchFile, operations: patch.length }, 'live data file applied');
    } catch (err) {
      const error =
        err instanceof TollgateError
          ? err
          : new TollgateError('TG_ERR_BAD_REQUEST', `${options.data.watchFile}: ${(err as Error).message}`, {
              cause: err,
            });
      log.warn({ code: error.code, err: error.message }, 'live data file rejected; data unchanged');
      safe(() => hooks.onDataRejected?.(error, 'file'));
    }
  };

  return {
    pdp,
    active,
    candidate,
    async start() {
      const event = await runner.first();
      runner.follow();
      if (shadowRunner !== undefined) {
        await shadowRunner
          .first()
          .catch((err: unknown) =>
            log.warn({ err: (err as Error).message }, 'shadow candidate not loaded; shadow mode idle until it is'),
          );
        shadowRunner.follow();
      }
      if (options.data.watchFile !== '') {
        const initial = await fingerprint(options.data.watchFile).catch(() => undefined);
        if (initial !== undefined) await applyFilePatch();
        dataWatcher = watchPath({
          path: options.data.watchFile,
          intervalMs: options.data.watchIntervalMs,
          ...(initial === undefined ? {} : { initial }),
          onChange: applyFilePatch,
          onError: (err) => log.warn({ err: err.message }, 'cannot read the watched data file'),
        });
      }
      return event;
    },
    async rollback() {
      const event = await active.rollback();
      const bundle = active.activeBundle();
      if (store !== undefined && bundle !== undefined)
        await store
          .save(bundle, undefined)
          .catch((err: unknown) => log.warn({ err }, 'could not persist the rolled-back bundle'));
      return event;
    },
    patchData(text) {
      try {
        const patch = parsePatch(text, 'data patch');
        const event = active.patchData(patch, 'api');
        if (candidate?.info() !== undefined) {
          try {
            candidate.patchData(patch, 'api');
          } catch (err) {
            log.warn({ err: (err as Error).message }, 'the data patch does not apply to the shadow candidate');
          }
        }
        log.info({ dataVersion: event.dataVersion, operations: patch.length }, 'live data patched');
        return event;
      } catch (err) {
        const error =
          err instanceof TollgateError
            ? err
            : new TollgateError('TG_ERR_BAD_REQUEST', (err as Error).message, { cause: err });
        safe(() => hooks.onDataRejected?.(error, 'api'));
        throw error;
      }
    },
    status() {
      return {
        ...active.status(),
        source: location,
        rejections: { ...rejections },
        sourceErrors,
        ...(candidate === undefined
          ? {}
          : { shadow: { ...candidate.status(), source: options.shadow.bundle, compared, disagreements } }),
      };
    },
    async close() {
      await dataWatcher?.close();
      await shadowRunner?.close();
      await runner.close();
      await pdp.close();
    },
  };
}
