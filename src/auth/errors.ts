/** Typed failures of client authentication and access rules; `http/error-mapping.ts` maps them. */
import { PullthroughError } from '../util/errors.js';
import type { Action, RuleRef } from './rules.js';

/** Why a client was asked to authenticate (again). */
export type AuthFailure = 'no credentials' | 'bad credentials' | 'invalid token' | 'rule';

/**
 * The client must authenticate (or authenticate as someone else): answered 401 with a Bearer
 * challenge pointing at pullthrough's own token endpoint.
 */
export class AuthenticationRequiredError extends PullthroughError {
  readonly code = 'ERR_AUTH_REQUIRED';
  constructor(
    message: string,
    readonly reason: AuthFailure,
    /** The `WWW-Authenticate` value to send. */
    readonly challenge: string,
    /** The rule that refused an anonymous client (reason `rule`). */
    readonly rule?: RuleRef | null,
    readonly action?: Action,
  ) {
    super(message);
    this.name = 'AuthenticationRequiredError';
  }
}

/** The rules do not let this client do this (answered 403 DENIED, naming the rule). */
export class AccessDeniedError extends PullthroughError {
  readonly code = 'ERR_ACCESS_DENIED';
  constructor(
    message: string,
    readonly action: Action,
    readonly registry: string,
    readonly repo: string,
    /** The deciding rule; null when no rule matched. */
    readonly rule: RuleRef | null,
  ) {
    super(message);
    this.name = 'AccessDeniedError';
  }
}

/** The client exceeded its request rate (answered 429 with Retry-After). */
export class RateLimitedError extends PullthroughError {
  readonly code = 'ERR_RATE_LIMITED';
  constructor(readonly retryAfterSeconds: number) {
    super(`too many requests from this client; retry in ${retryAfterSeconds}s`);
    this.name = 'RateLimitedError';
  }
}

/** A token request pullthrough refuses: bad credentials or refresh token (401), or a malformed request (400). */
export class TokenRequestError extends PullthroughError {
  readonly code = 'ERR_TOKEN_REQUEST';
  constructor(
    readonly reason: 'bad credentials' | 'invalid grant' | 'unsupported grant' | 'bad request',
    message: string,
  ) {
    super(message);
    this.name = 'TokenRequestError';
  }
}
