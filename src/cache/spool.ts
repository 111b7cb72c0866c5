import { EventEmitter } from 'node:events';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import type { Hash } from 'node:crypto';
import type { ByteRange } from '../storage/blob-store.js';
import { ReusableBuffers, type Recycling } from '../util/reusable-buffers.js';

const READ_CHUNK = 1 << 20;
/** Recent chunks kept in memory, so readers keeping pace with the download never touch the disk. */
const RECENT_BYTES = 4 << 20;

/** How a download keeps pace with its readers (see Spool.pace). */
export interface Pacing {
  /** How far the download may run ahead of its fastest reader, in bytes. */
  readonly lead: number;
  /** A reader further behind than this reads the file anyway: the download does not wait for it. */
  readonly reach: number;
  /** Longest the download waits at a time before it takes what the upstream sent meanwhile. */
  readonly maxHoldMs: number;
}

/**
 * 3 MiB: less than RECENT_BYTES, so the fastest reader finds its next bytes in memory.
 * 8 MiB: a reader within it that reads the file (it fell behind for a moment) is waited for
 * while it catches up; one further behind is left to read the file at its own pace.
 * 100 ms: no upstream connection is left unread longer (servers time idle senders out), and a
 * reader that stops falls beyond `reach` within a few holds.
 */
export const DEFAULT_PACING: Pacing = { lead: 3 << 20, reach: 8 << 20, maxHoldMs: 100 };

/** A chunk of the download kept in memory. */
interface RecentChunk {
  readonly start: number;
  readonly buf: Buffer;
  /** Slices of it pushed to readers and not handed back yet. */
  lent: number;
  /** Out of the recent list (on disk and trimmed, or the spool closed): handed back once not lent. */
  dropped: boolean;
}

/**
 * A blob being downloaded into a local temp file that readers tail while it grows. Readers never
 * receive the final byte before the whole blob is verified, so a client of a blob whose digest
 * turns out wrong sees an aborted transfer, never a cleanly ended one.
 */
