import { PullthroughError } from '../util/errors.js';

/**
 * An admin error for the caller's mistake or a refusal: answered (src/admin/app.ts) with `status`
 * and `{ "error": { "code": apiCode, "message" } }`, e.g. 400 INVALID_REFERENCE, 404 NOT_CACHED,
 * 409 IN_PROGRESS. Never a 500.
 */
export class AdminRequestError extends PullthroughError {
  readonly code = 'ERR_ADMIN_REQUEST';

  constructor(
    readonly status: number,
    /** The answer's `error.code`: stable, documented in docs/admin.md, what the CLI and scripts branch on. */
    readonly apiCode: string,
    message: string,
    /** More for scripts (e.g. the digests being downloaded), answered as `error.detail`. */
    readonly detail?: unknown,
  ) {
    super(message);
    this.name = 'AdminRequestError';
  }
}
