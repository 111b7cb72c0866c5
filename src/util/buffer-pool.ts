/**
 * Idle read buffers of one size, shared by every stream of the process that reads into buffers of
 * that size (cached blob bodies, spool readers that read the file).
 *
 * Why shared: a stream that kept its own buffers let them go when it ended, so the next body (the
 * next layer of the same pull, the next client) read into fresh ones. A fresh 1 MiB buffer is a
 * new mapping whose 256 pages fault in on first use (~13 µs each on the VMs we measure on, so
 * ~3 ms per buffer), and with glibc's mmap threshold pinned (docs/operations.md, Memory) every
 * such buffer is a mapping of its own. On a cold ~120 MB pull a third of the process's page
 * faults were spool readers filling fresh 1 MiB buffers (docs/performance.md, ninth round).
 *
 * A shared pool keeps up to {@link MAX_IDLE_BYTES} of idle buffers while they are in use, and
 * trims to {@link MIN_IDLE_BYTES} once none has been taken for {@link IDLE_MS}, so a burst's
 * buffers do not stay in the process for good. ObjectReader's slab pools are BufferPools too,
 * with limits of their own.
 */
/**
 * While buffers are taken, idle ones are kept up to this: concurrent bodies (8 clients tailing one
 * download hold up to 24 MiB of 1 MiB buffers) pause and resume out of step, and each buffer
 * dropped at a dip is allocated afresh at the next peak. What is kept idle never exceeds what was
 * in use a moment before, and goes once the pool is idle.
 */
const MAX_IDLE_BYTES = 16 << 20;
const MIN_IDLE_BYTES = 1 << 20;
export const IDLE_MS = 2_000;

/**
 * Buffers of one size, kept for reuse: up to `maxIdleBytes` of them while they are taken (at least
 * two: one being read into, one going out), `minIdleBytes` (at least one) once idle.
 */
export class BufferPool {
  private readonly free: Buffer[] = [];
  private lastTake = 0;
  private trimTimer: NodeJS.Timeout | undefined;
  private readonly maxIdle: number;
  private readonly minIdle: number;
  /** Buffers allocated so far: with reuse working this follows concurrency, not bytes read. */
  allocated = 0;

  constructor(
    readonly size: number,
    maxIdleBytes: number,
    minIdleBytes: number,
  ) {
    this.maxIdle = Math.max(2, Math.floor(maxIdleBytes / size));
    this.minIdle = Math.max(1, Math.floor(minIdleBytes / size));
  }

  /** A buffer of `size` bytes: an idle one, else a new one. */
  take(): Buffer {
    this.lastTake = performance.now();
    const b = this.free.pop();
    if (b) return b;
    this.allocated++;
    return Buffer.allocUnsafeSlow(this.size);
  }

  /**
   * Takes back a whole buffer from take() that nobody reads or writes any more. The caller
   * guarantees it is not handed back twice (ReusableBuffers tracks that per stream).
   */
  put(buf: Buffer): void {
    if (buf.length !== this.size || this.free.length >= this.maxIdle) return;
    this.free.push(buf);
    if (this.free.length > this.minIdle && !this.trimTimer) this.trimWhenIdle(IDLE_MS);
  }

  /** Buffers kept for reuse. */
  get idle(): number {
    return this.free.length;
  }

  private trimWhenIdle(ms: number): void {
    this.trimTimer = setTimeout(() => {
      this.trimTimer = undefined;
      const quiet = performance.now() - this.lastTake;
      if (quiet >= IDLE_MS) this.free.length = Math.min(this.free.length, this.minIdle);
      else if (this.free.length > this.minIdle) this.trimWhenIdle(IDLE_MS - quiet);
    }, ms);
    this.trimTimer.unref();
  }
}

const pools = new Map<number, BufferPool>();

/** The process's pool of `size`-byte buffers. */
export function sharedPool(size: number): BufferPool {
  let p = pools.get(size);
  if (!p) pools.set(size, (p = new BufferPool(size, MAX_IDLE_BYTES, MIN_IDLE_BYTES)));
  return p;
}
