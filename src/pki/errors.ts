import { PullthroughError } from '../util/errors.js';

/** A certificate authority problem: unreadable or mismatched CA files, an unsupported key type. */
export class PkiError extends PullthroughError {
  readonly code = 'ERR_PKI';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PkiError';
  }
}
