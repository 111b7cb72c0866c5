import { sharedPool, type BufferPool } from './buffer-pool.js';

/**
 * The read buffers of one stream, which hands them out as chunks and takes them back once the
 * consumer is done with them (the response writer's `recycle`), so a long read cycles through a
 * few buffers instead of allocating one per read: fresh buffers cost a page fault per 4 KiB and
 * sit as garbage until the GC gets round to them. The buffers come from and go back to the
 * process's pool of their size (buffer-pool.ts), so the next stream reuses them too. Chunks may be
 * slices of a buffer (a short last read); they are recognised by the memory they view, and each
 * goes back to the pool once, however often it is handed back.
 */
export class ReusableBuffers {
  private readonly pool: BufferPool;
  /** The memory of the buffers handed out and not back yet. */
  private readonly out = new Set<ArrayBufferLike>();

  constructor(readonly size: number) {
    this.pool = sharedPool(size);
  }

  /** A buffer of `size` bytes: an idle one of the pool's, else a new one. */
  take(): Buffer {
    const b = this.pool.take();
    this.out.add(b.buffer);
    return b;
  }

  /** Whether `chunk` is (a slice of) a buffer from take() that is not back yet. */
  owns(chunk: Buffer): boolean {
    return this.out.has(chunk.buffer);
  }

  /** Takes back a chunk from take() whose bytes are no longer needed; others are ignored. */
  giveBack(chunk: Buffer): void {
    if (this.out.delete(chunk.buffer)) this.pool.put(Buffer.from(chunk.buffer, 0, this.size));
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
