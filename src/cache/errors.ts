/** Typed failures of the pull-through policy; `http/error-mapping.ts` maps them to OCI errors. */

/**
 * The upstream answered a manifest request with something that is no manifest pullthrough serves
 * (an HTML login page, text, JSON without `schemaVersion`, a body whose media type disagrees with
 * its Content-Type; see `oci/manifest-check.ts`). Nothing of it is stored or served; a cached
 * copy of the tag may be served instead (stale-if-error), as for an upstream 5xx.
 */
export class UpstreamManifestInvalidError extends Error {
  readonly code = 'ERR_UPSTREAM_MANIFEST_INVALID';
  constructor(
    readonly registry: string,
    readonly reason: string,
  ) {
    super(`upstream ${registry} sent no manifest: ${reason}`);
    this.name = 'UpstreamManifestInvalidError';
  }
}

/**
 * The upstream's tag list could not be collected: unreadable, not a tag list, larger than
 * `upstream.tagListMaxSize` over all its pages, or paged by a `Link` to another origin. The last
 * good list may be served instead (stale-if-error).
 */
export class UpstreamTagListError extends Error {
  readonly code = 'ERR_UPSTREAM_TAG_LIST';
  constructor(
    readonly registry: string,
    message: string,
  ) {
    super(`upstream ${registry} tag list: ${message}`);
    this.name = 'UpstreamTagListError';
  }
}
