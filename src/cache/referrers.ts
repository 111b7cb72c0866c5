import type { MetadataStore, ReferrersRecord } from '../storage/metadata-store.js';
import { UpstreamStatusError } from '../upstream/errors.js';
import type { Metrics } from '../observability/metrics.js';
import type { Logger } from '../observability/logger.js';
import { SingleFlight } from '../util/single-flight.js';
import { answerWithin, reportOnce } from './revalidation-deadline.js';
import type { RemoteTarget } from './remote-target.js';
import { countStale, staleCauseOf, logStale } from './stale-if-error.js';
import type { ReferrersResult } from './results.js';
import type { TagPolicy } from './tag-policy.js';

/** What a policy that keeps an upstream answer and serves it stale needs (referrers, tag lists). */
export interface KeptAnswerPolicyDeps {
  readonly meta: MetadataStore;
  readonly tagPolicy: TagPolicy;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** `cache.revalidateDeadline`: longest a request with a kept answer waits for the upstream's. */
  readonly revalidateDeadlineMs: number;
  /** Called when the metadata store is found unreachable while keeping an answer (which is still served). */
  onMetadataDown(err: unknown): boolean;
}

export type ReferrersPolicyDeps = KeptAnswerPolicyDeps;

/**
 * Referrers (OCI 1.1) over (metadata store, remote), revalidated like tag lists so signatures and
 * SBOMs stay verifiable during an outage: asked upstream on every request and kept per manifest
 * and `artifactType` filter; served stale when the upstream fails transiently (for up to the
 * default `staleIfError`), at `cache.revalidateDeadline` when it is slower (the fetch goes on and
 * replaces the record), and in offline mode. An upstream without the referrers API
 * (`supported: false`, its 404) gets the client that same 404 with the upstream's own code and
 * message, so clients fall back to the tag schema as they would upstream; that answer is kept too.
 */
export class ReferrersPolicy {
  private readonly flights = new SingleFlight<ReferrersRecord>();

  constructor(private readonly d: ReferrersPolicyDeps) {}

  /**
   * The referrers index of `digest`, optionally filtered by `artifactType`.
   * @throws UpstreamStatusError (404 for an upstream without the referrers API), and when nothing
   *   kept may stand in: UpstreamUnavailableError, UpstreamIntegrityError, UpstreamTooLargeError.
   */
  async referrers(at: RemoteTarget, digest: string, artifactType: string | undefined): Promise<ReferrersResult> {
    const repo = at.t.repo;
    const registry = at.t.registry.name;
    // Without the metadata store there is nothing stale to offer: the upstream's answer stands.
    const rec = await this.d.meta.getReferrers(at.space, repo, digest, artifactType).catch(() => null);
    const revalidation = this.flights.run(`${at.key}@${digest}|${artifactType ?? ''}`, async () => {
      const r = await at.remote.listReferrers(digest, artifactType !== undefined ? { artifactType } : {});
      const fetchedAt = Date.now();
      const record: ReferrersRecord = r.supported
        ? { supported: true, body: r.body, mediaType: r.mediaType, ...(r.filtersApplied ? { filtersApplied: r.filtersApplied } : {}), fetchedAt }
        : { supported: false, upstreamCode: r.upstreamCode, upstreamMessage: r.upstreamMessage?.slice(0, 1000), fetchedAt };
      await this.d.meta.putReferrers(at.space, repo, digest, artifactType, record).catch((err: unknown) => {
        // Without the metadata store the answer is still served, only not kept.
        if (!this.d.onMetadataDown(err)) throw err;
      });
      return record;
    });
    const age = rec ? Date.now() - rec.fetchedAt : Infinity;
    const result = await answerWithin<{ record: ReferrersRecord; cache: ReferrersResult['cache']; staleReason?: string }>({
      revalidation: revalidation.then((record) => ({ record, cache: 'pass' as const })),
      cached: !rec ? 'none' : age <= this.d.tagPolicy.listTiming().staleIfErrorMs ? 'within-window' : 'too-old',
      deadlineMs: this.d.revalidateDeadlineMs,
      causeOf: staleCauseOf,
      serveStale: async (cause) => {
        countStale(this.d.metrics, registry, cause);
        logStale(this.d.log, cause, 'serving stale referrers', { registry, repo, digest, artifactType, ageSeconds: Math.round(age / 1000) });
        return { record: rec!, cache: 'stale', staleReason: cause.reason };
      },
      onLateError: (err) =>
        reportOnce(err, () => this.d.log.warn('background revalidation failed', { registry, repo, digest, what: 'referrers', error: (err as Error)?.message ?? String(err) })),
    });
    const r = result.record;
    if (!r.supported) throw new UpstreamStatusError(registry, 404, r.upstreamCode, r.upstreamMessage, undefined);
    const headers: Record<string, string> = { 'content-type': r.mediaType };
    if (r.filtersApplied) headers['oci-filters-applied'] = r.filtersApplied;
    return { body: r.body, headers, cache: result.cache, staleReason: result.staleReason };
  }
}
