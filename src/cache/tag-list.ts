/**
 * Tag-list paging as the distribution spec wants it: the whole upstream list (collected by
 * `RemoteRepository.listTags`; the policy is cache/tag-lists.ts) sorted lexically, and paged with
 * `n` and `last` by pullthrough itself, since upstreams may return an unsorted list or ignore `n`.
 */

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
