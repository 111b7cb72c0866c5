/**
 * The cache policies in-process: a PullThroughCache over real local stores in a temp dir (the fs
 * blob store and the file metadata store, as src/storage/factory.ts opens them) and a scripted
 * FakeRemote, with switches that make either store throw StorageUnavailableError as an
 * unreachable Redis or S3 would. For fast policy tests beside the end-to-end ones.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Config, RegistryConfig } from '../../src/config/index.js';
import { PullThroughCache } from '../../src/cache/pull-through.js';
import { DownloadTracker } from '../../src/cache/downloads.js';
import type { Target } from '../../src/cache/results.js';
import type { Credentials } from '../../src/upstream/remote.js';
import { openBlobStore, openMetadataStore } from '../../src/storage/factory.js';
import type { BlobStore } from '../../src/storage/blob-store.js';
import type { MetadataStore } from '../../src/storage/metadata-store.js';
import { StorageUnavailableError } from '../../src/storage/errors.js';
import { Metrics } from '../../src/observability/metrics.js';
import { silentLogger } from '../../src/observability/logger.js';
import { FakeRemote, type RemoteMethod } from '../helpers/fake-remote.js';
import type { RemoteRegistry, RemoteRepository } from '../../src/upstream/remote.js';
import { testConfig } from '../helpers/config.js';

export const REGISTRY = 'fake.test';

/** A switch that makes every call of a store reject as an unreachable backend does; counts the calls made while down. */
export interface Outage {
  down: boolean;
  /** Method names called while down (writes among them would be a bug). */
  readonly calledWhileDown: string[];
}

/** `store` with an outage switch: while `down`, every method rejects with StorageUnavailableError(store.kind). */
function withOutage<T extends { readonly kind: string }>(store: T, outage: Outage): T {
  return new Proxy(store, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        if (outage.down) {
          outage.calledWhileDown.push(String(prop));
          return Promise.reject(new StorageUnavailableError(target.kind, 'connection refused (scripted outage)'));
        }
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

export interface CacheFixture {
  readonly cache: PullThroughCache;
  readonly fake: FakeRemote;
  /** The real stores underneath (no outage switch): what was written. */
  readonly blobs: BlobStore;
  readonly meta: MetadataStore;
  readonly metaOutage: Outage;
  readonly blobOutage: Outage;
  readonly metrics: Metrics;
  readonly downloads: DownloadTracker;
  readonly config: Config;
  /**
   * Holds calls of `method` (before they reach the fake, so uncounted) until the returned
   * function is called: how a test keeps one upstream call open while others pile up behind it.
   */
  hold(method: RemoteMethod): () => void;
  /** A target in the fake registry (credentials: undefined = the configured account). */
  target(repo: string, credentials?: Credentials | null): Target;
  close(): Promise<void>;
}

/** Starts a cache over a fresh temp dir; `doc` is extra configuration (e.g. `cache.tags`). */
export async function cacheFixture(doc: Record<string, unknown> = {}): Promise<CacheFixture> {
  const dir = await mkdtemp(join(tmpdir(), 'pt-cache-'));
  const config = testConfig(dir, { registries: { [REGISTRY]: { upstream: `http://${REGISTRY}` } }, ...doc });
  const registry: RegistryConfig = config.registries[REGISTRY]!;
  await mkdir(config.paths.spool, { recursive: true, mode: 0o700 });
  const blobs = await openBlobStore(config);
  const meta = await openMetadataStore(config);
  const metaOutage: Outage = { down: false, calledWhileDown: [] };
  const blobOutage: Outage = { down: false, calledWhileDown: [] };
  const fake = new FakeRemote(REGISTRY);
  const metrics = new Metrics();
  const downloads = new DownloadTracker();
  const gates = new Map<string, Promise<void>>();
  const gated = (repo: RemoteRepository): RemoteRepository =>
    new Proxy(repo, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver) as unknown;
        if (typeof v !== 'function') return v;
        return async (...args: unknown[]) => {
          const gate = gates.get(String(prop));
          if (gate) await gate;
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
  const remote: RemoteRegistry = { name: fake.name, repository: (name, credentials) => gated(fake.repository(name, credentials)) };
  const cache = new PullThroughCache({
    settings: config,
    blobs: withOutage(blobs, blobOutage),
    meta: withOutage(meta, metaOutage),
    remotes: { for: () => remote },
    metrics,
    log: silentLogger,
    downloads,
  });
  return {
    cache,
    fake,
    blobs,
    meta,
    metaOutage,
    blobOutage,
    metrics,
    downloads,
    config,
    hold(method) {
      let release!: () => void;
      gates.set(method, new Promise<void>((r) => (release = r)));
      return () => {
        gates.delete(method);
        release();
      };
    },
    target: (repo, credentials) => ({ registry, repo, credentials }),
    async close() {
      await cache.drain();
      await Promise.allSettled([meta.close(), blobs.close()]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Lets queued work run for `ms` (requests started meanwhile reach their single-flight point). */
export const settle = (ms = 50): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Every byte of a stream. */
export async function readAll(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
