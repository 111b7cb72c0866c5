import { UpstreamIntegrityError, UpstreamTagListError, UpstreamTooLargeError } from '../upstream/errors.js';
import { SingleFlight } from '../util/single-flight.js';
import { countStale, staleCauseOf, staleReasonOf, logStale } from './stale-if-error.js';
import { answerWithin, reportOnce, type StaleCause } from './revalidation-deadline.js';
import type { RemoteTarget } from './remote-target.js';
import type { TagListResult } from './results.js';
import { pageTags, sortTags } from './tag-list.js';
import type { KeptAnswerPolicyDeps } from './referrers.js';

export interface TagListPolicyDeps extends KeptAnswerPolicyDeps {
  /** `upstream.tagListMaxSize`: bytes of all of a list's upstream pages together. */
  readonly maxBytes: number;
}

/**
 * Tag lists over (metadata store, remote): the whole upstream list (`listTags`, over all its Link
 * pages, at most `upstream.tagListMaxSize`), sorted lexically, paged here by `n` and `last`.
 * Each good list is kept; when upstream fails (unreachable, 429/5xx, no usable list) the last one
 * is served stale for up to the default `staleIfError`, else the tags pullthrough has seen; when
 * it is slower than `cache.revalidateDeadline`, the kept list is served stale at the deadline while
 * the fetch goes on and replaces it.
 */
/** A tag list also stands in when the upstream sent no usable list. */
function tagListCauseOf(err: unknown): StaleCause | null {
  return staleCauseOf(err) ?? (err instanceof UpstreamTagListError ? { kind: 'upstream_error', reason: staleReasonOf(err), anyAge: false } : null);
}

export class TagListPolicy {
  private readonly flights = new SingleFlight<string[]>();

  constructor(private readonly d: TagListPolicyDeps) {}

  /**
   * The whole list from upstream, sorted.
   * @throws UpstreamStatusError, UpstreamUnavailableError; UpstreamTagListError when the upstream
   *   sent no usable list (not JSON, a Link elsewhere or in a loop, past `upstream.tagListMaxSize`).
   */
  private async fetch(at: RemoteTarget): Promise<string[]> {
    try {
      // The byte bound is the one that applies (it bounds the count too), as configured.
      return sortTags(await at.remote.listTags({ maxBytes: this.d.maxBytes, maxPageBytes: this.d.maxBytes, maxTags: Infinity }));
    } catch (err) {
      const registry = at.t.registry.name;
      if (err instanceof UpstreamTooLargeError && err.pages !== undefined) {
        throw new UpstreamTagListError(registry, `larger than upstream.tagListMaxSize (${err.limit} bytes) after ${err.pages} page(s); raise upstream.tagListMaxSize to list it`);
      }
      if (err instanceof UpstreamIntegrityError || err instanceof UpstreamTooLargeError) {
        throw new UpstreamTagListError(registry, err.message.replace(/^upstream \S+ (sent bad content|sent too much): /, ''));
      }
      throw err;
    }
  }

  /**
   * The repository's tag list as the spec wants it, one page of it.
   * @throws UpstreamStatusError, UpstreamUnavailableError, UpstreamTagListError when there is
   *   nothing stale to serve instead.
   */
  async tags(at: RemoteTarget, query: { n?: number; last?: string }, clientName: string): Promise<TagListResult> {
    const answer = (sorted: readonly string[], cache: TagListResult['cache'], staleReason?: string): TagListResult => {
      const page = pageTags(sorted, query);
      return { body: Buffer.from(JSON.stringify({ name: clientName, tags: page.tags })), next: page.next, cache, staleReason };
    };
    const { space } = at;
    const repo = at.t.repo;
    const registry = at.t.registry.name;
    // Without the metadata store there is nothing stale to offer: the upstream's answer stands.
    const rec = await this.d.meta.getTagList(space, repo).catch(() => null);
    const revalidation = this.flights.run(at.key, async () => {
      const list = await this.fetch(at);
      await this.d.meta.putTagList(space, repo, { tags: list, fetchedAt: Date.now() }).catch((err: unknown) => {
        // Without the metadata store the list is still served, only not kept.
        if (!this.d.onMetadataDown(err)) throw err;
      });
      return list;
    });
    const age = rec ? Date.now() - rec.fetchedAt : Infinity;
    try {
      return await answerWithin<TagListResult>({
        revalidation: revalidation.then((list) => answer(list, 'pass')),
        cached: !rec ? 'none' : age <= this.d.tagPolicy.listTiming().staleIfErrorMs ? 'within-window' : 'too-old',
        deadlineMs: this.d.revalidateDeadlineMs,
        causeOf: tagListCauseOf,
        serveStale: async (cause) => {
          countStale(this.d.metrics, registry, cause);
          logStale(this.d.log, cause, 'serving stale tag list', { registry, repo, ageSeconds: Math.round(age / 1000) });
          return answer(rec!.tags, 'stale', cause.reason);
        },
        onLateError: (err) => reportOnce(err, () => this.d.log.warn('background revalidation failed', { registry, repo, what: 'tag list', error: (err as Error)?.message ?? String(err) })),
      });
    } catch (err) {
      const cause = tagListCauseOf(err);
      if (rec || !cause) throw err;
      // Never listed before: the tags pullthrough has fetched, without its per-Accept records.
      const seen = (await this.d.meta.listTags(space, repo).catch(() => Promise.reject(err))).filter((x) => !x.includes('~'));
      if (!seen.length) throw err;
      countStale(this.d.metrics, registry, cause);
      logStale(this.d.log, cause, 'serving stale tag list', { registry, repo });
      return answer(seen, 'stale', cause.reason);
    }
  }
}
