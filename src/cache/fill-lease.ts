import type { Lock, MetadataStore } from '../storage/metadata-store.js';
import type { Metrics } from '../observability/metrics.js';
import type { Logger } from '../observability/logger.js';

/**
 * The cross-replica lease on one blob download (`fill:<digest>`): whoever holds it downloads,
 * replicas that do not wait for the blob to land (see `BlobPolicy.waitForForeignFill` in cache/blobs.ts).
 *
 * ## When renewing fails
 * A lease only saves upstream traffic; correctness never depends on it. The download is verified
 * by digest and its commit is idempotent (same key, same bytes), so two replicas downloading the
 * same blob cost one extra upstream GET and nothing else. Aborting a download, by contrast,
 * breaks every client streaming it. So a holder never aborts because of its lease:
 * - Redis does not answer (`extend` throws): nobody can take the lease while Redis is away, so
 *   the holder keeps downloading and tries again at the next renewal.
 * - The lease expired (`extend` answers false) and is free (Redis restarted empty, or renewals
 *   were late): the holder takes it back.
 * - The lease expired and another replica holds it: that replica is now the leader and downloads
 *   too. This one stops renewing (it could not extend another's lease anyway: tokens are
 *   compared inside Redis), finishes its download for the clients already reading it, commits,
 *   and never releases the other's lease.
 */
export class FillLease {
  private timer: NodeJS.Timeout | undefined;
  private renewing = false;
  private lost = false;
  private released = false;
  private unreachableLogged = false;

  private constructor(
    private lock: Lock,
    private readonly name: string,
    private readonly ttlMs: number,
    private readonly meta: MetadataStore,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  /**
   * Takes the lease `name` and starts renewing it every third of `ttlMs`; null when another
   * replica holds it.
   * @throws StorageUnavailableError when the metadata store cannot be reached.
   */
  static async acquire(meta: MetadataStore, name: string, ttlMs: number, metrics: Metrics, log: Logger): Promise<FillLease | null> {
    const lock = await meta.tryLock(name, ttlMs);
    if (!lock) return null;
    const lease = new FillLease(lock, name, ttlMs, meta, metrics, log);
    lease.timer = setInterval(() => void lease.renew(), Math.max(100, Math.floor(ttlMs / 3)));
    lease.timer.unref();
    return lease;
  }

  /** False once another replica took the lease over. */
  get held(): boolean {
    return !this.lost;
  }

  private async renew(): Promise<void> {
    if (this.renewing || this.lost || this.released) return;
    this.renewing = true;
    try {
      const extended = await this.lock.extend(this.ttlMs);
      // The download may have ended meanwhile: then the lease is released, not lost.
      if (extended || this.released) {
        this.unreachableLogged = false;
        return;
      }
      const again = await this.meta.tryLock(this.name, this.ttlMs);
      if (again && this.released) {
        // The download ended while we were taking the lease back: nobody must wait on it.
        await again.release();
        return;
      }
      if (again) {
        this.lock = again;
        this.log.warn('fill lease had expired; taken back', { lease: this.name });
        return;
      }
      this.lost = true;
      clearInterval(this.timer);
      this.metrics.fillLeaseLost.inc();
      this.log.warn('fill lease lost to another replica; finishing this download for its readers', { lease: this.name });
    } catch (err) {
      // Redis away: see the class comment. Logged once per outage, not every renewal.
      if (!this.unreachableLogged) this.log.warn('fill lease not renewed; download goes on', { lease: this.name, error: (err as Error).message });
      this.unreachableLogged = true;
    } finally {
      this.renewing = false;
    }
  }

  /** Stops renewing and releases the lease if this replica still holds it. Never throws. */
  async release(): Promise<void> {
    this.released = true;
    clearInterval(this.timer);
    if (this.lost) return;
    await this.lock.release().catch(() => {});
  }
}
