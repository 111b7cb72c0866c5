/** Typed storage failures; `http/error-mapping.ts` maps them to OCI errors. */
import { PullthroughError } from '../util/errors.js';

/** The object does not exist (or is not committed yet). */
export class BlobNotFoundError extends PullthroughError {
  readonly code = 'ERR_BLOB_NOT_FOUND';
  constructor(readonly key: string) {
    super(`blob not found: ${key}`);
    this.name = 'BlobNotFoundError';
  }
}

/** The backing service (S3, Redis, disk) cannot serve the request right now. */
export class StorageUnavailableError extends PullthroughError {
  readonly code = 'ERR_STORAGE_UNAVAILABLE';
  constructor(readonly backend: string, message: string, options?: { cause?: unknown }) {
    super(`${backend} unavailable: ${message}`, options);
    this.name = 'StorageUnavailableError';
  }
}