export class Spool extends EventEmitter {
  /** Bytes received and hashed: in memory (recent chunks) or on disk. */
  private written = 0;
  /** Bytes on disk; readers that fell out of the recent chunks read the file up to here. */
  private durable = 0;
  private state: 'writing' | 'verified' | 'failed' = 'writing';
  private failure: Error | undefined;
  private refs = 1; // the owner's (the fill's) reference
  private readonly recent: RecentChunk[] = [];
  private recentBytes = 0;
  private closed = false;
  /** Where a chunk goes once nothing needs it: the upstream body's `recycle` (see writer). */
  private giveBack: ((chunk: Buffer) => void) | undefined;
  /** The chunk each slice lent to a reader came from. */
  private readonly lent = new WeakMap<Buffer, RecentChunk>();
  /** Where each open reader has got to (the next byte it will push), for pacing. */
  private readonly cursors = new Set<{ pos: number; end: number }>();
  /** Wakes the download waiting for its fastest reader (see pace). */
  private wake: (() => void) | undefined;

  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    private readonly pacing: Pacing,
  ) {
    super();
    this.setMaxListeners(0);
  }

  /** A new empty spool file in `dir`. */
  static async create(dir: string, pacing: Pacing = DEFAULT_PACING): Promise<Spool> {
    const path = join(dir, randomUUID());
    return new Spool(path, await open(path, 'w+', 0o600), pacing);
  }

  get bytesWritten(): number {
    return this.written;
  }

  get verified(): boolean {
    return this.state === 'verified';
  }

  /**
   * A writable that hashes what passes through and appends it to the file. Upstream bodies
   * arrive in 64 KiB socket reads; everything that queued up while the previous write was on
   * disk goes to the file in one writev, so a 1 GiB blob costs hundreds of file writes and
   * progress events rather than ~16,000 (each write is a thread-pool round trip). The chunks are
   * not concatenated: a copy into a fresh buffer cost more (page faults) than it saved.
   *
   * `recycle`, when the source reuses its buffers (ObjectReader's slabs), takes each chunk back
   * once it is on disk, out of the recent list and handed back by every reader it was lent to.
   * Without that, every byte downloaded is a fresh buffer: 1 GiB of external memory per GiB, to
   * which V8 answers with a full mark-compact every few tens of MB (~20 % of a cold download's CPU).
   */
  writer(hash: Hash, onBytes?: (n: number) => void, recycle?: (chunk: Buffer) => void): Writable {
    this.giveBack = recycle;
    return new Writable({
      highWaterMark: READ_CHUNK,
      write: (chunk: Buffer, _enc, cb) => {
        this.append([chunk], hash, onBytes).then(() => cb(), cb);
      },
      writev: (chunks, cb) => {
        this.append(
          chunks.map((c) => c.chunk as Buffer),
          hash,
          onBytes,
        ).then(() => cb(), cb);
      },
    });
  }

  private async append(bufs: Buffer[], hash: Hash, onBytes?: (n: number) => void): Promise<void> {
    const start = this.written;
    let total = 0;
    for (const b of bufs) {
      hash.update(b);
      this.remember(this.written, b);
      this.written += b.length;
      total += b.length;
    }
    onBytes?.(total);
    // Readers get the chunks from memory now, not after the file write: the client's copy and the
    // disk's are made side by side instead of one after the other.
    this.emit('progress');
    // The kernel may stop a writev early: go on from where it stopped.
    for (let pos = start, rest = bufs; rest.length > 0; ) {
      const { bytesWritten } = await this.fh.writev(rest, pos);
      if (bytesWritten === 0) throw new Error('spool write made no progress');
      pos += bytesWritten;
      rest = dropBytes(rest, bytesWritten);
    }
    this.durable = start + total;
    this.trimRecent();
    this.emit('progress');
    await this.pace();
  }

  /**
   * Holds the download while it is more than `pacing.lead` ahead of its fastest reader, so that
   * reader takes each chunk from memory just after it was hashed instead of reading it back
   * from the file later (cold pulls measured faster this way: docs/performance.md, eighteenth
   * round). The hold ends when the reader comes within the lead or goes away, and after
   * `pacing.maxHoldMs` at most; then the download takes what queued up meanwhile and may hold
   * again. A reader more than `pacing.reach` behind is not waited for, so a client that reads
   * slowly or not at all slows the download only until it falls that far behind. Without
   * readers the download goes at the upstream's pace.
   */
  private async pace(): Promise<void> {
    const since = performance.now();
    while (this.state === 'writing') {
      let fastest = -1;
      for (const c of this.cursors) if (c.pos < c.end && c.pos > fastest) fastest = c.pos;
      const behind = this.written - fastest;
      if (fastest < 0 || behind <= this.pacing.lead || behind > this.pacing.reach) return;
      const left = since + this.pacing.maxHoldMs - performance.now();
      if (left <= 0) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.wake = undefined;
          resolve();
        }, Math.ceil(left));
        this.wake = () => {
          clearTimeout(timer);
          this.wake = undefined;
          resolve();
        };
      });
    }
  }

  private remember(start: number, buf: Buffer): void {
    this.recent.push({ start, buf, lent: 0, dropped: false });
    this.recentBytes += buf.length;
    this.trimRecent();
  }

  /** Forgets the oldest chunks beyond RECENT_BYTES, but never one that is not on disk yet. */
  private trimRecent(): void {
    for (;;) {
      const first = this.recent[0]!;
      if (this.recentBytes - first.buf.length < RECENT_BYTES || first.start + first.buf.length > this.durable) return;
      this.recentBytes -= first.buf.length;
      this.recent.shift();
      first.dropped = true;
      if (first.lent === 0) this.giveBack?.(first.buf);
    }
  }

  /**
   * Bytes [pos, stop) from memory when they are among the recent chunks (up to one chunk's
   * worth), as a slice lent to a reader until it is handed back with {@link handBack}.
   */
  private fromMemory(pos: number, stop: number): Buffer | undefined {
    const first = this.recent[0];
    if (!first || pos < first.start) return undefined;
    for (const c of this.recent) {
      if (pos >= c.start && pos < c.start + c.buf.length) {
        const slice = c.buf.subarray(pos - c.start, Math.min(c.buf.length, stop - c.start));
        if (this.giveBack) {
          c.lent++;
          this.lent.set(slice, c);
        }
        return slice;
      }
    }
    return undefined;
  }

  /** A reader's consumer is done with a chunk the reader pushed (its bytes are in the kernel). */
  private handBack(slice: Buffer): void {
    const c = this.lent.get(slice);
    if (!c) return; // read from the file, or handed back already
    this.lent.delete(slice);
    if (--c.lent === 0 && c.dropped) this.giveBack?.(c.buf);
  }

  /** Lets readers deliver the last byte. */
  markVerified(): void {
    this.state = 'verified';
    this.emit('progress');
  }

  /** Fails every reader and removes the file. */
  fail(err: Error): void {
    if (this.state !== 'writing') return;
    this.state = 'failed';
    this.failure = err;
    this.wake?.();
    this.emit('progress');
    void rm(this.path, { force: true }).catch(() => {});
  }

  /**
   * Drops the owner's reference: called once the fill is no longer joinable. The file handle
   * closes when the last reader is done too.
   */
  release(): void {
    this.releaseRef();
  }

  /**
   * A stream of `range` (or the whole blob) that follows the download. `size` is the expected
   * total when known, so ranged readers know where the end is.
   *
   * A plain Readable rather than `Readable.from(async generator)`: it pushes every chunk that is
   * available in one `_read` turn (recent ones straight from memory, zero-copy) and only waits on
   * `progress` when it has caught up with the download. Its `recycle(chunk)` hands back a chunk
   * once written: a slice of a recent chunk (see writer), or a buffer it read from the file, which
   * its next file read reuses. Readers that fall behind, or join while a big blob is still being
   * committed (an S3 upload takes a while), would otherwise read into a fresh 1 MiB buffer each
   * time. A consumer that never recycles only keeps buffers from reuse.
   */
  reader(range?: ByteRange): Readable & Recycling {
    this.refs++;
    const end = range?.end; // inclusive; undefined = to whatever the end turns out to be
    let pumping = false;
    let released = false;
    const readBuffers = new ReusableBuffers(READ_CHUNK);
    // Where this reader has got to (the next byte it pushes); pace() reads it.
    const cursor = { pos: range?.start ?? 0, end: end === undefined ? Infinity : end + 1 };
    this.cursors.add(cursor);
    const release = (): void => {
      if (released) return;
      released = true;
      this.cursors.delete(cursor);
      this.wake?.();
      this.releaseRef();
    };
    const stream = Object.assign(
      new Readable({
        highWaterMark: READ_CHUNK,
        read: () => {
          if (!pumping) void pump();
        },
        destroy: (err, cb) => {
          release();
          cb(err);
        },
      }),
      {
        recycle: (chunk: Buffer): void => {
          if (readBuffers.owns(chunk)) readBuffers.giveBack(chunk);
          else this.handBack(chunk);
        },
      },
    );
    const pump = async (): Promise<void> => {
      pumping = true;
      try {
        for (;;) {
          if (stream.destroyed) return;
          if (this.state === 'failed') throw this.failure ?? new Error('download failed');
          // Hold back the last byte until verified: see the class comment.
          const limit = this.state === 'verified' ? this.written : Math.max(0, this.written - 1);
          const stop = end === undefined ? limit : Math.min(limit, end + 1);
          if (cursor.pos < stop) {
            let chunk = this.fromMemory(cursor.pos, stop);
            if (!chunk) {
              // trimRecent keeps every chunk not yet on disk, so bytes missing from memory are on disk.
              if (cursor.pos >= this.durable) throw new Error('spool bytes neither in memory nor on disk');
              const n = Math.min(READ_CHUNK, Math.min(stop, this.durable) - cursor.pos);
              const buf = readBuffers.take();
              let bytesRead = 0;
              try {
                ({ bytesRead } = await this.fh.read(buf, 0, n, cursor.pos));
              } finally {
                // A buffer nothing is pushed from (failed, empty or unwanted read) goes straight back.
                if (bytesRead === 0 || stream.destroyed) readBuffers.giveBack(buf);
              }
              if (bytesRead === 0) throw new Error('spool file shorter than recorded');
              if (stream.destroyed) return;
              chunk = bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
            }
            cursor.pos += chunk.length;
            this.wake?.();
            if (!stream.push(chunk)) return; // read() is called again when the consumer wants more
            continue;
          }
          if ((end !== undefined && cursor.pos > end) || (this.state === 'verified' && cursor.pos >= this.written)) {
            stream.push(null);
            release();
            return;
          }
          await new Promise<void>((resolve) => this.once('progress', resolve));
        }
      } catch (err) {
        stream.destroy(err as Error);
      } finally {
        pumping = false;
      }
    };
    return stream;
  }

  private releaseRef(): void {
    if (--this.refs === 0 && !this.closed) {
      this.closed = true;
      void this.fh.close().catch(() => {});
      this.dropRecent();
    }
  }

  /**
   * Hands back the recent chunks once nobody can read them any more (the owner and every reader
   * are gone): a slice still lent comes back through handBack. Without this the last 4 MiB of
   * every download stayed out of the source's pool until the GC took them, and the next download
   * read into fresh slabs: on a cold ~120 MB pull, 30 fresh 256 KiB slabs after a warm-up pull, 57
   * in the warm-up itself, each a new mapping whose pages fault in again.
   */
  private dropRecent(): void {
    for (const c of this.recent) {
      c.dropped = true;
      if (c.lent === 0) this.giveBack?.(c.buf);
    }
    this.recent.length = 0;
    this.recentBytes = 0;
  }
}

/** `bufs` without their first `n` bytes (slices, no copies). */
function dropBytes(bufs: Buffer[], n: number): Buffer[] {
  let i = 0;
  while (i < bufs.length && n >= bufs[i]!.length) n -= bufs[i++]!.length;
  if (i === bufs.length) return [];
  return [bufs[i]!.subarray(n), ...bufs.slice(i + 1)];
}
