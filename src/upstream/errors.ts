/** Typed upstream failures; `http/error-middleware.ts` maps them to OCI errors. */

/**
 * The upstream could not be reached or did not answer in time (refused, DNS, TLS, timeout).
 * The cache serves stale content for these where policy allows.
 */
export class UpstreamUnavailableError extends Error {
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
export class UpstreamStatusError extends Error {
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
}

/** The upstream sent bytes that do not match the digest (or size) they were requested by. */
export class UpstreamIntegrityError extends Error {
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
export class UpstreamAddressRefusedError extends Error {
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
