import { PullthroughError } from '../util/errors.js';

/** This instance lacks what a client's setup needs (a listener, an address); the message says which. */
export class SetupError extends PullthroughError {
  readonly code = 'ERR_SETUP';
  constructor(message: string) {
    super(message);
    this.name = 'SetupError';
  }
}
