import { rm } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { OciError } from '../oci/errors.js';
import type { BlobStore, ByteRange } from '../storage/blob-store.js';
import type { MetadataStore } from '../storage/metadata-store.js';
import { BlobNotFoundError, StorageUnavailableError } from '../storage/errors.js';
import { blobKey } from '../storage/keys.js';
import { UpstreamIntegrityError, UpstreamStatusError, UpstreamUnavailableError } from '../upstream/errors.js';
import type { Metrics } from '../observability/metrics.js';
import type { Logger } from '../observability/logger.js';
import { SingleFlight } from '../util/single-flight.js';
import type { BlobFill } from './blob-fill.js';
import type { DownloadTracker } from './downloads.js';
import { BlobFills, type FillSettings } from './fills.js';
import { confirmUpstream, type Confirmations } from './confirmations.js';
import type { Evictor } from './evictor.js';
import { FillLease } from './fill-lease.js';
import type { RemoteOnly } from './remote-only.js';
import type { RemoteTarget } from './remote-target.js';
import type { BlobHandle } from './results.js';

/** How long a request waits for a blob another replica is downloading (at most `fillTimeout`). */
const FOREIGN_FILL_WAIT_MS = 5 * 60_000;

/** The blob policy's settings: `cache.fillLease`, `cache.evictionGrace`, and the fills' own. */
export interface BlobSettings {
  readonly fill: FillSettings;
  readonly fillLeaseMs: number;
  readonly evictionGraceMs: number;
}

export interface BlobPolicyDeps {
  readonly settings: BlobSettings;
  readonly blobs: BlobStore;
  readonly meta: MetadataStore;
  readonly confirmations: Confirmations;
  /** Where a confirmed blob comes from while the blob store cannot read it. */
  readonly remoteOnly: RemoteOnly;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Size-capped LRU eviction, when `cache.maxSize` is set. */
  readonly evictor?: Evictor;
  /** Downloads in progress, for the admin API and status page. */
  readonly downloads?: DownloadTracker;
}

/**
 * Blobs over (blob store, metadata store, remote): served from storage once the repository is
 * confirmed (`statBlob`); a miss is one shared download (`openBlob`, through a {@link BlobFill})
 * per digest however many clients want it, on this replica and, through a lease in the metadata
 * store, across replicas. A HEAD of a miss is answered from `statBlob` (or the fill's size), never
 * a download.
 */
export class BlobPolicy {
  private readonly fills: BlobFills;
  private readonly fillStarts = new SingleFlight<BlobFill | null>();
  /** While a cached blob streams, its last access is refreshed this often so no replica evicts it. */
  private readonly touchWhileReadingMs: number;

  constructor(private readonly d: BlobPolicyDeps) {
    this.fills = new BlobFills(d.settings.fill, d.metrics, d.downloads);
    this.touchWhileReadingMs = Math.floor(d.settings.evictionGraceMs / 3);
  }

  /**
   * A blob: from storage when cached (after confirming the repository), else from a shared upstream
   * download; for HEAD, a miss is answered from an upstream stat without downloading.
   * @throws OciError, UpstreamStatusError, UpstreamUnavailableError; StorageUnavailableError
   *   when the metadata store is unreachable (the caller falls back to the remote-only layer).
   */
  async blob(at: RemoteTarget, digest: string, head: boolean): Promise<BlobHandle> {
    const rec = await this.d.meta.getBlob(digest);
    if (rec) {
      await this.d.confirmations.confirm(at, digest, 'blob');
      void this.d.meta.touchBlob(digest, Date.now()).catch(() => {});
      const redirectUrl = this.d.blobs.redirectUrl?.bind(this.d.blobs);
      return {
        digest,
        size: rec.size,
        cache: 'hit',
        redirect: redirectUrl ? () => redirectUrl(blobKey(digest)).catch(() => null) : undefined,
        open: async (range) => {
          try {
            return this.held(digest, await this.d.blobs.read(blobKey(digest), range));
          } catch (err) {
            if (err instanceof StorageUnavailableError && err.backend === this.d.blobs.kind) {
              // The bytes are unreadable for now; the repository is confirmed: relay from upstream.
              this.d.remoteOnly.note('blob_store_unavailable', err);
              return (await this.d.remoteOnly.fromUpstream(at, digest)).open(range);
            }
            if (!(err instanceof BlobNotFoundError)) throw err;
            // Metadata outlived the bytes (evicted elsewhere, lost volume): forget and refetch.
            this.d.log.warn('blob record without bytes; fetching again', { digest });
            await this.d.meta.deleteBlob(digest);
            return (await this.fromUpstream(at, digest)).open(range);
          }
        },
      };
    }
    if (head) {
      const fill = this.fills.get(digest);
      if (fill?.size !== undefined && fill.repos.has(at.key)) {
        return { digest, size: fill.size, cache: 'miss', open: () => Promise.reject(new Error('HEAD has no body')) };
      }
      const { size } = await confirmUpstream(at, digest, 'blob');
      return { digest, size, cache: 'pass', open: () => Promise.reject(new Error('HEAD has no body')) };
    }
    return this.fromUpstream(at, digest);
  }

