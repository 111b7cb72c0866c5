/**
 * Bounded waiting for revalidation (issue 18): a request for which the cache holds an answer waits
 * at most `cache.revalidateDeadline` for the upstream; past it the cached answer is served and the
 * revalidation goes on in the background (stale-while-revalidate), updating the record when it
 * ends. This file holds only the race; the policies decide what is served.
 */

/** How the race ended: the work's value in time, or the deadline first (the work still runs). */
export type Raced<T> = { readonly inTime: true; readonly value: T } | { readonly inTime: false };

/**
 * Waits for `work` at most `ms` milliseconds.
 *
 * @returns `{ inTime: true, value }` when `work` resolved first; `{ inTime: false }` when the
 *   deadline came first. `work` is never cancelled: it goes on, and a failure it ends with after
 *   the deadline is handed to `onLateError` (so it is logged, never an unhandled rejection).
 * @throws whatever `work` rejects with before the deadline.
 */
export function withinDeadline<T>(work: Promise<T>, ms: number, onLateError: (err: unknown) => void): Promise<Raced<T>> {
  return new Promise<Raced<T>>((resolve, reject) => {
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      resolve({ inTime: false });
    }, ms);
    work.then(
      (value) => {
        if (late) return;
        clearTimeout(timer);
        resolve({ inTime: true, value });
      },
      (err: unknown) => {
        if (!late) {
          clearTimeout(timer);
          reject(err);
          return;
        }
        try {
          onLateError(err);
        } catch {
          /* a logger's failure must not become an unhandled rejection either */
        }
      },
    );
  });
}

/** The stale reason of an answer served because revalidation outlasted the deadline. */
export function deadlineReason(ms: number): string {
  const text = ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
  return `revalidation exceeded ${text}`;
}

/** Why a cached answer was served without a fresh upstream answer (the metric's `reason` label). */
export type StaleKind = 'deadline' | 'upstream_error' | 'offline';

/** How an upstream failure lets a cached answer stand in: why, and whether its age matters. */
export interface StaleCause {
  readonly kind: StaleKind;
  /** For the log and the request log's `stale` field. */
  readonly reason: string;
  /** Offline mode serves cached answers whatever their age; failures only within the stale window. */
  readonly anyAge: boolean;
}

export interface StaleWhileRevalidate<T> {
  /** The revalidation (shared by every request that joined it: single flight). */
  readonly revalidation: Promise<T>;
  /** Whether the cache holds an answer at all, and whether it is within its stale window. */
  readonly cached: 'none' | 'too-old' | 'within-window';
  readonly deadlineMs: number;
  /** What an upstream failure allows (stale-if-error.ts), or null when the failure must stand. */
  causeOf(err: unknown): StaleCause | null;
  /** The cached answer, served stale for `cause`; null when it cannot be (gone meanwhile, unreadable). */
  serveStale(cause: StaleCause): Promise<T | null>;
  /** A revalidation that failed after its request was answered stale (to log; the record stays). */
  onLateError(err: unknown): void;
}

/**
 * One request's answer given a revalidation in progress (see the file comment): the revalidation's
 * own when it comes within the deadline; else the cached answer, stale, while it goes on; the
 * cached answer too when it fails in a way that allows it. Without a cached answer the request
 * waits for the revalidation, whatever it takes.
 * @throws the revalidation's error when no cached answer may stand in.
 */
export async function answerWithin<T>(s: StaleWhileRevalidate<T>): Promise<T> {
  if (s.cached === 'none') return s.revalidation;
  try {
    if (s.cached === 'within-window') {
      const r = await withinDeadline(s.revalidation, s.deadlineMs, s.onLateError);
      if (r.inTime) return r.value;
      const stale = await s.serveStale({ kind: 'deadline', reason: deadlineReason(s.deadlineMs), anyAge: false });
      if (stale) return stale;
    }
    // Too old to serve merely because the upstream is slow (or gone from the store): wait.
    return await s.revalidation;
  } catch (err) {
    const cause = s.causeOf(err);
    if (!cause || (!cause.anyAge && s.cached !== 'within-window')) throw err;
    const stale = await s.serveStale(cause).catch(() => null);
    if (stale) return stale;
    throw err;
  }
}

const reported = new WeakSet<object>();

/**
 * Runs `report` once per failure, however many requests were answered stale while it was in
 * progress (they share one revalidation, so they see the same error object).
 */
export function reportOnce(err: unknown, report: () => void): void {
  if (typeof err === 'object' && err !== null) {
    if (reported.has(err)) return;
    reported.add(err);
  }
  report();
}
