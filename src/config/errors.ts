import { PullthroughError } from '../util/errors.js';

/** A configuration problem; `message` names each offending key and why, one per line. */
export class ConfigError extends PullthroughError {
  readonly code = 'ERR_CONFIG';
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}
