import { copyFile, mkdir, open, readdir, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { dirname, join, relative, sep } from 'node:path';
import { Readable } from 'node:stream';
import type { BlobEntry, BlobStore, ByteRange } from './blob-store.js';
import { BlobNotFoundError } from './errors.js';
import { isErrno } from '../util/atomic-file.js';
import { ReusableBuffers } from '../util/reusable-buffers.js';
import type { FileSpan } from '../util/file-span.js';

/** File bodies being read right now, in this process. */
let openReaders = 0;

/**
 * The read size of a new file body, given how many others are being read: 1 MiB for a body read
 * alone (far fewer syscalls and event-loop turns than the 64 KiB default on big layers), down to
 * 256 KiB when several are. Each body holds up to three chunks (one read ahead, one in the
 * socket's queue, and over TLS its encrypted copy), so 16 concurrent 1 GiB downloads held ~48 MB
 * at 1 MiB; at 256 KiB their peak RSS fell from 164–204 to 129–136 MB with the same TLS
 * throughput (docs/performance.md).
 */
export function readChunkSize(othersOpen: number): number {
  if (othersOpen === 0) return 1 << 20;
  if (othersOpen < 4) return 512 << 10;
  return 256 << 10;
}

/**
 * Bytes [pos, end) of an open file, read sequentially in chunks of {@link readChunkSize}. A
 * consumer that is done with a chunk (its bytes are in the kernel) may hand it back with
 * `recycle()`, and a later read goes into it (this body's, or through the process's pool another
 * body's): serving a 1 GiB blob then takes a few buffers instead of a thousand or more fresh ones,
 * which cost a page fault per 4 KiB and sit as garbage until the GC gets round to them (tens of MB
 * per connection under load). Consumers that never recycle get fresh buffers, as from
 * createReadStream. The file handle is closed exactly once, when the stream is destroyed (ended,
 * failed or abandoned); only then does the body stop counting towards the read size of new ones.
 */
export class FileRangeReadable extends Readable {
  /** Its buffers' size is this body's read size. */
  private readonly buffers: ReusableBuffers;
  private started = false;

  /** @param offerSpan whether fileSpan() offers the file (storage.sendfile) */
  constructor(
    private readonly fh: FileHandle,
    private pos: number,
    private readonly end: number,
    private readonly offerSpan = true,
  ) {
    const chunk = readChunkSize(openReaders);
    super({ highWaterMark: chunk });
    openReaders++;
    this.buffers = new ReusableBuffers(chunk);
  }

  /**
   * The file and the bytes this body would read, for a sender that reads the file itself
   * (util/file-span.ts); undefined once this stream has started reading or is destroyed.
   */
  fileSpan(): FileSpan | undefined {
    if (!this.offerSpan || this.started || this.destroyed) return undefined;
    return { fd: this.fh.fd, start: this.pos, end: this.end };
  }

  /** Hands back a chunk this stream produced, once the consumer no longer needs its bytes. */
  recycle(chunk: Buffer): void {
    this.buffers.giveBack(chunk);
  }

  override _read(): void {
    this.started = true;
    const n = Math.min(this.buffers.size, this.end - this.pos);
    if (n <= 0) {
      this.push(null);
      return;
    }
    const buf = this.buffers.take();
    this.fh.read(buf, 0, n, this.pos).then(
      ({ bytesRead }) => {
        // A buffer nothing is pushed from goes straight back (to the process's pool).
        if (this.destroyed || bytesRead === 0) this.buffers.giveBack(buf);
        if (this.destroyed) return;
        // A file shorter than asked reads like createReadStream: the stream ends there.
        if (bytesRead === 0) {
          this.push(null);
          return;
        }
        this.pos += bytesRead;
        this.push(bytesRead === buf.length ? buf : buf.subarray(0, bytesRead));
      },
      (err: Error) => {
        this.buffers.giveBack(buf);
        this.destroy(err);
      },
    );
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    openReaders--;
    this.fh.close().then(
      () => cb(err),
      () => cb(err),
    );
  }
}

const KEY = /^[a-z0-9][a-z0-9_.-]*(\/[a-z0-9][a-z0-9_.-]*)*$/;

/**
 * Blobs as files under `root`; commits are renames, so a reader never sees a partial file, and
 * several processes (workers, or replicas on one disk) can share the directory: committing a blob
 * twice renames the same bytes over it, and a reader keeps the file it opened.
 */
export class FsBlobStore implements BlobStore {
  readonly kind = 'fs';
  private readonly tmpDir: string;

  /**
   * @param tmpDir where copies from another filesystem are staged (on `root`'s filesystem), owned
   *   by this process alone: `cleanup()` wipes it. Default `<root>/_tmp`; workers each get their
   *   own directory below it, so a restarting worker never deletes another's copy in progress.
   * @param opts.sendfile whether bodies offer their file to a sendfile sender (storage.sendfile)
   */
  constructor(
    private readonly root: string,
    tmpDir?: string,
    private readonly opts: { sendfile: boolean } = { sendfile: true },
  ) {
    this.tmpDir = tmpDir ?? join(root, '_tmp');
  }

  private pathOf(key: string): string {
    // Keys come from blobKey(); this guard keeps any other caller from escaping the root.
    if (!KEY.test(key) || key.split('/').includes('..')) throw new Error(`invalid blob key: ${key.slice(0, 100)}`);
    return join(this.root, key);
  }

  async stat(key: string): Promise<{ size: number } | null> {
    try {
      const s = await stat(this.pathOf(key));
      return s.isFile() ? { size: s.size } : null;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return null;
      throw err;
    }
  }

  async read(key: string, range?: ByteRange): Promise<Readable> {
    let fh;
    try {
      fh = await open(this.pathOf(key), 'r');
    } catch (err) {
      if (isErrno(err, 'ENOENT')) throw new BlobNotFoundError(key);
      throw err;
    }
    // The stream owns the handle and closes it exactly once (see FileRangeReadable).
    return new FileRangeReadable(fh, range?.start ?? 0, range ? range.end + 1 : Infinity, this.opts.sendfile);
  }

  async putFile(key: string, path: string, _size: number): Promise<void> {
    const dest = this.pathOf(key);
    await mkdir(dirname(dest), { recursive: true });
    try {
      await rename(path, dest);
    } catch (err) {
      if (!isErrno(err, 'EXDEV')) throw err;
      // Spool on another filesystem: copy next to the target, then rename into place.
      await mkdir(this.tmpDir, { recursive: true });
      const tmp = join(this.tmpDir, randomUUID());
      try {
        await copyFile(path, tmp);
        await rename(tmp, dest);
      } finally {
        await rm(tmp, { force: true });
        await rm(path, { force: true });
      }
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await unlink(this.pathOf(key));
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
    }
  }

  async *list(): AsyncIterable<BlobEntry> {
    const walk = async function* (dir: string): AsyncGenerator<string> {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        if (isErrno(err, 'ENOENT')) return;
        throw err;
      }
      for (const e of entries) {
        const p = join(dir, e.name);
        if (e.isDirectory()) yield* walk(p);
        else if (e.isFile()) yield p;
      }
    };
    for await (const p of walk(join(this.root, 'blobs'))) {
      try {
        const s = await stat(p);
        yield { key: relative(this.root, p).split(sep).join('/'), size: s.size };
      } catch (err) {
        if (!isErrno(err, 'ENOENT')) throw err;
      }
    }
  }

  /** Removes what interrupted copies left in this store's temp directory (its own only). */
  async cleanup(): Promise<void> {
    await rm(this.tmpDir, { recursive: true, force: true });
    await mkdir(this.tmpDir, { recursive: true });
  }

  async close(): Promise<void> {}
}
