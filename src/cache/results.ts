import type { Readable } from 'node:stream';
import type { ByteRange } from '../storage/blob-store.js';
import type { RegistryConfig } from '../config/index.js';
import type { Credentials } from '../upstream/remote.js';

/** How a request was answered: from cache, after a free upstream check, fetched, stale, or passed through. */
export type CacheStatus = 'hit' | 'revalidated' | 'miss' | 'stale' | 'pass';

/** A repository of a configured registry, as a client asked for it. */
export interface Target {
  readonly registry: RegistryConfig;
  readonly repo: string;
  /** Credentials to use upstream instead of the configured ones (client pass-through). */
  readonly credentials?: Credentials | null;
}

export interface ManifestResult {
  readonly digest: string;
  readonly mediaType: string;
  readonly size: number;
  /** Absent for HEAD requests answered from an upstream HEAD. */
  readonly body?: Buffer;
  readonly cache: CacheStatus;
  /** Why a stale answer was given (the upstream failure). */
  readonly staleReason?: string;
}

export interface BlobHandle {
  readonly digest: string;
  /** Unknown only when an upstream sends no Content-Length for a blob being fetched. */
  readonly size: number | undefined;
  readonly cache: CacheStatus;
  /** The bytes, or `range` of them. */
  open(range?: ByteRange): Promise<Readable>;
  /**
   * A URL the client may fetch the bytes from instead (an S3 presigned GET with
   * `storage.redirect`), or null to serve them. Only cached blobs offer one.
   */
  redirect?(): Promise<string | null>;
}

export interface TagListResult {
  readonly body: Buffer;
  /** Where the next page starts, when `n` cut the list short (the HTTP layer makes the `Link`). */
  readonly next?: { readonly n: number; readonly last: string };
  readonly cache: CacheStatus;
  readonly staleReason?: string;
}

export interface PassThroughResult {
  readonly body: Buffer;
  readonly headers: Readonly<Record<string, string>>;
}
