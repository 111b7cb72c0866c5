import { mkdir, rm } from 'node:fs/promises';
import type { Config } from './config/index.js';
import { openBlobStore, openMetadataStore } from './storage/factory.js';
import type { BlobStore } from './storage/blob-store.js';
import type { MetadataStore } from './storage/metadata-store.js';
import { UpstreamPool } from './upstream/registry-upstream.js';
import { ChainRemotes } from './upstream/chain-remote.js';
import { OfflineSwitch } from './upstream/offline-switch.js';
import { PullThroughCache } from './cache/pull-through.js';
import { Evictor } from './cache/evictor.js';
import { Metrics } from './observability/metrics.js';
import type { Logger } from './observability/logger.js';
import { createApp } from './http/app.js';
import { RegistryIndex } from './http/target.js';
import { createPushRelay } from './http/push-relay.js';
import { createDoorAuth } from './http/door-auth.js';
import { CertificateAuthority } from './pki/index.js';
import { startMirrorDoor, startTlsDoor, startProxyDoor, startDnsDoor, startAdminDoor, HttpTraffic, type Door } from './doors/index.js';
import { DownloadTracker } from './cache/downloads.js';
import { createAdminApp } from './admin/app.js';
import { ADMIN_ROUTES } from './admin/routes.js';
import { pinnedBlobs } from './admin/pins.js';
import { statusPageRoutes } from './admin/status-page.js';
import { UpstreamActivity } from './admin/status-summary.js';
import { StatusHistory } from './observability/history.js';
import { RecentEvents } from './observability/recent-events.js';
import { createUpstreamLookup } from './upstream/dns-lookup.js';
import { tcpOptionsBinding } from './net/tcp-options.js';
import { sendFileBinding } from './net/send-file.js';
import { UpstreamFailureLog } from './observability/upstream-failure-log.js';
import { setupScript, corednsConfig, type SetupClient, SETUP_CLIENTS } from './setup/scripts.js';
import { AccessControl } from './http/access.js';
import { AccessRules } from './auth/rules.js';
import { ClientAuth } from './auth/client-auth.js';
import { HtpasswdUsers } from './auth/htpasswd.js';
import { TokenSigner } from './auth/tokens.js';
import { loadTokenSecret } from './auth/token-secret.js';
import { TokenBuckets } from './util/token-bucket.js';

/** How long SIGTERM waits for responses and blob downloads in progress before cutting them. */
export const DRAIN_GRACE_MS = 30_000;

/** A started pullthrough: its listeners' addresses and a way to stop it. */
export interface RunningServer {
  readonly addresses: Readonly<Record<string, { address: string; port: number }>>;
  readonly metrics: Metrics;
  /** Stops accepting, drains in-flight responses and downloads (bounded), closes storage. */
  close(): Promise<void>;
}

/** What a worker process adds to a server (see src/workers/). */
export interface ServerOptions {
  /** TLS session ticket keys shared by all workers (default: random for this process). */
  ticketKeys?: Buffer;
  /** The /metrics text of all workers combined, from the primary (default: this process's). */
  metricsText?: () => Promise<string>;
  /** Offline mode shared with the other workers (default: this process's own, from the config). */
  offline?: OfflineSwitch;
}

/**
 * The host clients reach this instance at, for setup scripts: publicUrl, else the Host the request
 * came in on (setupScript validates it), else the mirror's listen address.
 */
export function publicHostOf(config: Config, requestHost: string | undefined): string {
  if (config.publicUrl) return new URL(config.publicUrl).hostname;
  if (requestHost) return requestHost.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
  const h = config.listen.mirror?.host;
  return h && h !== '0.0.0.0' && h !== '::' ? h : '127.0.0.1';
}

/**
 * Readiness: both stores answer a cheap request within 2 s.
 * @throws Error naming each store that did not, and why (the /readyz body).
 */
async function probeStores(blobs: BlobStore, meta: MetadataStore): Promise<void> {
  const probe = async (what: string, call: () => Promise<unknown>): Promise<string | null> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('no answer within 2 s')), 2000)));
    try {
      await Promise.race([call(), timeout]);
      return null;
    } catch (err) {
      return `${what}: ${(err as Error).message}`;
    } finally {
      clearTimeout(timer);
    }
  };
  const problems = await Promise.all([
    probe(`metadata (${meta.kind})`, () => meta.getBlob('sha256:' + '0'.repeat(64))),
    probe(`blobs (${blobs.kind})`, () => blobs.stat('blobs/readiness-probe')),
  ]);
  const failed = problems.filter((p) => p !== null);
  if (failed.length) throw new Error(failed.join('; '));
}

