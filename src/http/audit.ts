import { AccessDeniedError, AuthenticationRequiredError, RateLimitedError, TokenRequestError } from '../auth/errors.js';
import { describeRule } from '../auth/rules.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { RequestState } from './state.js';
import type { DoorKind } from './v2-routes.js';
import type { RequestView } from './request-view.js';

/**
 * One `denied` line for every request refused by authentication, the rules or the rate limit:
 * who (user, or the name a failed login claimed, and the client address), what (method, path,
 * registry, repository, action), which rule, which door, and why. The challenge every client
 * meets before it has a token is logged at info; everything else at warn. Only chosen fields are
 * written: never a header, password or token.
 * @returns whether `err` was such a refusal.
 */
export function auditDenied(log: Logger, metrics: Metrics, door: DoorKind, ctx: RequestView, err: unknown): boolean {
  let reason: string;
  let rule: string | undefined;
  let action: string | undefined;
  if (err instanceof AuthenticationRequiredError) {
    reason = err.reason;
    if (err.rule !== undefined) rule = describeRule(err.rule);
    action = err.action;
  } else if (err instanceof AccessDeniedError) {
    reason = err.rule ? 'rule' : 'no rule';
    rule = describeRule(err.rule);
    action = err.action;
  } else if (err instanceof RateLimitedError) {
    reason = 'rate limit';
  } else if (err instanceof TokenRequestError && (err.reason === 'bad credentials' || err.reason === 'invalid grant')) {
    reason = err.reason;
  } else {
    return false;
  }
  const state: RequestState = ctx.state;
  metrics.denied.inc({ door, reason });
  const fields = {
    door,
    client: ctx.ip,
    user: state.user ?? state.identity?.user,
    claimedUser: state.claimedUser,
    method: ctx.method,
    path: ctx.path.slice(0, 512),
    registry: state.registry,
    repo: state.repo,
    action,
    rule,
    reason,
    message: (err as Error).message,
  };
  if (reason === 'no credentials') log.info('denied', fields);
  else log.warn('denied', fields);
  return true;
}
