import { rm } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { ALL_MANIFEST_TYPES } from '../oci/media-types.js';
import type { ManifestReference } from '../oci/reference.js';
import type { BlobStore, ByteRange } from '../storage/blob-store.js';
import { blobKey } from '../storage/keys.js';
import type { Metrics } from '../observability/metrics.js';
import type { Logger } from '../observability/logger.js';
import { SingleFlight } from '../util/single-flight.js';
import type { DownloadTracker } from './downloads.js';
import { BlobFills, type FillSettings } from './fills.js';
import { confirmUpstream } from './confirmations.js';
import { upstreamAcceptList } from './manifest-accept.js';
import { notFoundUpstream, type RemoteTarget } from './remote-target.js';
import type { BlobHandle, ManifestResult } from './results.js';

/** Why the cache is bypassed; the label of `pullthrough_degraded_requests_total`. */
export type BypassReason = 'metadata_unavailable' | 'blob_store_unavailable';

export interface RemoteOnlyDeps {
  readonly blobs: BlobStore;
  readonly fill: FillSettings;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Downloads in progress, for the admin API and status page. */
  readonly downloads?: DownloadTracker;
}

/** At most one "serving without the cache" warning per reason this often; the metric counts every request. */
const WARN_EVERY_MS = 30_000;

/**
 * The remote-only layer the cache policies fall back to: what pullthrough serves while the
 * metadata store (Redis or the file store) is unreachable, and how a cached blob is served while
 * the blob store cannot read it. It is the policies without their records:
 * - content is served under a repository only after the upstream confirmed that repository holds
 *   it (`statBlob`; manifests come from the repository itself), since the links that would
 *   remember earlier confirmations cannot be read;
 * - blob bytes are either read from the blob store (written there only after digest
 *   verification) or downloaded through a BlobFill (the same {@link BlobFills} as the cache's),
 *   which verifies size and digest before the last byte is released; manifests are checked by
 *   the remote against the digest asked for or announced;
 * - nothing is written: no records, no blobs (a blob in storage without a record would be outside
 *   eviction's accounting), so nothing needs repair once the store is back.
 *
 * Concurrent requests for the same blob on this replica share one download; across replicas there
 * is no lease (it lives in the unreachable store), so each replica downloads for itself.
 */
export class RemoteOnly {
  private readonly fills: BlobFills;
  private readonly manifestFlights = new SingleFlight<ManifestResult>();
  private readonly lastWarned = new Map<BypassReason, number>();

  constructor(private readonly d: RemoteOnlyDeps) {
    this.fills = new BlobFills(d.fill, d.metrics, d.downloads);
  }

  /** Counts a request served without the cache; warns now and then with the cause. */
  note(reason: BypassReason, cause: unknown): void {
    this.d.metrics.degraded.inc({ reason });
    const now = Date.now();
    if (now - (this.lastWarned.get(reason) ?? 0) < WARN_EVERY_MS) return;
    this.lastWarned.set(reason, now);
    this.d.log.warn('serving without the cache', { reason, error: (cause as Error)?.message ?? String(cause) });
  }

  /**
   * A blob, confirmed for `at` with an upstream stat, then read from the blob store when it holds
   * it, else streamed (verified) from upstream.
   * @throws UpstreamStatusError when upstream does not confirm (404 included); UpstreamUnavailableError.
   */
  async blob(at: RemoteTarget, digest: string, head: boolean): Promise<BlobHandle> {
    const { size } = await confirmUpstream(at, digest, 'blob');
    if (head) return { digest, size, cache: 'pass', open: () => Promise.reject(new Error('HEAD has no body')) };
    const key = blobKey(digest);
    // An unreachable blob store too just means upstream.
    const stored = await this.d.blobs.stat(key).catch(() => null);
    if (stored && (size === undefined || stored.size === size)) {
      return {
        digest,
        size: stored.size,
        cache: 'hit',
        open: async (range?: ByteRange): Promise<Readable> => {
          try {
            return await this.d.blobs.read(key, range);
          } catch {
            // Gone (evicted by a replica that still reaches the metadata) or unreadable.
            return (await this.fromUpstream(at, digest)).open(range);
          }
        },
      };
    }
    return this.fromUpstream(at, digest);
  }

  /**
   * Streams a blob from upstream, verified, storing nothing. The caller has made sure `at` may
   * read it (a link, or an upstream stat).
   * @throws UpstreamStatusError, UpstreamUnavailableError, UpstreamIntegrityError
   */
  async fromUpstream(at: RemoteTarget, digest: string): Promise<BlobHandle> {
    const registry = at.t.registry.name;
    const f =
      this.fills.get(digest) ??
      this.fills.start(
        at.remote,
        at.key,
        digest,
        {
          // Verified and read by its clients: nothing to keep (and nothing is linked).
          commit: (_digest, path) => rm(path, { force: true }),
          failed: (err) => this.d.log.warn('uncached blob download failed', { registry, repo: at.t.repo, digest, error: (err as Error).message }),
        },
        true,
      );
    const { size } = await f.started;
    return {
      digest,
      size,
      cache: 'pass',
      open: async (range?: ByteRange): Promise<Readable> => {
        if (this.fills.get(digest) === f) return f.reader(range);
        // It finished between answering and reading, and kept nothing: download again.
        return (await this.fromUpstream(at, digest)).open(range);
      },
    };
  }

  /**
   * A manifest straight from upstream (a HEAD for HEAD requests), checked by the remote to be a
   * manifest and to hash to the digest asked for or announced.
   * @throws UpstreamStatusError, UpstreamUnavailableError, UpstreamIntegrityError,
   *   UpstreamManifestInvalidError, UpstreamTooLargeError
   */
  async manifest(at: RemoteTarget, ref: ManifestReference, accepted: Set<string> | null, head: boolean): Promise<ManifestResult> {
    const reference = ref.kind === 'digest' ? ref.digest : ref.tag;
    const accept = ref.kind === 'digest' ? ALL_MANIFEST_TYPES : upstreamAcceptList(accepted);
    // Keyed by the upstream account too (`at.key`): an answer given to one account is not shared with another.
    const key = `${at.key}:${reference}|${head}|${accept.join(', ')}`;
    return this.manifestFlights.run(key, async () => {
      if (head) {
        const h = await at.remote.headManifest(reference, accept);
        if (h === null) throw notFoundUpstream(at.t.registry.name);
        if (h.digest) return { digest: h.digest, mediaType: h.mediaType, size: h.size, cache: 'pass' };
        // Without a digest to answer with, fall through to a GET and hash the body.
      }
      const m = await at.remote.getManifest(reference, accept);
      return { digest: m.digest, mediaType: m.mediaType, size: m.body.length, body: m.body, cache: 'pass' };
    });
  }

  /** Downloads in progress here (for draining). */
  get inFlight(): number {
    return this.fills.size;
  }
}
