import { UpstreamManifestInvalidError, UpstreamOfflineError, UpstreamStatusError, UpstreamUnavailableError } from '../upstream/errors.js';
import type { StaleCause } from './revalidation-deadline.js';
import type { Metrics } from '../observability/metrics.js';
import type { Logger } from '../observability/logger.js';

/**
 * Whether an upstream failure allows serving cached content instead: unreachable, 429/5xx, or
 * an answer that is no manifest (a captive portal's or proxy's HTML page is an outage too).
 */
export function isTransient(err: unknown): err is UpstreamUnavailableError | UpstreamStatusError | UpstreamManifestInvalidError {
  return err instanceof UpstreamUnavailableError || (err instanceof UpstreamStatusError && err.transient) || err instanceof UpstreamManifestInvalidError;
}

/** What a stale answer says about the upstream failure that caused it. */
export function staleReasonOf(err: unknown): string {
  return err instanceof UpstreamStatusError ? err.summary : (err as Error).message;
}

/**
 * What an upstream failure allows the cache to serve instead (revalidation-deadline.ts): offline
 * mode (the remote asked nothing), a cached answer whatever its age; a transient failure, a cached
 * answer within its stale window; anything else, nothing.
 */
export function staleCauseOf(err: unknown): StaleCause | null {
  if (err instanceof UpstreamOfflineError) return { kind: 'offline', reason: 'offline', anyAge: true };
  if (isTransient(err)) return { kind: 'upstream_error', reason: staleReasonOf(err), anyAge: false };
  return null;
}

/** Counts a stale answer: by reason, and (as before) among those served after an upstream failure. */
export function countStale(metrics: Metrics, registry: string, cause: StaleCause): void {
  metrics.staleAnswers.inc({ registry, reason: cause.kind });
  if (cause.kind === 'upstream_error') metrics.staleServed.inc({ registry });
}

/**
 * Logs a stale answer: at warn (the upstream failed or was slow), at debug in offline mode, where
 * serving from the cache is the rule and a line per request would only be noise.
 */
export function logStale(log: Logger, cause: StaleCause, msg: string, fields: Record<string, unknown>): void {
  (cause.kind === 'offline' ? log.debug : log.warn).call(log, msg, { ...fields, reason: cause.reason });
}
