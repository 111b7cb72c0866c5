/**
 * The OCI distribution error table, in one place. Every failure that reaches a client is an
 * {@link OciError}; lower layers throw their own typed errors and `http/error-mapping.ts`
 * maps them here.
 */
import { PullthroughError } from '../util/errors.js';

/** Error codes from the distribution spec, plus the few a mirror needs (UNAVAILABLE, LOOP_DETECTED). */
export const OCI_ERROR_TABLE = {
  BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry' },
  BLOB_UPLOAD_INVALID: { status: 400, message: 'blob upload invalid' },
  BLOB_UPLOAD_UNKNOWN: { status: 404, message: 'blob upload unknown to registry' },
  DIGEST_INVALID: { status: 400, message: 'provided digest did not match uploaded content' },
  MANIFEST_BLOB_UNKNOWN: { status: 404, message: 'manifest references a manifest or blob unknown to registry' },
  MANIFEST_INVALID: { status: 400, message: 'manifest invalid' },
  MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown to registry' },
  NAME_INVALID: { status: 400, message: 'invalid repository name' },
  TAG_INVALID: { status: 400, message: 'manifest tag is invalid' },
  NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry' },
  SIZE_INVALID: { status: 400, message: 'provided length did not match content length' },
  UNAUTHORIZED: { status: 401, message: 'authentication required' },
  DENIED: { status: 403, message: 'requested access to the resource is denied' },
  UNSUPPORTED: { status: 405, message: 'the operation is unsupported' },
  TOOMANYREQUESTS: { status: 429, message: 'too many requests' },
  RANGE_INVALID: { status: 416, message: 'requested range not satisfiable' },
  PAGINATION_NUMBER_INVALID: { status: 400, message: 'invalid number of results requested' },
  REQUEST_INVALID: { status: 400, message: 'request invalid' },
  UNAVAILABLE: { status: 503, message: 'service unavailable' },
  UPSTREAM_ERROR: { status: 502, message: 'upstream registry failed' },
  LOOP_DETECTED: { status: 508, message: 'request loop detected' },
  INTERNAL: { status: 500, message: 'internal error' },
} as const;

export type OciErrorCode = keyof typeof OCI_ERROR_TABLE;

/** An error a client sees as `{"errors":[{code,message,detail}]}` with the table's HTTP status. */
export class OciError extends PullthroughError {
  readonly code: OciErrorCode;
  readonly status: number;
  readonly detail: unknown;
  /** Extra response headers (e.g. Retry-After on TOOMANYREQUESTS, WWW-Authenticate on UNAUTHORIZED). */
  readonly headers: Record<string, string>;

  constructor(code: OciErrorCode, message?: string, detail?: unknown, headers: Record<string, string> = {}) {
    // A client's mistake or an upstream's answer, not a bug, and never logged with a stack: V8
    // would walk the whole (async) stack for it on every 404 and 401 (~4 µs and up). INTERNAL
    // keeps its stack for the error log.
    const limit = Error.stackTraceLimit;
    if (code !== 'INTERNAL') Error.stackTraceLimit = 0;
    super(message ?? OCI_ERROR_TABLE[code].message);
    Error.stackTraceLimit = limit;
    this.name = 'OciError';
    this.code = code;
    this.status = OCI_ERROR_TABLE[code].status;
    this.detail = detail;
    this.headers = headers;
  }

  /** The JSON body the distribution spec prescribes. */
  toBody(): { errors: Array<{ code: string; message: string; detail?: unknown }> } {
    const entry: { code: string; message: string; detail?: unknown } = { code: this.code, message: this.message };
    if (this.detail !== undefined) entry.detail = this.detail;
    return { errors: [entry] };
  }
}
