/**
 * The root of pullthrough's own errors, as undici's `UndiciError` is of its: every failure a
 * caller is expected to handle is a subclass with a stable `code` (`ERR_…`, or the OCI code for
 * {@link OciError}), so callers branch on `instanceof` or `code`, never on message text.
 * `src/http/error-mapping.ts` turns them into what a client sees, in one place.
 *
 * Subclasses declare their code as a field (`readonly code = 'ERR_X'`) and set `name`; the
 * constructor takes the message and, where a lower-level failure caused it, `{ cause }`.
 */
export abstract class PullthroughError extends Error {
  /** Stable, documented, never reworded: what callers and tests compare. */
  abstract readonly code: string;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** True for any of pullthrough's typed errors (what `instanceof PullthroughError` says, as a guard). */
export function isPullthroughError(err: unknown): err is PullthroughError {
  return err instanceof PullthroughError;
}
