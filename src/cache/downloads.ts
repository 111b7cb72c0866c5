/**
 * Blob downloads in progress on this process, with their bytes: what the admin API's downloads
 * list, `pullthrough status REF` and the status page's progress bars show. Fed by the cache's blob
 * fills (one entry per upstream download, however many clients read it); reads never block them.
 */

/** One download in progress. */
export interface DownloadProgress {
  readonly digest: string;
  /** Configured registry name. */
  readonly registry: string;
  /** The repository whose request started the download. */
  readonly repo: string;
  /** Bytes received and written so far. */
  readonly bytesDone: number;
  /** The blob's size when the upstream announced it. */
  readonly bytesTotal: number | undefined;
  /** When the download started (ms since the epoch). */
  readonly startedAt: number;
  /** True when the bytes are verified but not kept (served while a store is unreachable). */
  readonly uncached: boolean;
}

/** The handle a fill reports through. Every method is cheap and never throws. */
export interface DownloadReport {
  /** `n` more bytes arrived. */
  add(n: number): void;
  /** The upstream announced the total size. */
  setTotal(total: number | undefined): void;
  /** Finished, failed or abandoned: the entry goes. Idempotent. */
  end(): void;
}

interface Entry {
  digest: string;
  registry: string;
  repo: string;
  bytesDone: number;
  bytesTotal: number | undefined;
  startedAt: number;
  uncached: boolean;
}

export class DownloadTracker {
  private readonly active = new Set<Entry>();

  /** Registers a download that is starting. */
  start(info: { digest: string; registry: string; repo: string; uncached?: boolean }): DownloadReport {
    const e: Entry = { ...info, uncached: info.uncached ?? false, bytesDone: 0, bytesTotal: undefined, startedAt: Date.now() };
    this.active.add(e);
    return {
      add: (n) => {
        e.bytesDone += n;
      },
      setTotal: (total) => {
        e.bytesTotal = total;
      },
      end: () => {
        this.active.delete(e);
      },
    };
  }

  /** Downloads in progress, oldest first (copies: callers may keep them). */
  list(): DownloadProgress[] {
    return [...this.active].map((e) => ({ ...e }));
  }

  /** Downloads in progress for one blob (one per process, but a bypass download may run beside a cached one). */
  forDigest(digest: string): DownloadProgress[] {
    return this.list().filter((e) => e.digest === digest);
  }
}
