import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, rm } from 'node:fs/promises';
import type { Config } from './config/index.js';
import { openBlobStore, openMetadataStore } from './storage/factory.js';
import type { BlobStore } from './storage/blob-store.js';
import type { MetadataStore } from './storage/metadata-store.js';
import { UpstreamPool } from './upstream/registry-upstream.js';
import { PullThroughCache } from './cache/pull-through.js';
import { Evictor } from './cache/evictor.js';
import { Metrics } from './observability/metrics.js';
import type { Logger } from './observability/logger.js';
import { createApp } from './http/app.js';
import { RegistryIndex } from './http/target.js';
import { createPushRelay } from './http/push-relay.js';
import { createDoorAuth } from './http/door-auth.js';
import { CertificateAuthority } from './pki/index.js';
import { startTlsDoor, startProxyDoor, startDnsDoor, type TlsDoor, type ProxyDoor, type DnsDoor } from './doors/index.js';
import { createUpstreamLookup } from './upstream/dns-lookup.js';
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
/** Node's default header limit (16 KiB) made explicit: larger requests get 431, never a crash. */
const MAX_HEADER_BYTES = 16 * 1024;

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
}

function listen(server: HttpServer, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
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
export async function startServer(config: Config, log: Logger, opts: ServerOptions = {}): Promise<RunningServer> {
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
  // Upstream names resolve through dns.forwarders when set: a node resolver hijacked to point
  // registries at pullthrough must not send pullthrough back to itself.
  const upstreams = new UpstreamPool(config, metrics, log, createUpstreamLookup(config));
  const evictor = config.cache.maxSize !== null ? new Evictor(config.cache.maxSize, blobs, meta, metrics, log, config.cache.evictionGrace) : undefined;
  const cache = new PullThroughCache({ config, blobs, meta, upstreams, metrics, log, evictor });
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
  };
  // With client authentication on, the client's Authorization is pullthrough's own: pushes go
  // upstream with the credentials configured for the repository (after the rules' push check).
  const push = createPushRelay(upstreams, { centralCredentials: clientAuth !== undefined });
  const doorAuth = createDoorAuth(upstreams);
  let tlsDoor: TlsDoor | undefined;
  let proxyDoor: ProxyDoor | undefined;
  let dnsDoor: DnsDoor | undefined;

  const servers: Array<{ name: string; server: HttpServer }> = [];
  const addresses: Record<string, { address: string; port: number }> = {};
  let active = 0;
  const track = (server: HttpServer): void => {
    // Malformed requests, oversized headers, resets: Node answers or drops them; note why.
    server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      log.debug('client connection error', { code: err.code, error: err.message });
      if (socket.writable && err.code !== 'ECONNRESET') {
        const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
        socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
      } else {
        socket.destroy();
      }
    });
    server.on('request', (_req, res) => {
      active++;
      res.once('close', () => active--);
    });
  };

  try {
    if (config.listen.mirror) {
      const app = createApp({ ...common, door: 'mirror', access });
      const server = createServer({ maxHeaderSize: MAX_HEADER_BYTES, keepAliveTimeout: 65_000 }, app.callback());
      track(server);
      addresses.mirror = await listen(server, config.listen.mirror.host, config.listen.mirror.port).catch((err: Error) => {
        throw new Error(`listen.mirror: cannot listen on ${config.listen.mirror!.host}:${config.listen.mirror!.port}: ${err.message}`);
      });
      servers.push({ name: 'mirror', server });
    }
    if (config.listen.tls || config.listen.proxy) {
      // CONNECT-tunnelled TLS is handed to the TLS door's server in-process, so both doors share
      // one app (door 'tls': pushes relayed); plain HTTP on the proxy port gets its own.
      const tlsApp = createApp({ ...common, door: 'tls', push, doorAuth, access });
      tlsDoor = await startTlsDoor(config, tlsApp.callback(), ca, { log, ticketKeys: opts.ticketKeys });
      track(tlsDoor.server as unknown as HttpServer);
      if (tlsDoor.address) addresses.tls = tlsDoor.address;
      if (config.listen.proxy) {
        const proxyApp = createApp({ ...common, door: 'proxy', push, doorAuth, access });
        proxyDoor = await startProxyDoor(config, proxyApp.callback(), tlsDoor, { log, lookup: createUpstreamLookup(config) });
        track(proxyDoor.server);
        addresses.proxy = proxyDoor.address;
      }
    }
    if (config.listen.dns) {
      dnsDoor = await startDnsDoor(config, { log });
      metrics.dnsStats = dnsDoor.stats;
      addresses.dns = { address: dnsDoor.address.host, port: dnsDoor.address.port };
    }
  } catch (err) {
    await Promise.allSettled([tlsDoor?.close(), proxyDoor?.close(), dnsDoor?.close()]);
    for (const s of servers) s.server.close();
    await Promise.allSettled([upstreams.close(), meta.close(), blobs.close()]);
    throw err;
  }
  for (const [door, a] of Object.entries(addresses)) log.info('listening', { door, address: a.address, port: a.port });

  return {
    addresses,
    metrics,
    async close() {
      accepting = false;
      // New connections stop at once; DNS answers stop too (clients retry another resolver).
      void dnsDoor?.close();
      (tlsDoor?.server as { close?: () => void } | undefined)?.close?.();
      proxyDoor?.server.close();
      for (const { server } of servers) {
        server.close();
        server.closeIdleConnections();
      }
      const deadline = Date.now() + DRAIN_GRACE_MS;
      while ((active > 0 || cache.inFlight > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      for (const { server } of servers) server.closeAllConnections();
      await Promise.allSettled([tlsDoor?.close(), proxyDoor?.close(), dnsDoor?.close()]);
      await Promise.allSettled([upstreams.close(), meta.close(), blobs.close()]);
    },
  };
}
