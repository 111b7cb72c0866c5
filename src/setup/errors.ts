/** This instance lacks what a client's setup needs (a listener, an address); the message says which. */
export class SetupError extends Error {
  readonly code = 'ERR_SETUP';
  constructor(message: string) {
    super(message);
    this.name = 'SetupError';
  }
}
