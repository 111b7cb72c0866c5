/**
 * The one reader of `Link` headers (RFC 8288) for pages that registries chain: tag lists and
 * referrers. Used by the tag-list collector and by the typed remote.
 */

/** The target of a `Link: <…>; rel="next"` header, if there is one. */
export function nextLink(link: string | undefined): string | undefined {
  if (!link) return undefined;
  for (const part of link.split(/,(?=\s*<)/)) {
    const m = /^\s*<([^>]*)>(.*)$/.exec(part);
    const rel = m && /;\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,]+))/i.exec(m[2]!);
    if (rel && (rel[1] ?? rel[2]!).toLowerCase().split(/\s+/).includes('next')) return m[1];
  }
  return undefined;
}
