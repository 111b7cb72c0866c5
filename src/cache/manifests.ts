import { ALL_MANIFEST_TYPES, isAccepted } from '../oci/media-types.js';
import { isServedManifestType } from '../oci/manifest-check.js';
import type { ManifestRecord, MetadataStore, TagRecord } from '../storage/metadata-store.js';
import type { ManifestStat } from '../upstream/remote.js';
import { UpstreamManifestInvalidError, UpstreamStatusError } from '../upstream/errors.js';
import type { Metrics } from '../observability/metrics.js';
import type { Logger } from '../observability/logger.js';
import { SingleFlight } from '../util/single-flight.js';
import type { Confirmations } from './confirmations.js';
import { tagRecordKey, upstreamAcceptList } from './manifest-accept.js';
import { notFoundUpstream, type RemoteTarget } from './remote-target.js';
import { countStale, staleCauseOf, logStale } from './stale-if-error.js';
import { answerWithin, reportOnce } from './revalidation-deadline.js';
import type { TagPolicy } from './tag-policy.js';
import type { CacheStatus, ManifestResult } from './results.js';
import { ManifestLease } from './manifest-lease.js';

export interface ManifestPolicyDeps {
  readonly meta: MetadataStore;
  readonly confirmations: Confirmations;
  readonly tagPolicy: TagPolicy;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** `cache.revalidateDeadline`: longest a request with a cached answer waits for revalidation. */
  readonly revalidateDeadlineMs: number;
  /** `cache.fillLease`: how long the cross-replica lease on one manifest fetch lasts. */
  readonly fillLeaseMs: number;
}

/**
 * Manifests over (metadata store, remote). By digest they are immutable: served from the store
 * once the repository is confirmed, else fetched (checked by the remote) and kept. By tag they
 * are revalidated with `headManifest` (Docker Hub does not count HEADs) and fetched with
 * `getManifest` only when the digest changed; when the upstream fails transiently a cached tag is
 * served stale for up to its `staleIfError`, and when it is slower than `cache.revalidateDeadline`
 * the cached tag is served stale at the deadline while the revalidation goes on and updates the
 * record (revalidation-deadline.ts). Tag records are kept per Accept class (`~single`).
 * Concurrent misses share one upstream `GET`: within a process by flight, across replicas and
 * workers by the lease `manifest:<digest>` (manifest-lease.ts).
 */
export class ManifestPolicy {
  private readonly flights = new SingleFlight<ManifestResult>();
  private readonly lease: ManifestLease;

  constructor(private readonly d: ManifestPolicyDeps) {
    this.lease = new ManifestLease(d.meta, d.fillLeaseMs, d.metrics);
  }

  /**
   * A manifest by digest; `head` answers from an upstream HEAD on a miss, fetching no body.
   * @throws UpstreamStatusError, UpstreamUnavailableError, UpstreamIntegrityError,
   *   UpstreamManifestInvalidError, UpstreamTooLargeError; StorageUnavailableError from the store.
   */
  async byDigest(at: RemoteTarget, digest: string, head: boolean): Promise<ManifestResult> {
    const cached = await this.digestFromStore(at, digest, 'hit');
    if (cached) return cached;
    return this.flights.run(`${at.key}@${digest}|${head}`, async () => {
      if (head) {
        const h = await at.remote.headManifest(digest, ALL_MANIFEST_TYPES);
        if (!h) throw notFoundUpstream(at.t.registry.name);
        return { digest, mediaType: h.mediaType, size: h.size, cache: 'pass' };
      }
      return this.lease.once(
        digest,
        () => this.digestFromStore(at, digest, 'miss'),
        async () => {
          const m = await at.remote.getManifest(digest, ALL_MANIFEST_TYPES);
          await this.store(at, digest, m);
          return withBody(digest, m, 'miss');
        },
      );
    });
  }

  /**
   * The manifest from the store, once the repository is confirmed to have it; null when the store
   * has none. `cache` says how the answer came: found at once, or fetched by another replica.
   */
  private async digestFromStore(at: RemoteTarget, digest: string, cache: 'hit' | 'miss'): Promise<ManifestResult | null> {
    const rec = await this.stored(digest);
    if (!rec) return null;
    await this.d.confirmations.confirm(at, digest, 'manifest');
    return withBody(digest, rec, cache);
  }