/**
 * Builds pullthrough from a validated config and starts its listeners.
 * @throws when storage cannot be opened or a listener cannot bind (the error names the address).
 */
export async function startServer(config: Config, baseLog: Logger, opts: ServerOptions = {}): Promise<RunningServer> {
  // The status page's "recent errors": every warn/error line logged from here on is also kept.
  const events = new RecentEvents();
  const log = events.tap(baseLog);
  await mkdir(config.paths.dataDir, { recursive: true, mode: 0o750 });
  // Client authentication first: a bad htpasswd file or token secret stops the start before any
  // listener opens (never an open mirror by accident).
  let clientAuth: ClientAuth | undefined;
  if (config.auth.enabled) {
    const users = await HtpasswdUsers.open(config.auth.htpasswd!, log).catch((err: Error) => {
      throw new Error(`auth.htpasswd: ${err.message}`);
    });
    const secret = await loadTokenSecret(config).catch((err: Error) => {
      throw new Error(`auth.tokenSecret: ${err.message}`);
    });
    clientAuth = new ClientAuth(config, users, new TokenSigner(secret));
    log.info('client authentication on', { users: users.size, groups: Object.keys(config.auth.groups).length, rules: config.rules.length, tokenSecret: config.auth.tokenSecret !== undefined ? 'config' : 'file' });
  }
  const rules = new AccessRules(config);
  const rateLimit = config.rateLimit.requestsPerSecond !== null ? new TokenBuckets(config.rateLimit.requestsPerSecond, config.rateLimit.burst) : undefined;
  const access = new AccessControl({ config, rules, clientAuth });
  // Spool files are downloads that were in progress when the process died: never valid content.
  // paths.spool is this process's own: a worker's is a directory of its own (src/workers/primary.ts).
  await rm(config.paths.spool, { recursive: true, force: true });
  await mkdir(config.paths.spool, { recursive: true, mode: 0o700 });
  const blobs = await openBlobStore(config, { logger: log });
  const meta = await openMetadataStore(config, { logger: log });
  const metrics = new Metrics();
  metrics.cacheMaxSizeBytes.set(config.cache.maxSize ?? 0);
  const history = new StatusHistory();
  // The status page's upstream health without chains: sampled from the metrics while the server runs.
  const upstreamActivity = new UpstreamActivity(metrics);
  // Upstream names resolve through dns.forwarders when set: a node resolver hijacked to point
  // registries at pullthrough must not send pullthrough back to itself.
  const upstreams = new UpstreamPool(config, metrics, log, createUpstreamLookup(config));
  const evictor = config.cache.maxSize !== null ? new Evictor(config.cache.maxSize, blobs, meta, metrics, log, config.cache.evictionGrace, () => pinnedBlobs(meta)) : undefined;
  const downloads = new DownloadTracker();
  // The cache asks each registry's chain of upstreams (docs/upstream-chains.md); a chain's first
  // entry is the pool's client, shared with the push and token relays. Offline mode starts from
  // registries.<name>.offline; the admin API switches it at run time.
  const offline = opts.offline ?? new OfflineSwitch(Object.values(config.registries).filter((r) => r.offline).map((r) => r.name));
  const remotes = new ChainRemotes({ pool: upstreams, settings: config, metrics, log, offline, lookup: createUpstreamLookup(config) });
  // Chains of several entries exist from the start, so pullthrough_upstream_up shows them before the first pull.
  for (const r of Object.values(config.registries)) if (r.upstreams.length > 1) remotes.for(r);
  const cache = new PullThroughCache({ settings: config, blobs, meta, remotes, metrics, log, evictor, downloads });
  metrics.cacheSizeBytes.set(await meta.totalBlobSize());
  // A smaller maxSize than last run takes effect at start, not at the next download.
  void evictor?.trigger();
  const index = new RegistryIndex(config);
  let accepting = true;
  // The CA exists whenever pullthrough runs: /ca.crt and the setup scripts hand it out even before
  // the TLS or proxy door is switched on.
  const ca = await CertificateAuthority.load(config, { log });
  const setup = (client: string, requestHost: string | undefined): string | null => {
    if (client === 'coredns') return corednsConfig(config);
    if (!(SETUP_CLIENTS as readonly string[]).includes(client)) return null;
    return setupScript(client as SetupClient, { config, caPem: ca.caPem(), publicHost: publicHostOf(config, requestHost) });
  };
  const common = {
    config,
    cache,
    index,
    metrics,
    log,
    clientAuth,
    rateLimit,
    ready: () => probeStores(blobs, meta),
    accepting: () => accepting,
    caPem: () => ca.caPem(),
    setupScript: setup,
    metricsText: opts.metricsText,
    upstreamFailures: new UpstreamFailureLog(log),
    history,
  };
  // With client authentication on, the client's Authorization is pullthrough's own: pushes go
  // upstream with the credentials configured for the repository (after the rules' push check).
  const push = createPushRelay(upstreams, { centralCredentials: clientAuth !== undefined, offline });
  const doorAuth = createDoorAuth(upstreams, offline);
  // Started in this order, stopped in this order; their requests in progress are counted together.
  const doors: Door[] = [];
  const tcpOptions = tcpOptionsBinding();
  if (typeof tcpOptions === 'string') {
    log.warn(`the native TCP options module ${tcpOptions}: sockets keep the kernel's deep send buffers, and blob transfers to clients on the same host (a node's own containerd) are slower (docs/operations.md, Send buffers)`);
  }
  const sendFile = config.storage.driver === 'fs' && config.storage.sendfile ? sendFileBinding() : null;
  if (typeof sendFile === 'string') {
    log.warn(`the native send-file module ${sendFile}: cached blobs are streamed to plain-HTTP clients instead of sent by sendfile, at more CPU per byte (docs/performance.md, twentieth round)`);
  }
  const traffic = new HttpTraffic(log);

  try {
    if (config.listen.mirror) {
      const app = createApp({ ...common, door: 'mirror', access });
      const mirror = await startMirrorDoor(config, app.callback());
      traffic.watch(mirror.server);
      doors.push(mirror);
    }
    if (config.listen.tls || config.listen.proxy) {
      // CONNECT-tunnelled TLS is handed to the TLS door's server in-process, so both doors share
      // one app (door 'tls': pushes relayed); plain HTTP on the proxy port gets its own.
      const tlsApp = createApp({ ...common, door: 'tls', push, doorAuth, access });
      const tlsDoor = await startTlsDoor(config, tlsApp.callback(), ca, { log, ticketKeys: opts.ticketKeys });
      traffic.watch(tlsDoor.server);
      doors.push(tlsDoor);
      if (config.listen.proxy) {
        const proxyApp = createApp({ ...common, door: 'proxy', push, doorAuth, access });
        const proxyDoor = await startProxyDoor(config, proxyApp.callback(), tlsDoor, { log, lookup: createUpstreamLookup(config) });
        traffic.watch(proxyDoor.server);
        doors.push(proxyDoor);
      }
    }
    if (config.listen.dns) {
      const dnsDoor = await startDnsDoor(config, { log });
      metrics.dnsStats = dnsDoor.stats;
      doors.push(dnsDoor);
    }
    if (config.listen.admin) {
      // Last: the registry doors serve before anyone can steer the cache through this one.
      upstreamActivity.start();
      const adminApp = createAdminApp({ config, cache, blobs, meta, metrics, log, downloads, offline, index, rules, clientAuth }, [...ADMIN_ROUTES, statusPageRoutes({ history, events, activity: upstreamActivity })]);
      doors.push(await startAdminDoor(config.listen.admin, adminApp.callback()));
    }
  } catch (err) {
    upstreamActivity.stop();
    await Promise.allSettled(doors.map((d) => d.close()));
    await Promise.allSettled([remotes.close().then(() => upstreams.close()), meta.close(), blobs.close()]);
    throw err;
  }
  const addresses: Record<string, { address: string; port: number }> = {};
  for (const door of doors) if (door.bound) addresses[door.name] = door.bound;
  for (const [door, a] of Object.entries(addresses)) log.info('listening', { door, address: a.address, port: a.port });

  return {
    addresses,
    metrics,
    async close() {
      accepting = false;
      upstreamActivity.stop();
      // New connections stop at once (the DNS door closes: clients retry another resolver); idle
      // keep-alive connections close; responses and blob downloads in progress get DRAIN_GRACE_MS.
      for (const door of doors) door.stopAccepting();
      const deadline = Date.now() + DRAIN_GRACE_MS;
      while ((traffic.active > 0 || cache.inFlight > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      await Promise.allSettled(doors.map((d) => d.close()));
      await Promise.allSettled([remotes.close().then(() => upstreams.close()), meta.close(), blobs.close()]);
    },
  };
}
