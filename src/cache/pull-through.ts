import type { Config } from '../config/index.js';
import type { ManifestReference } from '../oci/reference.js';
import type { BlobStore } from '../storage/blob-store.js';
import type { MetadataStore } from '../storage/metadata-store.js';
import { StorageUnavailableError } from '../storage/errors.js';
import type { RemoteRegistries } from '../upstream/remote.js';
import type { Metrics } from '../observability/metrics.js';
import type { Logger } from '../observability/logger.js';
import { BlobPolicy } from './blobs.js';
import { Confirmations } from './confirmations.js';
import type { DownloadTracker } from './downloads.js';
import type { Evictor } from './evictor.js';
import { ManifestPolicy } from './manifests.js';
import { referencedBlobs } from './manifest-refs.js';
import { ReferrersPolicy } from './referrers.js';
import { RemoteOnly } from './remote-only.js';
import { remoteTarget } from './remote-target.js';
import { TagListPolicy } from './tag-lists.js';
import { TagPolicy } from './tag-policy.js';
import type { BlobHandle, ManifestResult, ReferrersResult, TagListResult, Target } from './results.js';

/**
 * The part of the configuration the cache reads: `cache` (tag rules, fill lease, eviction
 * grace, revalidation deadline), `upstream.fillTimeout` and `upstream.tagListMaxSize`, and `paths.spool`. The whole
 * Config fits; taking only this keeps the cache's dependencies visible.
 */
export interface CacheSettings {
  readonly cache: Pick<Config['cache'], 'tags' | 'fillLease' | 'evictionGrace' | 'revalidateDeadline'>;
  readonly upstream: Pick<Config['upstream'], 'fillTimeout' | 'tagListMaxSize'>;
  readonly paths: Pick<Config['paths'], 'spool'>;
}

export interface PullThroughDeps {
  readonly settings: CacheSettings;
  readonly blobs: BlobStore;
  readonly meta: MetadataStore;
  /** The remote of each configured registry (server.ts: RegistryRemotes over the UpstreamPool). */
  readonly remotes: RemoteRegistries;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Size-capped LRU eviction, when `cache.maxSize` is set. */
  readonly evictor?: Evictor;
  /** Downloads in progress, for the admin API and status page. */
  readonly downloads?: DownloadTracker;
}

/**
 * The pull-through cache (see README "Cache semantics"): one small policy per resource over
 * (local stores, remote) — manifests and tags (manifests.ts), blobs (blobs.ts), tag lists
 * (tag-lists.ts), referrers (referrers.ts), with the repository confirmations they share
 * (confirmations.ts) — and the remote-only layer (remote-only.ts) they fall back to while the
 * metadata store is unreachable. This facade picks the remote repository a request is for and
 * routes each request to its policy; it knows no HTTP.
 */
export class PullThroughCache {
  private readonly manifests: ManifestPolicy;
  private readonly blobPolicy: BlobPolicy;
  private readonly tagLists: TagListPolicy;
  private readonly referrerPolicy: ReferrersPolicy;
  /** Answers without the cache while a store is unreachable. */
  private readonly remoteOnly: RemoteOnly;

  constructor(private readonly d: PullThroughDeps) {
    const s = d.settings;
    const fill = { spoolDir: s.paths.spool, fillTimeoutMs: s.upstream.fillTimeout };
    const tagPolicy = new TagPolicy(s.cache);
    const confirmations = new Confirmations(d.meta);
    this.remoteOnly = new RemoteOnly({ blobs: d.blobs, fill, metrics: d.metrics, log: d.log, downloads: d.downloads });
    this.manifests = new ManifestPolicy({ meta: d.meta, confirmations, tagPolicy, metrics: d.metrics, log: d.log, revalidateDeadlineMs: s.cache.revalidateDeadline, fillLeaseMs: s.cache.fillLease });
    this.blobPolicy = new BlobPolicy({
      settings: { fill, fillLeaseMs: s.cache.fillLease, evictionGraceMs: s.cache.evictionGrace },
      blobs: d.blobs,
      meta: d.meta,
      confirmations,
      remoteOnly: this.remoteOnly,
      metrics: d.metrics,
      log: d.log,
      evictor: d.evictor,
      downloads: d.downloads,
    });
    const onMetadataDown = (err: unknown): boolean => {
      if (!this.metadataDown(err)) return false;
      this.remoteOnly.note('metadata_unavailable', err);
      return true;
    };
    const revalidateDeadlineMs = s.cache.revalidateDeadline;
    this.tagLists = new TagListPolicy({ maxBytes: s.upstream.tagListMaxSize, revalidateDeadlineMs, meta: d.meta, tagPolicy, metrics: d.metrics, log: d.log, onMetadataDown });
    this.referrerPolicy = new ReferrersPolicy({ meta: d.meta, tagPolicy, metrics: d.metrics, log: d.log, revalidateDeadlineMs, onMetadataDown });
  }

