import type { MetadataStore } from '../storage/metadata-store.js';
import { UpstreamIntegrityError, UpstreamTagListError, UpstreamTooLargeError } from '../upstream/errors.js';
import type { Metrics } from '../observability/metrics.js';
import type { Logger } from '../observability/logger.js';
import { SingleFlight } from '../util/single-flight.js';
import { isTransient, staleReasonOf } from './stale-if-error.js';
import type { RemoteTarget } from './remote-target.js';
import type { TagListResult } from './results.js';
import { pageTags, sortTags } from './tag-list.js';
import type { TagPolicy } from './tag-policy.js';

export interface TagListPolicyDeps {
  /** `upstream.tagListMaxSize`: bytes of all of a list's upstream pages together. */
  readonly maxBytes: number;
  readonly meta: MetadataStore;
  readonly tagPolicy: TagPolicy;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Called when the metadata store is found unreachable while keeping a list (which is still served). */
  onMetadataDown(err: unknown): boolean;
}

/**
 * Tag lists over (metadata store, remote): the whole upstream list (`listTags`, over all its Link
 * pages, at most `upstream.tagListMaxSize`), sorted lexically, paged here by `n` and `last`.
 * Each good list is kept; when upstream fails (unreachable, 429/5xx, no usable list) the last one
 * is served stale for up to the default `staleIfError`, else the tags pullthrough has seen.
 */
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
    let sorted: string[];
    try {
      sorted = await this.flights.run(at.key, async () => {
        const list = await this.fetch(at);
        await this.d.meta.putTagList(space, repo, { tags: list, fetchedAt: Date.now() }).catch((err: unknown) => {
          // Without the metadata store the list is still served, only not kept.
          if (!this.d.onMetadataDown(err)) throw err;
        });
        return list;
      });
    } catch (err) {
      if (!isTransient(err) && !(err instanceof UpstreamTagListError)) throw err;
      // Without the metadata store there is nothing stale to offer: the upstream's failure stands.
      const rec = await this.d.meta.getTagList(space, repo).catch(() => Promise.reject(err));
      let stale: readonly string[] | undefined;
      if (rec && Date.now() - rec.fetchedAt <= this.d.tagPolicy.listTiming().staleIfErrorMs) stale = rec.tags;
      else if (!rec) {
        // Never listed before: the tags pullthrough has fetched, without its per-Accept records.
        const seen = (await this.d.meta.listTags(space, repo).catch(() => Promise.reject(err))).filter((x) => !x.includes('~'));
        if (seen.length) stale = seen;
      }
      if (!stale) throw err;
      const reason = staleReasonOf(err);
      this.d.metrics.staleServed.inc({ registry: at.t.registry.name });
      this.d.log.warn('serving stale tag list', { registry: at.t.registry.name, repo, reason, ageSeconds: rec ? Math.round((Date.now() - rec.fetchedAt) / 1000) : undefined });
      return answer(stale, 'stale', reason);
    }
    return answer(sorted, 'pass');
  }
}
