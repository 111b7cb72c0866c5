import type { Readable } from 'node:stream';

/** An inclusive byte range, as in HTTP `Range: bytes=start-end`. */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

/** One committed object. */
export interface BlobEntry {
  readonly key: string;
  readonly size: number;
}

/**
 * A byte store that knows nothing of digests (as distribution's storage driver): keys in, bytes out.
 * The cache layer verifies content before it ever calls {@link BlobStore.putFile}, and an object is
 * visible to readers only once `putFile` has resolved, never half-written.
 *
 * Keys are relative paths made of `[a-z0-9/_.-]` (e.g. `blobs/sha256/ab/abcd…`).
 */
export interface BlobStore {
  /** A short name for logs and metrics (`fs`, `s3`). */
  readonly kind: string;

  /**
   * Size of a committed object, or `null` when there is none.
   * @throws StorageUnavailableError when the backend cannot be reached.
   */
  stat(key: string): Promise<{ size: number } | null>;

  /**
   * A stream of the object's bytes, or of `range` of them.
   * @throws BlobNotFoundError when absent; StorageUnavailableError when unreachable.
   */
  read(key: string, range?: ByteRange): Promise<Readable>;

  /**
   * Publishes the local file at `path` (of `size` bytes) as `key`, atomically: readers see either
   * no object or the whole one. The store takes ownership of the file (moves it, or deletes it
   * after copying). Concurrent calls for the same key with the same bytes all succeed.
   * @throws StorageUnavailableError
   */
  putFile(key: string, path: string, size: number): Promise<void>;

  /** Deletes an object; deleting a missing one is not an error. */
  delete(key: string): Promise<void>;

  /** Every committed object (for eviction bookkeeping and repair). */
  list(): AsyncIterable<BlobEntry>;

  /**
   * A URL a client may be redirected to for this object instead of being served the bytes (S3
   * presigned GET), or `null` when the store does not offer that.
   */
  redirectUrl?(key: string): Promise<string | null>;

  /** Removes leftovers of writes interrupted by a crash; called once at start. */
  cleanup(): Promise<void>;

  /** Releases connections. */
  close(): Promise<void>;
}