  /** True when `err` says the metadata store (not the blob store, not upstream) is unreachable. */
  private metadataDown(err: unknown): err is StorageUnavailableError {
    return err instanceof StorageUnavailableError && err.backend === this.d.meta.kind;
  }

  /**
   * Runs `cached`; when the metadata store turns out unreachable on the way, answers with
   * `remoteOnly` instead (see RemoteOnly: confirmed with upstream, verified, nothing stored).
   */
  private async orRemoteOnly<T>(cached: () => Promise<T>, remoteOnly: () => Promise<T>): Promise<T> {
    try {
      return await cached();
    } catch (err) {
      if (!this.metadataDown(err)) throw err;
      this.remoteOnly.note('metadata_unavailable', err);
      return remoteOnly();
    }
  }

  /**
   * A manifest by tag or digest. `accepted` is the client's Accept set (null: anything); `head`
   * avoids fetching a body upstream just to answer a HEAD. While the metadata store is
   * unreachable it comes verified from upstream, uncached (RemoteOnly). Whatever upstream sends
   * is served and cached only when it is a manifest (oci/manifest-check.ts).
   * @throws OciError, UpstreamStatusError, UpstreamUnavailableError, UpstreamIntegrityError,
   *   UpstreamManifestInvalidError, UpstreamTooLargeError
   */
  async manifest(t: Target, ref: ManifestReference, accepted: Set<string> | null, head: boolean): Promise<ManifestResult> {
    const at = remoteTarget(this.d.remotes, t);
    const m = await this.orRemoteOnly(
      () => (ref.kind === 'digest' ? this.manifests.byDigest(at, ref.digest, head) : this.manifests.byTag(at, ref.tag, accepted, head)),
      () => this.remoteOnly.manifest(at, ref, accepted, head),
    );
    // A client that got an image manifest fetches its blobs next: they count as used now, so an
    // eviction pass set off by one of its layers landing does not evict another it has yet to ask for.
    if (m.body && m.cache !== 'pass') {
      const now = Date.now();
      for (const dg of referencedBlobs(m.body)) void this.d.meta.touchBlob(dg, now).catch(() => {});
    }
    return m;
  }

  /**
   * A blob: from storage when cached (after confirming the repository), else from a shared upstream
   * download. For HEAD, a miss is answered from an upstream stat without downloading. While the
   * metadata store is unreachable, or the blob store cannot read a cached blob, it is served
   * without the cache (RemoteOnly): confirmed upstream, verified, nothing written.
   * @throws OciError, UpstreamStatusError, UpstreamUnavailableError, UpstreamIntegrityError
   */
  async blob(t: Target, digest: string, head: boolean): Promise<BlobHandle> {
    const at = remoteTarget(this.d.remotes, t);
    return this.orRemoteOnly(
      () => this.blobPolicy.blob(at, digest, head),
      () => this.remoteOnly.blob(at, digest, head),
    );
  }

  /**
   * The repository's tag list as the spec wants it: the whole upstream list, sorted, paged here by
   * `n` and `last`; the last good list served stale when upstream fails (see TagListPolicy).
   * @throws UpstreamStatusError, UpstreamUnavailableError, UpstreamTagListError
   */
  async tags(t: Target, query: { n?: number; last?: string }, clientName: string): Promise<TagListResult> {
    return this.tagLists.tags(remoteTarget(this.d.remotes, t), query, clientName);
  }

  /**
   * The upstream's referrers index, kept and served stale like a tag list (see ReferrersPolicy); a
   * 404 from an upstream without the referrers API is passed on, so clients fall back to the tag
   * schema as they would upstream.
   * @throws UpstreamStatusError, UpstreamUnavailableError, UpstreamIntegrityError, UpstreamTooLargeError
   */
  async referrers(t: Target, digest: string, artifactType: string | undefined): Promise<ReferrersResult> {
    return this.referrerPolicy.referrers(remoteTarget(this.d.remotes, t), digest, artifactType);
  }

  /** Blob downloads in progress on this replica (for draining). */
  get inFlight(): number {
    return this.blobPolicy.inFlight + this.remoteOnly.inFlight;
  }

  /** Waits for downloads in progress to finish (or fail). */
  async drain(): Promise<void> {
    await this.blobPolicy.drain();
  }
}
