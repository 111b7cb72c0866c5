/** How long all buffers must sit unused before they are let go, by default. */
const IDLE_RELEASE_MS = 2_000;

/**
 * Multipart upload part buffers shared by every upload of one S3BlobStore, at most `max` of them,
 * reused from part to part and upload to upload.
 *
 * Why: lib-storage assembled each part by concatenating the file stream's chunks into a fresh
 * buffer, so uploading 1 GiB left 1 GiB of large garbage that V8 frees only at its next full GC
 * (RSS showed it for tens of seconds after a cold fill), and each concurrent upload held
 * (queueSize + 1) parts of its own. Here memory for uploads is bounded by `max × size` however many
 * blobs are being committed at once; an upload waits for a free buffer instead.
 */
export class PartBuffers {
  private readonly free: Buffer[] = [];
  private readonly waiting: Array<(b: Buffer) => void> = [];
  private allocated = 0;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly size: number,
    readonly max: number,
    private readonly idleReleaseMs = IDLE_RELEASE_MS,
  ) {}

  /** A buffer of `size` bytes; waits while all `max` are in use. */
  take(): Promise<Buffer> {
    const b = this.free.pop();
    if (b) return Promise.resolve(b);
    if (this.allocated < this.max) {
      this.allocated++;
      return Promise.resolve(Buffer.allocUnsafeSlow(this.size));
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /**
   * Hands a buffer back: to the longest waiter, else to the free list. Once none has been in use
   * for idleReleaseMs, all are let go, so no memory stays held between uploads.
   */
  give(b: Buffer): void {
    const next = this.waiting.shift();
    if (next) return next(b);
    this.free.push(b);
    if (this.free.length === this.allocated && !this.idleTimer) {
      this.idleTimer = setTimeout(() => {
        this.idleTimer = undefined;
        if (this.free.length !== this.allocated) return;
        this.allocated = 0;
        this.free.length = 0;
      }, this.idleReleaseMs);
      this.idleTimer.unref();
    }
  }

  /** Buffers allocated and not let go (in use or free). */
  get held(): number {
    return this.allocated;
  }
}
