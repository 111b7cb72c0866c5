/** Typed upstream failures; `http/error-mapping.ts` maps them to OCI errors. */
import { PullthroughError } from '../util/errors.js';

/**
 * The upstream could not be reached or did not answer in time (refused, DNS, TLS, timeout).
 * The cache serves stale content for these where policy allows.
 */
export class UpstreamUnavailableError extends PullthroughError {
  readonly code = 'ERR_UPSTREAM_UNAVAILABLE';
  constructor(readonly registry: string, message: string, options?: { cause?: unknown }) {
    super(`upstream ${registry} unavailable: ${message}`, options);
    this.name = 'UpstreamUnavailableError';
  }
}

/**
 * The upstream answered with an error status. `upstreamMessage` is the upstream's own message
 * (from its OCI error JSON), passed on to clients.
 */
export class UpstreamStatusError extends PullthroughError {
  readonly code = 'ERR_UPSTREAM_STATUS';
  constructor(
    readonly registry: string,
    readonly status: number,
    readonly upstreamCode: string | undefined,
    readonly upstreamMessage: string | undefined,
    readonly retryAfter: string | undefined,
  ) {
    super(`upstream ${registry} answered ${status}${upstreamMessage ? `: ${upstreamMessage}` : ''}`);
    this.name = 'UpstreamStatusError';
  }

  /** 429 and 5xx: worth serving stale content for. */
  get transient(): boolean {
    return this.status === 429 || this.status >= 500;
  }

  /** The failure in a few words, for stale answers' reasons and log fields: `upstream answered 503`. */
  get summary(): string {
    return `upstream answered ${this.status}`;
  }

  /** The failure as a metric label value: `status_503`. */
  get label(): string {
    return `status_${this.status}`;
  }
}

/** The upstream sent bytes that do not match the digest (or size) they were requested by. */
export class UpstreamIntegrityError extends PullthroughError {
  readonly code = 'ERR_UPSTREAM_INTEGRITY';
  constructor(readonly registry: string, message: string) {
    super(`upstream ${registry} sent bad content: ${message}`);
    this.name = 'UpstreamIntegrityError';
  }
}

/**
 * The upstream named a URL (a redirect, its token realm, an upload Location) on an address
 * pullthrough does not go to on an upstream's say-so: loopback, private, link-local, metadata
 * (see docs/upstream-policy.md). No connection was made to it.
 */
export class UpstreamAddressRefusedError extends PullthroughError {
  readonly code = 'ERR_UPSTREAM_ADDRESS_REFUSED';
  constructor(
    readonly registry: string,
    /** What named the URL: `redirect`, `token realm`, `upload Location`. */
    readonly what: string,
    /** The URL's origin (never its path or query, which may carry credentials). */
    readonly target: string,
    readonly reason: string,
  ) {
    super(`upstream ${registry} sent a ${what} to ${target}: refused, ${reason} (set registries."${registry}".allowPrivateRedirects to allow it)`);
    this.name = 'UpstreamAddressRefusedError';
  }
}

/**
 * The upstream sent more than pullthrough takes for one answer: a manifest past 4 MiB, a tag list
 * past its count or byte bound, a referrers index past its byte bound. Its memory is the limit
 * being protected, so the answer is refused whole rather than cut short.
 */
export class UpstreamTooLargeError extends PullthroughError {
  readonly code = 'ERR_UPSTREAM_TOO_LARGE';
  constructor(
    readonly registry: string,
    /** What was too large, e.g. `tag list of library/alpine`. */
    readonly what: string,
    /** The bound that was passed, in the unit `message` names (bytes or entries). */
    readonly limit: number,
    message: string,
    /** For a bound over several pages (a tag list's bytes): how many pages had been read. */
    readonly pages?: number,
  ) {
    super(`upstream ${registry} sent too much: ${message}`);
    this.name = 'UpstreamTooLargeError';
  }
}

/**
 * A response body was longer than the caller's bound ({@link readLimited}). Callers that know the
 * registry turn it into an {@link UpstreamTooLargeError} or {@link UpstreamIntegrityError}.
 */
export class BodyTooLargeError extends PullthroughError {
  readonly code = 'ERR_BODY_TOO_LARGE';
  constructor(readonly limit: number) {
    super(`response larger than ${limit} bytes`);
    this.name = 'BodyTooLargeError';
  }
}

/**
 * The upstream answered a manifest request with something that is no manifest pullthrough serves
 * (an HTML login page, text, JSON without `schemaVersion`, a body whose media type disagrees with
 * its Content-Type; see `oci/manifest-check.ts`). Nothing of it is stored or served; a cached
 * copy of the tag may be served instead (stale-if-error), as for an upstream 5xx.
 */
export class UpstreamManifestInvalidError extends PullthroughError {
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
export class UpstreamTagListError extends PullthroughError {
  readonly code = 'ERR_UPSTREAM_TAG_LIST';
  constructor(
    readonly registry: string,
    message: string,
  ) {
    super(`upstream ${registry} tag list: ${message}`);
    this.name = 'UpstreamTagListError';
  }
}

/**
 * The registry is in offline mode (`registries.<name>.offline`, or switched at run time): it is
 * served only from the cache, and nothing was asked upstream. Reaches a client only for what the
 * cache does not hold.
 */
export class UpstreamOfflineError extends PullthroughError {
  readonly code = 'ERR_UPSTREAM_OFFLINE';
  constructor(
    readonly registry: string,
    /** What could not be done, e.g. `manifest library/alpine:3 is not cached`. */
    readonly what: string,
  ) {
    super(`registry ${registry} is in offline mode (served only from the cache, nothing is asked upstream): ${what}`);
    this.name = 'UpstreamOfflineError';
  }
}
