/**
 * Tag lists as the distribution spec wants them: the whole upstream list, collected over the
 * upstream's own `Link` pages (bounded), sorted lexically, and paged with `n` and `last` by
 * pullthrough itself, since upstreams may return an unsorted list or ignore `n`.
 */
import type { Credentials, RegistryUpstream } from '../upstream/registry-upstream.js';
import { readLimited, upstreamStatusError } from '../upstream/registry-upstream.js';
import { UpstreamTagListError } from '../upstream/errors.js';
import { nextLink } from '../upstream/link-header.js';

/** At most this many upstream pages per list (a registry paging by 100 reaches 100 000 tags). */
export const MAX_TAG_LIST_PAGES = 1000;

/** One page of a sorted tag list, and where the next one starts when more remain. */
export interface TagPage {
  readonly tags: readonly string[];
  readonly next?: { readonly n: number; readonly last: string };
}

/** Distinct tags in lexical order (code-unit order; tags are ASCII, so byte order too). */
export function sortTags(tags: Iterable<string>): string[] {
  return [...new Set(tags)].sort();
}

/**
 * The page of `sorted` that `n` and `last` select, as the spec defines it: the tags after `last`
 * (non-inclusive), at most `n` of them, with `next` when more remain; `n=0` is an empty page
 * without `next`; no `n` is everything after `last`.
 */
export function pageTags(sorted: readonly string[], query: { readonly n?: number; readonly last?: string }): TagPage {
  let from = 0;
  if (query.last !== undefined) {
    // First tag greater than `last` (binary search: lists may hold 100 000 tags).
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (sorted[mid]! <= query.last) lo = mid + 1;
      else hi = mid;
    }
    from = lo;
  }
  if (query.n === undefined) return { tags: sorted.slice(from) };
  if (query.n === 0) return { tags: [] };
  const tags = sorted.slice(from, from + query.n);
  return from + query.n < sorted.length ? { tags, next: { n: query.n, last: tags[tags.length - 1]! } } : { tags };
}

/**
 * Collects the whole tag list of `repo` from upstream: the first page, then every page its
 * `Link: rel="next"` names (relative or absolute, but only on the upstream's own origin and
 * tag-list path), up to `maxBytes` of bodies in all and {@link MAX_TAG_LIST_PAGES} pages.
 * Returns the tags unsorted, as upstream gave them.
 * @throws UpstreamStatusError when upstream answers an error; UpstreamUnavailableError;
 *   UpstreamTagListError when a page is no tag list, the list is too large, or a Link leads
 *   elsewhere or back to a page already read.
 */
export async function fetchUpstreamTags(up: RegistryUpstream, repo: string, credentials: Credentials | null | undefined, maxBytes: number): Promise<string[]> {
  const registry = up.registry.name;
  const listPath = `/v2/${repo}/tags/list`;
  const origin = up.origin;
  const tags: string[] = [];
  const seen = new Set<string>();
  let path = listPath;
  let bytes = 0;
  for (let page = 1; ; page++) {
    seen.add(path);
    const res = await up.request({ method: 'GET', path, repo, kind: 'tags', credentials });
    if (res.status !== 200) throw await upstreamStatusError(registry, res);
    let body: Buffer;
    try {
      body = await readLimited(res.body, maxBytes - bytes);
    } catch (err) {
      if (/larger than/.test((err as Error).message)) {
        throw new UpstreamTagListError(registry, `larger than upstream.tagListMaxSize (${maxBytes} bytes) after ${page} page(s); raise upstream.tagListMaxSize to list it`);
      }
      throw new UpstreamTagListError(registry, `unreadable: ${(err as Error).message}`);
    }
    bytes += body.length;
    let doc: unknown;
    try {
      doc = JSON.parse(body.toString('utf8'));
    } catch {
      throw new UpstreamTagListError(registry, 'a page is not JSON');
    }
    const list = typeof doc === 'object' && doc !== null ? (doc as { tags?: unknown }).tags : undefined;
    // distribution answers `"tags": null` for a repository without tags.
    if (list !== null && !(Array.isArray(list) && list.every((x) => typeof x === 'string'))) {
      throw new UpstreamTagListError(registry, 'a page has no "tags" array of strings');
    }
    if (list) tags.push(...(list as string[]));
    const link = nextLink(res.headers.link);
    if (link === undefined) return tags;
    let next: URL;
    try {
      next = new URL(link, new URL(path, origin));
    } catch {
      throw new UpstreamTagListError(registry, `unusable Link ${JSON.stringify(link.slice(0, 200))}`);
    }
    // Only the upstream's own list: a Link is the upstream's say-so, and must not send
    // pullthrough to another host (or another path) with the upstream's credentials.
    if (next.origin !== origin || next.pathname !== listPath) {
      throw new UpstreamTagListError(registry, `Link to ${next.origin}${next.pathname.slice(0, 200)} is not ${origin}${listPath}; not followed`);
    }
    path = next.pathname + next.search;
    if (seen.has(path)) throw new UpstreamTagListError(registry, `Link leads back to a page already read (${path.slice(0, 200)})`);
    if (page >= MAX_TAG_LIST_PAGES) throw new UpstreamTagListError(registry, `more than ${MAX_TAG_LIST_PAGES} pages`);
  }
}
