import { UpstreamManifestInvalidError, UpstreamStatusError, UpstreamUnavailableError } from '../upstream/errors.js';

/**
 * Whether an upstream failure allows serving cached content instead: unreachable, 429/5xx, or
 * an answer that is no manifest (a captive portal's or proxy's HTML page is an outage too).
 */
export function isTransient(err: unknown): err is UpstreamUnavailableError | UpstreamStatusError | UpstreamManifestInvalidError {
  return err instanceof UpstreamUnavailableError || (err instanceof UpstreamStatusError && err.transient) || err instanceof UpstreamManifestInvalidError;
}

/** What a stale answer says about the upstream failure that caused it. */
export function staleReasonOf(err: unknown): string {
  return err instanceof UpstreamStatusError ? `upstream answered ${err.status}` : (err as Error).message;
}
