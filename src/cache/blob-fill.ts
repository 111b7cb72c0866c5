import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { parseDigest, hasherFor } from '../oci/digest.js';
import type { ByteRange } from '../storage/blob-store.js';
import type { RemoteBlob, RemoteRepository } from '../upstream/remote.js';
import { UpstreamIntegrityError, UpstreamUnavailableError } from '../upstream/errors.js';
import { Spool } from './spool.js';
import { recyclerOf, type Recycling } from '../util/reusable-buffers.js';
import { PullthroughError } from '../util/errors.js';

/** What the fill needs from its surroundings. */
export interface FillContext {
  readonly spoolDir: string;
  readonly fillTimeoutMs: number;
  /** Publishes the verified spool file (BlobStore.putFile + metadata); run once per fill. */
  commit(digest: string, path: string, size: number, repos: ReadonlySet<string>): Promise<void>;
  onBytes(n: number): void;
}

/**
 * One upstream download of one blob (`RemoteRepository.openBlob`), shared by every client that
 * wants it meanwhile: the body is hashed and written to a {@link Spool} that readers tail; size
 * and digest are checked before the last byte is released and before the blob is committed to
 * storage. It keeps pace with its fastest reader while that reader keeps up (Spool.pace).
 * Clients that disconnect do not stop it; only `fillTimeoutMs` bounds it. The body is
 * the remote's own stream (ObjectReader's for RegistryRemote): the spool hands its buffers back.
 */
export class BlobFill {
  /** `<space>/<repository>` keys upstream has confirmed hold this blob; linked on commit. */
  readonly repos = new Set<string>();
  /** Resolves with the blob's size (if upstream sent Content-Length) once upstream answered 200. */
  readonly started: Promise<{ size: number | undefined }>;
  /** Resolves when committed, rejects when the download or verification failed. */
  readonly done: Promise<void>;
  private spool: Spool | undefined;
  size: number | undefined;

  /** The configured registry's name, for errors. */
  private readonly registry: string;

  constructor(
    private readonly ctx: FillContext,
    /** The repository to download from (with the credentials the request brought). */
    private readonly remote: RemoteRepository,
    /** The `<space>/<repository>` key the fill is linked under on commit (see cache/remote-target.ts). */
    repoKey: string,
    readonly digest: string,
  ) {
    this.registry = remote.registry;
    this.repos.add(repoKey);
    let onStarted!: (v: { size: number | undefined }) => void;
    let onStartFailed!: (e: unknown) => void;
    this.started = new Promise((res, rej) => {
      onStarted = res;
      onStartFailed = rej;
    });
    this.done = this.run(onStarted).catch((err: unknown) => {
      onStartFailed(err);
      throw err;
    });
    // Callers may only await `started`; an unobserved failure of `done` is not a crash.
    this.done.catch(() => {});
    this.started.catch(() => {});
  }

  private async run(onStarted: (v: { size: number | undefined }) => void): Promise<void> {
    const d = parseDigest(this.digest);
    const signal = AbortSignal.timeout(this.ctx.fillTimeoutMs);
    let res: RemoteBlob;
    try {
      res = await this.remote.openBlob(this.digest, { signal });
    } catch (err) {
      // The remote rejects with the abort itself; to clients and logs it is a download that took too long.
      if (signal.aborted && !(err instanceof PullthroughError)) throw new UpstreamUnavailableError(this.registry, `blob download exceeded ${this.ctx.fillTimeoutMs} ms`);
      throw err;
    }
    const size = res.size;
    this.size = size;
    let spool: Spool;
    try {
      spool = await Spool.create(this.ctx.spoolDir);
    } catch (err) {
      res.body.destroy();
      throw err;
    }
    this.spool = spool;
    onStarted({ size });
    const hash = hasherFor(d);
    try {
      try {
        // Bytes are counted per spool write (batches), not per 64 KiB socket read.
        // Blob bodies come from ObjectReader, whose buffers the spool hands back for reuse.
        await pipeline(res.body, spool.writer(hash, (n) => this.ctx.onBytes(n), recyclerOf(res.body)));
      } catch (err) {
        if (signal.aborted) throw new UpstreamUnavailableError(this.registry, `blob download exceeded ${this.ctx.fillTimeoutMs} ms`);
        throw err instanceof UpstreamUnavailableError ? err : new UpstreamUnavailableError(this.registry, `blob download broke off: ${(err as Error).message}`, { cause: err });
      }
      if (size !== undefined && spool.bytesWritten !== size) {
        throw new UpstreamIntegrityError(this.registry, `${this.digest}: got ${spool.bytesWritten} bytes, Content-Length said ${size}`);
      }
      const got = `${d.algorithm}:${hash.digest('hex')}`;
      if (got !== this.digest) throw new UpstreamIntegrityError(this.registry, `expected ${this.digest}, content hashes to ${got}`);
      this.size = spool.bytesWritten;
      spool.markVerified();
    } catch (err) {
      spool.fail(err as Error);
      throw err;
    }
    await this.ctx.commit(this.digest, spool.path, spool.bytesWritten, this.repos);
  }

  /**
   * The blob's bytes (or `range` of them) as they arrive.
   * @throws when called before `started` resolved.
   */
  reader(range?: ByteRange): Readable & Recycling {
    if (!this.spool) throw new Error('fill has not started');
    return this.spool.reader(range);
  }

  /** Drops the fill's own hold on the spool; readers already open finish normally. */
  release(): void {
    this.spool?.release();
  }
}
