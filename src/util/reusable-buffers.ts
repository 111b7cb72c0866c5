/**
 * Read buffers of one size that a stream hands out as chunks and takes back once the consumer is
 * done with them (the response writer's `recycle`), so a long read cycles through a few buffers
 * instead of allocating one per read: fresh buffers cost a page fault per 4 KiB and sit as
 * garbage until the GC gets round to them. Chunks may be slices of a buffer (a short last read);
 * they are recognised by the memory they view.
 */
export class ReusableBuffers {
  private readonly free: Buffer[] = [];
  private readonly own = new WeakSet<ArrayBufferLike>();

  constructor(
    readonly size: number,
    /** Buffers kept for the next reads; those handed back beyond this go to the GC. */
    private readonly maxFree: number,
  ) {}

  /** A buffer of `size` bytes: a handed-back one, else a new one. */
  take(): Buffer {
    const b = this.free.pop();
    if (b) return b;
    const fresh = Buffer.allocUnsafeSlow(this.size);
    this.own.add(fresh.buffer);
    return fresh;
  }

  /** Whether `chunk` is (a slice of) a buffer from take(). */
  owns(chunk: Buffer): boolean {
    return this.own.has(chunk.buffer);
  }

  /** Takes back a chunk from take() whose bytes are no longer needed; others are ignored. */
  giveBack(chunk: Buffer): void {
    if (this.owns(chunk) && this.free.length < this.maxFree) this.free.push(Buffer.from(chunk.buffer, 0, this.size));
  }

  /** Lets the kept buffers go (the stream is done). */
  clear(): void {
    this.free.length = 0;
  }
}

/**
 * A stream whose chunks may be handed back with `recycle(chunk)` once the consumer is done with
 * their bytes (FileRangeReadable, ObjectBody, spool readers), so the stream can reuse the memory.
 */
export interface Recycling {
  recycle(chunk: Buffer): void;
}

/** `stream`'s `recycle`, bound to it, when it has one. */
export function recyclerOf(stream: object): ((chunk: Buffer) => void) | undefined {
  const recycle = (stream as Partial<Recycling>).recycle;
  return typeof recycle === 'function' ? recycle.bind(stream) : undefined;
}
