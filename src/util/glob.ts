import { PullthroughError } from './errors.js';

/**
 * Repository globs, as rules and per-namespace credentials use them: `*` matches within one path
 * segment (no `/`), `**` matches across segments (any characters, `/` included), `?` matches one
 * character other than `/`. Everything else is literal. So `mjpitz/*` matches `mjpitz/app` but not
 * `mjpitz/a/b`, and `team/**` matches both `team/app` and `team/a/b`.
 */

const SPECIAL = /[.+^${}()|[\]\\]/g;

/** Why a glob was refused; `message` says what is wrong with it. */
export class GlobSyntaxError extends PullthroughError {
  readonly code = 'ERR_GLOB_SYNTAX';
  constructor(message: string) {
    super(message);
    this.name = 'GlobSyntaxError';
  }
}

/**
 * Compiles a glob to an anchored regular expression.
 * @throws GlobSyntaxError for an empty glob, one longer than 512 characters, or a `***` run.
 */
export function compileGlob(glob: string): RegExp {
  if (glob.length === 0) throw new GlobSyntaxError('empty pattern');
  if (glob.length > 512) throw new GlobSyntaxError('longer than 512 characters');
  if (glob.includes('***')) throw new GlobSyntaxError('"***" is not a pattern; use "**" to match across "/"');
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        re += '.*';
        i++;
      } else {
        re += '[^/]*';
      }
    } else if (c === '?') {
      re += '[^/]';
    } else {
      re += c.replace(SPECIAL, '\\$&');
    }
  }
  return new RegExp(`^${re}$`);
}

/** True when `s` contains a glob character. */
export function isGlob(s: string): boolean {
  return /[*?]/.test(s);
}