  /** Marks a cached blob as in use (not evictable) for as long as `stream` is open. */
  private held(digest: string, stream: Readable): Readable {
    const release = this.d.evictor?.hold(digest);
    const timer = setInterval(() => void this.d.meta.touchBlob(digest, Date.now()).catch(() => {}), this.touchWhileReadingMs);
    timer.unref();
    stream.once('close', () => {
      clearInterval(timer);
      release?.();
    });
    return stream;
  }

  private async fromUpstream(at: RemoteTarget, digest: string): Promise<BlobHandle> {
    let fill = this.fills.get(digest);
    if (fill && !fill.repos.has(at.key)) {
      await this.d.confirmations.confirm(at, digest, 'blob');
      fill.repos.add(at.key);
    }
    fill ??= (await this.fillStarts.run(digest, () => this.startFill(at, digest))) ?? undefined;
    if (!fill) return this.waitForForeignFill(at, digest);
    if (!fill.repos.has(at.key)) {
      // Joined a fill another repository started while we were deciding.
      await this.d.confirmations.confirm(at, digest, 'blob');
      fill.repos.add(at.key);
    }
    const { size } = await fill.started;
    const f = fill;
    return {
      digest,
      size,
      cache: 'miss',
      open: async (range?: ByteRange): Promise<Readable> => {
        if (this.fills.get(digest) === f) return f.reader(range);
        // The fill finished between answering and reading: the bytes are in storage now.
        await f.done;
        return this.held(digest, await this.d.blobs.read(blobKey(digest), range));
      },
    };
  }

  /** Starts a download, or returns null when another replica holds the download lease. */
  private async startFill(at: RemoteTarget, digest: string): Promise<BlobFill | null> {
    const existing = this.fills.get(digest);
    if (existing) return existing;
    const lock = await FillLease.acquire(this.d.meta, `fill:${digest}`, this.d.settings.fillLeaseMs, this.d.metrics, this.d.log);
    if (!lock) return null;
    // Another replica may have finished between our metadata read and taking the lease.
    const landed = await this.d.meta.getBlob(digest).catch(async (err: unknown) => {
      await lock.release();
      throw err;
    });
    if (landed) {
      await lock.release();
      return null;
    }
    const registry = at.t.registry.name;
    return this.fills.start(at.remote, at.key, digest, {
      commit: (dg, path, size, repos) => this.commit(dg, path, size, repos),
      failed: (err) => {
        const reason =
          err instanceof UpstreamIntegrityError ? 'integrity'
          : err instanceof UpstreamStatusError ? err.label
          : err instanceof UpstreamUnavailableError ? 'unavailable'
          : err instanceof StorageUnavailableError ? 'storage_unavailable'
          : 'other';
        this.d.metrics.fillFailures.inc({ reason });
        this.d.log.warn('blob download failed', { registry, repo: at.t.repo, digest, reason, error: (err as Error).message });
      },
      finally: () => void lock.release(),
    });
  }

  private async commit(digest: string, path: string, size: number, repos: ReadonlySet<string>): Promise<void> {
    try {
      await this.d.blobs.putFile(blobKey(digest), path, size);
    } catch (err) {
      await rm(path, { force: true });
      throw err;
    }
    // Links first: replicas waiting for the record then serve it without asking upstream again.
    for (const r of repos) {
      const i = r.indexOf('/');
      await this.d.meta.link(r.slice(0, i), r.slice(i + 1), digest);
    }
    await this.d.meta.putBlob(digest, { size, lastAccess: Date.now() });
    // The shared total, which other replicas and workers add to as well: a gauge that only added
    // this process's downloads to the total it read at start would drift apart between them.
    const total = await this.d.meta.totalBlobSize().catch(() => null);
    if (total !== null) this.d.metrics.cacheSizeBytes.set(total);
    else this.d.metrics.cacheSizeBytes.inc(size);
    void this.d.evictor?.trigger();
  }

  /** Another replica is downloading: wait (bounded) for it to land, or take over if it died. */
  private async waitForForeignFill(at: RemoteTarget, digest: string): Promise<BlobHandle> {
    const deadline = Date.now() + Math.min(FOREIGN_FILL_WAIT_MS, this.d.settings.fill.fillTimeoutMs);
    let delay = 100;
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 1000);
      if (await this.d.meta.getBlob(digest)) {
        this.d.metrics.fillWaits.inc({ outcome: 'landed' });
        return this.blob(at, digest, false);
      }
      const fill = this.fills.get(digest) ?? (await this.fillStarts.run(digest, () => this.startFill(at, digest)));
      if (fill) {
        // The lease was free again: the other replica stopped (died, or its download failed).
        this.d.metrics.fillWaits.inc({ outcome: 'took_over' });
        return this.fromUpstream(at, digest);
      }
    }
    this.d.metrics.fillWaits.inc({ outcome: 'gave_up' });
    throw new OciError('UNAVAILABLE', 'blob is being fetched by another replica; try again', { digest }, { 'retry-after': '5' });
  }

  /** Blob downloads in progress on this replica. */
  get inFlight(): number {
    return this.fills.size;
  }

  /** Waits for downloads in progress to finish (or fail). */
  drain(): Promise<void> {
    return this.fills.drain();
  }
}
