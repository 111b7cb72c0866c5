import type { Metrics } from '../observability/metrics.js';
import type { RemoteRepository } from '../upstream/remote.js';
import { BlobFill, type FillContext } from './blob-fill.js';
import type { DownloadTracker } from './downloads.js';

/** What a set of fills needs: where spool files go, how long a download may take, byte counts. */
export interface FillSettings {
  readonly spoolDir: string;
  readonly fillTimeoutMs: number;
}

/** What becomes of a fill: how its verified file is published, and what a failure leaves in logs and metrics. */
export interface FillOutcome {
  readonly commit: FillContext['commit'];
  failed(err: unknown): void;
  /** After the fill ended either way (its lease, if any, goes). */
  finally?(): void;
}

/**
 * The blob downloads in progress on this replica, one {@link BlobFill} per digest, for the cache
 * (which commits them to storage) and the remote-only layer (which keeps nothing) alike: the one
 * place a fill is set up, counted in `pullthrough_fills_in_flight` and cleaned up.
 */
export class BlobFills {
  private readonly fills = new Map<string, BlobFill>();

  constructor(
    private readonly settings: FillSettings,
    private readonly metrics: Metrics,
    /** Downloads in progress, for the admin API and status page. */
    private readonly downloads?: DownloadTracker,
  ) {}

  /** The fill of `digest` in progress here, if any. */
  get(digest: string): BlobFill | undefined {
    return this.fills.get(digest);
  }

  /**
   * Starts downloading `digest` from `remote`; the fill is listed here until it ends.
   * `repoKey` is the `<space>/<repository>` it is linked under on commit; `uncached`: the bytes
   * are verified but not kept (the remote-only layer), as the downloads list shows.
   */
  start(remote: RemoteRepository, repoKey: string, digest: string, outcome: FillOutcome, uncached = false): BlobFill {
    const registry = remote.registry;
    const progress = this.downloads?.start({ digest, registry, repo: remote.name, uncached });
    const fill = new BlobFill(
      {
        spoolDir: this.settings.spoolDir,
        fillTimeoutMs: this.settings.fillTimeoutMs,
        onBytes: (n) => {
          this.metrics.upstreamBytes.inc({ registry }, n);
          progress?.add(n);
        },
        commit: outcome.commit,
      },
      remote,
      repoKey,
      digest,
    );
    this.fills.set(digest, fill);
    this.metrics.fillsInFlight.inc();
    fill.started.then(({ size }) => progress?.setTotal(size), () => {});
    fill.done
      .catch((err: unknown) => outcome.failed(err))
      .finally(() => {
        this.metrics.fillsInFlight.dec();
        progress?.end();
        if (this.fills.get(digest) === fill) this.fills.delete(digest);
        fill.release();
        outcome.finally?.();
      });
    return fill;
  }

  /** How many are in progress. */
  get size(): number {
    return this.fills.size;
  }

  /** Resolves once every fill in progress now has ended (committed or failed). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.fills.values()].map((f) => f.done));
  }
}
