/**
 * Says in the server log why an upstream fails (`getaddrinfo ENOTFOUND registry-1.docker.io`,
 * `connect ECONNREFUSED …`, `answered 503`), once per registry and cause rather than once per
 * request. Clients see the cause in the OCI error body, but skopeo, docker and containerd do not
 * print bodies, so without this line an operator only sees 503s.
 */
import type { Logger } from './logger.js';
import { UpstreamStatusError, UpstreamUnavailableError } from '../upstream/errors.js';

export interface UpstreamFailureLogOptions {
  /** After a line for a (registry, cause), repeats are counted, not logged, for this long (default 60 s). */
  readonly quietMs?: number;
  /** The clock (tests of the policy). */
  readonly now?: () => number;
}

interface Seen {
  /** When the last line for this (registry, cause) was written. */
  loggedAt: number;
  /** Failures with this cause since that line. */
  suppressed: number;
}

/** Bounds memory if an upstream's error messages vary without end (request ids in them). */
const MAX_CAUSES = 1000;
const MAX_CAUSE_CHARS = 300;

/** One per process, shared by every door: notes the upstream failures that reach clients. */
export class UpstreamFailureLog {
  private readonly quietMs: number;
  private readonly now: () => number;
  private readonly seen = new Map<string, Seen>();
  /** The cause each registry last failed with, to say when it changes. */
  private readonly lastCause = new Map<string, string>();

  constructor(
    private readonly log: Logger,
    opts: UpstreamFailureLogOptions = {},
  ) {
    this.quietMs = opts.quietMs ?? 60_000;
    this.now = opts.now ?? Date.now;
  }

  /**
   * Notes a failure a request met. Upstream failures (unreachable, timed out, 429, 5xx) write one
   * `upstream failing` warn line per registry and cause, then count repeats for `quietMs`; the
   * next line for that cause, or the first for another cause of the same registry, says how many
   * were not logged. A cause logged within `quietMs` stays quiet even after another cause came
   * between. Anything else (a 404, a client's mistake) is ignored. Never throws.
   */
  note(err: unknown): void {
    const failure = describe(err);
    if (!failure) return;
    const { registry, cause, status } = failure;
    const key = `${registry}\0${cause}`;
    const now = this.now();
    const seen = this.seen.get(key);
    const previous = this.lastCause.get(registry);
    const changed = previous !== undefined && previous !== cause;
    // A cause already logged within quietMs stays quiet even when the registry's causes alternate
    // (a flapping upstream: reset, timeout, reset, …), or every request would log again.
    if (seen && now - seen.loggedAt < this.quietMs) {
      seen.suppressed++;
      return;
    }
    const fields: Record<string, unknown> = { registry, cause, status };
    if (seen?.suppressed) fields.repeated = seen.suppressed;
    if (changed) {
      const before = this.seen.get(`${registry}\0${previous}`);
      fields.previousCause = previous;
      if (before?.suppressed) {
        fields.previousRepeated = before.suppressed;
        before.suppressed = 0;
      }
    }
    this.log.warn('upstream failing', fields);
    this.lastCause.set(registry, cause);
    this.seen.delete(key); // re-inserted last: the Map's order is oldest first for pruning
    this.seen.set(key, { loggedAt: now, suppressed: 0 });
    if (this.seen.size > MAX_CAUSES) this.prune(now);
  }

  private prune(now: number): void {
    for (const [key, s] of this.seen) {
      if (this.seen.size <= MAX_CAUSES / 2) break;
      if (now - s.loggedAt >= this.quietMs || this.seen.size > MAX_CAUSES) this.seen.delete(key);
    }
  }
}

/** The registry and a stable, credential-free text of an upstream failure; undefined for other errors. */
function describe(err: unknown): { registry: string; cause: string; status?: number } | undefined {
  if (err instanceof UpstreamUnavailableError) {
    const prefix = `upstream ${err.registry} unavailable: `;
    const text = err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
    return { registry: err.registry, cause: scrub(text) };
  }
  if (err instanceof UpstreamStatusError && err.transient) {
    const detail = [err.upstreamCode, err.upstreamMessage].filter(Boolean).join(' ');
    return { registry: err.registry, cause: scrub(`answered ${err.status}${detail ? `: ${detail}` : ''}`), status: err.status };
  }
  return undefined;
}

/**
 * Keeps credentials out of the line even if a lower layer put a URL or header into a message:
 * no user:password in URLs, no query strings (presigned URLs carry signatures), no tokens.
 */
export function scrub(text: string): string {
  return text
    .replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^/\s@]*@/gi, '$1')
    .replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^\s?#]*)\?[^\s#]*/gi, '$1?…')
    .replace(/\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+/gi, '$1 …')
    .replace(/\s+/g, ' ')
    .slice(0, MAX_CAUSE_CHARS);
}