  /**
   * A manifest by tag, for a client's Accept set (null: anything).
   * @throws as {@link byDigest}; a transient failure only when no usable stale record exists.
   */
  async byTag(at: RemoteTarget, tag: string, accepted: Set<string> | null, head: boolean): Promise<ManifestResult> {
    const key = tagRecordKey(tag, accepted);
    const timing = this.d.tagPolicy.timingFor(tag);
    const rec = await this.d.meta.getTag(at.space, at.t.repo, key);
    const age = rec ? Date.now() - rec.checkedAt : Infinity;
    if (rec && age < timing.revalidateMs && isAccepted(accepted, rec.mediaType)) {
      const m = await this.stored(rec.digest);
      if (m) return withBody(rec.digest, m, 'hit');
    }
    const usable = rec !== null && isAccepted(accepted, rec.mediaType);
    const staleUsable = usable && age <= timing.revalidateMs + timing.staleIfErrorMs;
    const flightKey = `${at.key}:${key}|${head}|${accepted ? [...accepted].sort().join(',') : '*'}`;
    // The revalidation is shared; each request waits for it up to its own deadline.
    const revalidation = this.flights.run(flightKey, () => this.revalidate(at, tag, key, accepted, head, rec, staleUsable));
    const registry = at.t.registry.name;
    return answerWithin({
      revalidation,
      cached: !usable ? 'none' : staleUsable ? 'within-window' : 'too-old',
      deadlineMs: this.d.revalidateDeadlineMs,
      causeOf: staleCauseOf,
      serveStale: async (cause) => {
        const m = await this.stored(rec!.digest);
        if (!m) return null;
        countStale(this.d.metrics, registry, cause);
        logStale(this.d.log, cause, 'serving stale manifest', { registry, repo: at.t.repo, tag, digest: rec!.digest, ageSeconds: Math.round(age / 1000) });
        return { ...withBody(rec!.digest, m, 'stale'), staleReason: cause.reason };
      },
      onLateError: (err) =>
        reportOnce(err, () => this.d.log.warn('background revalidation failed', { registry, repo: at.t.repo, tag, error: (err as Error)?.message ?? String(err) })),
    });
  }

  private async revalidate(at: RemoteTarget, tag: string, key: string, accepted: Set<string> | null, head: boolean, rec: TagRecord | null, staleUsable: boolean): Promise<ManifestResult> {
    const accept = upstreamAcceptList(accepted);
    // HEAD first: Docker Hub does not count HEADs against its pull limit.
    let h: ManifestStat | null = null;
    try {
      h = await at.remote.headManifest(tag, accept);
    } catch (err) {
      if (err instanceof UpstreamStatusError) {
        // A cached copy will be served; no need to ask a failing upstream again.
        if (staleUsable && err.transient) throw err;
        // Otherwise the GET below fetches the upstream's own error message (a HEAD has none).
      } else if (!(err instanceof UpstreamManifestInvalidError) || head) {
        throw err;
      }
      // A HEAD whose Content-Type names no manifest: the GET finds out what the body is.
    }
    if (h?.digest) {
      const digest = h.digest;
      const fromStore = () => this.tagFromStore(at, key, digest, rec);
      const cached = await fromStore();
      if (cached) return cached;
      if (head) return { digest, mediaType: h.mediaType, size: h.size, cache: 'pass' };
      // What changed is fetched once between replicas: the others find it in the store.
      return this.lease.once(digest, fromStore, () => this.fetchTag(at, tag, key, accept));
    }
    // Otherwise a GET: after a HEAD error or 404, which have no body, it fetches the upstream's
    // own error message for the client.
    return this.fetchTag(at, tag, key, accept);
  }

  /** The tag's manifest when the store has it (the tag's record now names it); else null. */
  private async tagFromStore(at: RemoteTarget, key: string, digest: string, rec: TagRecord | null): Promise<ManifestResult | null> {
    const cached = await this.stored(digest);
    if (!cached) return null;
    await this.record(at, key, digest, cached.mediaType, cached.body.length);
    return withBody(digest, cached, rec?.digest === digest ? 'revalidated' : 'miss');
  }

  /** GETs the tag's manifest and keeps it, with the tag's record naming it. */
  private async fetchTag(at: RemoteTarget, tag: string, key: string, accept: readonly string[]): Promise<ManifestResult> {
    const m = await at.remote.getManifest(tag, accept);
    await this.store(at, m.digest, m);
    await this.putTag(at, key, m.digest, m.mediaType, m.body.length);
    return withBody(m.digest, m, 'miss');
  }

  /**
   * The stored manifest `digest`, or null. A record of another media type was stored before
   * manifests were checked: it counts as absent, so the manifest is fetched again.
   */
  private async stored(digest: string): Promise<ManifestRecord | null> {
    const rec = await this.d.meta.getManifest(digest);
    return rec && isServedManifestType(rec.mediaType) ? rec : null;
  }

  /**
   * A fetched manifest and the repository's link to it. The two writes are independent, so they
   * go together: on the file store each is a few trips through the thread pool, on the client's
   * way. A tag record naming the digest is written only after this, so it never names a manifest
   * the store has not got.
   */
  private async store(at: RemoteTarget, digest: string, m: { mediaType: string; body: Buffer }): Promise<void> {
    await Promise.all([this.d.meta.putManifest(digest, { mediaType: m.mediaType, body: m.body }), this.d.meta.link(at.space, at.t.repo, digest)]);
  }

  /** A tag now names a manifest the store already has. */
  private async record(at: RemoteTarget, key: string, digest: string, mediaType: string, size: number): Promise<void> {
    await Promise.all([this.d.meta.link(at.space, at.t.repo, digest), this.putTag(at, key, digest, mediaType, size)]);
  }

  /** The tag's record, checked now. */
  private putTag(at: RemoteTarget, key: string, digest: string, mediaType: string, size: number): Promise<void> {
    return this.d.meta.putTag(at.space, at.t.repo, key, { digest, mediaType, size, checkedAt: Date.now() });
  }
}

/** The answer for manifest `digest` with its body, however it was obtained. */
function withBody(digest: string, m: ManifestRecord, cache: CacheStatus): ManifestResult {
  return { digest, mediaType: m.mediaType, size: m.body.length, body: m.body, cache };
}
