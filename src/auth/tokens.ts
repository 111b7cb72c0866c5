import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { PullthroughError } from '../util/errors.js';

/** What kind of token: an access token for /v2 requests, or a refresh token (`docker login`). */
export type TokenType = 'access' | 'refresh';

/** The claims pullthrough puts in its tokens. */
export interface TokenClaims {
  readonly iss: string;
  readonly aud: string;
  /** The user name; empty for an anonymous token. */
  readonly sub: string;
  readonly typ: TokenType;
  /** The user's password-hash fingerprint when issued (a changed password invalidates the token). */
  readonly pwh?: string;
  readonly iat: number;
  readonly nbf: number;
  readonly exp: number;
  readonly jti: string;
}

/** A token that is not pullthrough's, was tampered with, or expired; `message` says which. */
export class InvalidTokenError extends PullthroughError {
  readonly code = 'ERR_INVALID_TOKEN';
  constructor(message: string) {
    super(message);
    this.name = 'InvalidTokenError';
  }
}

/** The service name in challenges and the `aud` of every token. */
export const SERVICE = 'pullthrough';
const HEADER = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');
/** Clock difference tolerated between replicas for `nbf`. */
const SKEW_S = 30;
const MAX_TOKEN_CHARS = 4096;

/**
 * HS256 JWTs signed with the shared secret. Tokens are identity proofs: what a client may do is
 * decided by the rules at each request, so rule changes apply to tokens already issued.
 */
export class TokenSigner {
  constructor(private readonly secret: Buffer) {
    if (secret.length < 32) throw new RangeError('token secret shorter than 32 bytes');
  }

  private mac(input: string): Buffer {
    return createHmac('sha256', this.secret).update(input).digest();
  }

  /** A signed token for `sub` valid for `ttlMs`. */
  sign(sub: string, typ: TokenType, ttlMs: number, pwh?: string): { token: string; expiresIn: number; issuedAt: string } {
    const now = Math.floor(Date.now() / 1000);
    const expiresIn = Math.max(1, Math.floor(ttlMs / 1000));
    const claims: TokenClaims = { iss: SERVICE, aud: SERVICE, sub, typ, ...(pwh ? { pwh } : {}), iat: now, nbf: now, exp: now + expiresIn, jti: randomBytes(9).toString('base64url') };
    const input = `${HEADER}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
    return { token: `${input}.${this.mac(input).toString('base64url')}`, expiresIn, issuedAt: new Date(now * 1000).toISOString() };
  }

  /**
   * The claims of a valid token of type `typ`.
   * @throws InvalidTokenError when it is malformed, not signed with this secret, of another type,
   *   not yet valid or expired.
   */
  verify(token: string, typ: TokenType): TokenClaims {
    if (token.length > MAX_TOKEN_CHARS) throw new InvalidTokenError('token too long');
    const parts = token.split('.');
    if (parts.length !== 3 || parts[0] !== HEADER) throw new InvalidTokenError('not a pullthrough token');
    const given = Buffer.from(parts[2]!, 'base64url');
    const want = this.mac(`${parts[0]}.${parts[1]}`);
    if (given.length !== want.length || !timingSafeEqual(given, want)) throw new InvalidTokenError('bad token signature');
    let claims: TokenClaims;
    try {
      claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as TokenClaims;
    } catch {
      throw new InvalidTokenError('unreadable token claims');
    }
    const now = Math.floor(Date.now() / 1000);
    if (claims.iss !== SERVICE || claims.aud !== SERVICE || typeof claims.sub !== 'string') throw new InvalidTokenError('token not issued for pullthrough');
    if (claims.typ !== typ) throw new InvalidTokenError(`not an ${typ} token`);
    if (typeof claims.exp !== 'number' || claims.exp <= now) throw new InvalidTokenError('token expired');
    if (typeof claims.nbf !== 'number' || claims.nbf > now + SKEW_S) throw new InvalidTokenError('token not yet valid');
    return claims;
  }
}
