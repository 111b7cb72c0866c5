import type { BlobStore } from '../storage/blob-store.js';
import type { MetadataStore } from '../storage/metadata-store.js';
import { blobKey } from '../storage/keys.js';
import type { Metrics } from '../observability/metrics.js';
import type { Logger } from '../observability/logger.js';

/** Evict down to this share of maxSize, so one new blob does not trigger a pass every time. */
const LOW_WATERMARK = 0.9;
/** Lease so that only one replica evicts at a time. */
const EVICT_LOCK_TTL_MS = 60_000;
const BATCH = 100;

/**
 * Keeps cached blob bytes under `cache.maxSize`, least recently used first. Never evicts a blob
 * being downloaded (it has no record yet), being served on this replica (reference count), or read
 * on any replica within `cache.evictionGrace` (readers touch it every third of that while
 * streaming, so a slow reader on another replica keeps its blob), nor a pinned one (the admin
 * API's pins, asked for through `pinned` before a pass that has to evict).
 */
export class Evictor {
  private readonly inUse = new Map<string, number>();
  private running: Promise<void> | null = null;
  private again = false;

  constructor(
    private readonly maxSize: number,
    private readonly blobs: BlobStore,
    private readonly meta: MetadataStore,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    /** `cache.evictionGrace`: blobs read this recently are in use. */
    private readonly graceMs = 60_000,
    /** Blobs pins keep, and their bytes (src/admin/pins.ts); none without it. */
    private readonly pinned?: () => Promise<{ digests: ReadonlySet<string>; bytes: number }>,
  ) {}

  /** Marks a blob as being served here until the returned function is called. */
  hold(digest: string): () => void {
    this.inUse.set(digest, (this.inUse.get(digest) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (this.inUse.get(digest) ?? 1) - 1;
      if (n <= 0) this.inUse.delete(digest);
      else this.inUse.set(digest, n);
    };
  }

  /** Runs a pass soon (coalescing concurrent triggers); resolves when the pass is done. */
  trigger(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.pass().catch((err: Error) => this.log.warn('eviction pass failed', { error: err.message }));
      } while (this.again);
    })().finally(() => (this.running = null));
    return this.running;
  }

  private async pass(): Promise<void> {
    let total = await this.meta.totalBlobSize();
    this.metrics.cacheSizeBytes.set(total);
    if (total <= this.maxSize) return;
    const lock = await this.meta.tryLock('evict', EVICT_LOCK_TTL_MS);
    if (!lock) return; // another replica is at it
    try {
      const target = Math.floor(this.maxSize * LOW_WATERMARK);
      // Unreadable pins stop the pass (the catch in trigger logs it): evicting blind could take a pinned blob.
      const pins = this.pinned ? await this.pinned() : { digests: new Set<string>(), bytes: 0 };
      this.metrics.pinnedBytes.set(pins.bytes);
      if (pins.bytes > this.maxSize) {
        this.metrics.pinnedOverMaxSize.inc();
        this.log.warn('pinned content alone exceeds cache.maxSize: it stays; unpin something or raise maxSize', { pinnedBytes: pins.bytes, maxSize: this.maxSize });
      }
      const skipped = new Set<string>(pins.digests);
      while (total > target) {
        const candidates = (await this.meta.oldestBlobs(BATCH + skipped.size)).filter((c) => !skipped.has(c.digest));
        if (candidates.length === 0) break;
        const now = Date.now();
        let progressed = false;
        for (const c of candidates) {
          if (total <= target) break;
          if (this.inUse.has(c.digest) || now - c.lastAccess < this.graceMs) {
            skipped.add(c.digest);
            continue;
          }
          // Record first: a reader that still finds the record but not the bytes refetches.
          await this.meta.deleteBlob(c.digest);
          await this.blobs.delete(blobKey(c.digest));
          total -= c.size;
          progressed = true;
          this.metrics.evictions.inc();
          this.metrics.evictedBytes.inc(c.size);
          this.log.info('evicted blob', { digest: c.digest, size: c.size, idleSeconds: Math.round((now - c.lastAccess) / 1000) });
        }
        if (!progressed && candidates.every((c) => skipped.has(c.digest))) break;
        await lock.extend(EVICT_LOCK_TTL_MS);
      }
      total = await this.meta.totalBlobSize();
      this.metrics.cacheSizeBytes.set(total);
      if (total > this.maxSize) this.log.warn('cache over maxSize: everything left is in use', { total, maxSize: this.maxSize });
    } finally {
      await lock.release();
    }
  }
}
