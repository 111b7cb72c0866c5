/** What pullthrough remembers about a tag: what it pointed to when last checked upstream. */
export interface TagRecord {
  readonly digest: string;
  readonly mediaType: string;
  readonly size: number;
  /** When upstream last confirmed (or served) this digest for the tag, in ms since the epoch. */
  readonly checkedAt: number;
}

/** The last complete tag list upstream gave for a repository, sorted: served when upstream fails. */
export interface TagListRecord {
  readonly tags: readonly string[];
  /** When upstream gave it, in ms since the epoch. */
  readonly fetchedAt: number;
}

/**
 * The last referrers answer upstream gave for a manifest (per `artifactType` filter): served when
 * upstream fails or the registry is offline, so signatures and SBOMs stay verifiable.
 */
export type ReferrersRecord =
  | {
      readonly supported: true;
      /** The OCI image index as served to clients. At most {@link MAX_REFERRERS_RECORD_BYTES}. */
      readonly body: Buffer;
      readonly mediaType: string;
      /** The upstream's `OCI-Filters-Applied` header, when it filtered by artifactType. */
      readonly filtersApplied?: string;
      /** When upstream gave it, in ms since the epoch. */
      readonly fetchedAt: number;
    }
  /** The upstream had no referrers API (it answered 404): clients fall back to the tag schema. */
  | {
      readonly supported: false;
      /** The upstream's own error code and message with its 404, passed on to clients. */
      readonly upstreamCode?: string;
      readonly upstreamMessage?: string;
      readonly fetchedAt: number;
    };

/**
 * Largest referrers body a store keeps; a larger answer is served but not kept (the next request
 * asks upstream again). The remote refuses anything past 16 MiB; real indexes are a few KiB.
 */
export const MAX_REFERRERS_RECORD_BYTES = 4 << 20;
/**
 * Referrers records kept per manifest (one per `artifactType` filter, plus the unfiltered one).
 * The filter comes from the client, so without a bound one manifest could hold any number; past
 * it the record fetched longest ago (oldest `fetchedAt`) is dropped.
 */
export const MAX_REFERRERS_FILTERS = 16;

/** A cached manifest, keyed by its digest. */
export interface ManifestRecord {
  readonly mediaType: string;
  readonly body: Buffer;
}

/** A cached blob's bookkeeping, keyed by digest. */
export interface BlobRecord {
  readonly size: number;
  /** ms since the epoch. */
  readonly lastAccess: number;
}

/**
 * A pinned reference (admin API `pin`): its manifests and their blobs are never evicted. Shared by
 * every replica through the store and kept across restarts.
 */
export interface PinRecord {
  /** Configured registry name. */
  readonly registry: string;
  readonly repo: string;
  /** A tag (the pin follows the tag's cached record) or a digest. */
  readonly reference: string;
  /** `os/arch[/variant]` of an index's children to keep; null: all of them. */
  readonly platforms: readonly string[] | null;
  /** ms since the epoch. */
  readonly pinnedAt: number;
}

/** A lease on a name shared by all replicas using the same store. */
export interface Lock {
  /** Extends the lease; false when it was lost (expired and taken by someone else). */
  extend(ttlMs: number): Promise<boolean>;
  /** Releases the lease if still held. */
  release(): Promise<void>;
}

/**
 * Everything except blob bytes: tags, manifests, which repository each digest was fetched for,
 * blob sizes and last access, and locks. `FileMetadataStore` serves one process;
 * `RedisMetadataStore` lets many replicas share one cache.
 *
 * `registry` is a configured registry name (`docker.io`), `repo` a validated repository name.
 * Every method may throw StorageUnavailableError when the backend cannot be reached.
 */
export interface MetadataStore {
  readonly kind: string;

  getTag(registry: string, repo: string, tag: string): Promise<TagRecord | null>;
  putTag(registry: string, repo: string, tag: string, record: TagRecord): Promise<void>;
  /** Tags pullthrough has seen for a repository, sorted (the stale fallback for tags/list without a TagListRecord). */
  listTags(registry: string, repo: string): Promise<string[]>;
  /** Forgets one tag record (purge); a missing one is not an error. */
  deleteTag(registry: string, repo: string, tag: string): Promise<void>;
  /**
   * Every registry (as tag records are keyed: a name, or `name#account`) and repository that has
   * had a tag record written, in no particular order. A repository whose tags were all deleted may
   * still be listed (with no tags left).
   */
  listRepositories(): Promise<Array<{ registry: string; repo: string }>>;
  getTagList(registry: string, repo: string): Promise<TagListRecord | null>;
  /** Replaces the repository's tag list record. */
  putTagList(registry: string, repo: string, record: TagListRecord): Promise<void>;

  /**
   * The referrers record of `digest` in a repository for one `artifactType` filter (undefined: the
   * unfiltered list), or null.
   */
  getReferrers(registry: string, repo: string, digest: string, artifactType: string | undefined): Promise<ReferrersRecord | null>;
  /**
   * Replaces that record. A body larger than {@link MAX_REFERRERS_RECORD_BYTES} is not kept (any
   * older record for the same key is dropped, never served in its place); past
   * {@link MAX_REFERRERS_FILTERS} records for one digest the one fetched longest ago is dropped.
   */
  putReferrers(registry: string, repo: string, digest: string, artifactType: string | undefined, record: ReferrersRecord): Promise<void>;

  getManifest(digest: string): Promise<ManifestRecord | null>;
  putManifest(digest: string, record: ManifestRecord): Promise<void>;
  deleteManifest(digest: string): Promise<void>;
  /** Digests of every cached manifest, in no particular order. */
  listManifests(): Promise<string[]>;

  /** True when `digest` (blob or manifest) was fetched for, or confirmed upstream for, this repository. */
  isLinked(registry: string, repo: string, digest: string): Promise<boolean>;
  link(registry: string, repo: string, digest: string): Promise<void>;

  getBlob(digest: string): Promise<BlobRecord | null>;
  putBlob(digest: string, record: BlobRecord): Promise<void>;
  /** Records a read; implementations may batch these. */
  touchBlob(digest: string, at: number): Promise<void>;
  deleteBlob(digest: string): Promise<void>;
  /** Up to `limit` blobs, least recently accessed first. */
  oldestBlobs(limit: number): Promise<Array<{ digest: string } & BlobRecord>>;
  /** Sum of the sizes of all blob records. */
  totalBlobSize(): Promise<number>;

  /** Creates or replaces the pin `key` (the caller's choice, e.g. `registry/repo@ref`). */
  putPin(key: string, record: PinRecord): Promise<void>;
  /** Removes a pin; returns whether it existed. */
  deletePin(key: string): Promise<boolean>;
  /** Every pin by key. */
  listPins(): Promise<Map<string, PinRecord>>;

  /**
   * Takes the lease `name` for `ttlMs` if nobody holds it, else returns null. With the file store
   * leases are per process; with Redis they are shared by all replicas.
   */
  tryLock(name: string, ttlMs: number): Promise<Lock | null>;

  /** Flushes batched writes and releases connections. */
  close(): Promise<void>;
}
