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
