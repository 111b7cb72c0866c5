import type { Config } from '../config/index.js';
import { TokenRequestError } from './errors.js';
import type { HtpasswdUsers, UserRecord } from './htpasswd.js';
import { ANONYMOUS, groupsOf, type Identity } from './identity.js';
import { InvalidTokenError, type TokenSigner } from './tokens.js';

/** What an Authorization header proved: an identity, or why it proved nothing. */
export type IdentifyResult =
  | { readonly ok: true; readonly identity: Identity; readonly via: 'basic' | 'bearer' }
  | { readonly ok: false; readonly reason: 'bad credentials' | 'invalid token'; readonly message: string };

/** A request to the token endpoint, as parsed from GET (Docker token flow) or POST (OAuth2). */
export type TokenRequest =
  | { readonly grant: 'get'; readonly basic?: { username: string; password: string }; readonly offline: boolean }
  | { readonly grant: 'password'; readonly username: string; readonly password: string; readonly offline: boolean; readonly scope: string }
  | { readonly grant: 'refresh_token'; readonly refreshToken: string; readonly scope: string };

/** The token endpoint's answer and who it was issued to (undefined: anonymous). */
export interface TokenGrant {
  readonly body: Record<string, unknown>;
  readonly user: string | undefined;
}

/** Splits `Basic base64(user:pass)`; undefined when it is not one. */
export function parseBasic(header: string): { username: string; password: string } | undefined {
  const m = /^basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m) return undefined;
  const raw = Buffer.from(m[1]!, 'base64').toString('utf8');
  const i = raw.indexOf(':');
  return i < 0 ? undefined : { username: raw.slice(0, i), password: raw.slice(i + 1) };
}

/**
 * Client authentication: htpasswd users (Basic, or the OAuth2 password grant), pullthrough's own
 * access tokens (Bearer) and refresh tokens (what `docker login` keeps). Tokens carry only who
 * the client is; the rules decide, per request, what that identity may do.
 */
/** What {@link ClientAuth} reads: `auth.groups`. */
export type ClientAuthSettings = Pick<Config, 'auth'>;

export class ClientAuth {
  constructor(
    private readonly config: ClientAuthSettings,
    private readonly users: HtpasswdUsers,
    private readonly signer: TokenSigner,
  ) {}

  private identityOf(user: UserRecord): Identity {
    return { user: user.name, groups: groupsOf(this.config.auth.groups, user.name) };
  }

  /** Who `authorization` (a Basic or Bearer header value) says the client is. */
  async identify(authorization: string): Promise<IdentifyResult> {
    const basic = parseBasic(authorization);
    if (basic) {
      const user = await this.users.verify(basic.username, basic.password);
      return user ? { ok: true, identity: this.identityOf(user), via: 'basic' } : { ok: false, reason: 'bad credentials', message: 'incorrect username or password' };
    }
    const bearer = /^bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!bearer) return { ok: false, reason: 'bad credentials', message: 'unsupported Authorization scheme (use Bearer or Basic)' };
    try {
      const claims = this.signer.verify(bearer[1]!, 'access');
      if (claims.sub === '') return { ok: true, identity: ANONYMOUS, via: 'bearer' };
      const user = await this.users.lookup(claims.sub);
      if (!user || user.fingerprint !== claims.pwh) return { ok: false, reason: 'invalid token', message: 'token of a user that was removed or changed password' };
      return { ok: true, identity: this.identityOf(user), via: 'bearer' };
    } catch (err) {
      if (err instanceof InvalidTokenError) return { ok: false, reason: 'invalid token', message: err.message };
      throw err;
    }
  }

  /**
   * Answers a token request: an access token (anonymous for a GET without credentials), plus a
   * refresh token when the client asks for one (`offline_token=true`, `access_type=offline`).
   * @throws TokenRequestError for bad credentials, an invalid refresh token, or a malformed request.
   */
  async issue(req: TokenRequest): Promise<TokenGrant> {
    const { tokenTtl, refreshTokenTtl } = this.config.auth;
    let user: UserRecord | undefined;
    if (req.grant === 'refresh_token') {
      let sub: string;
      let pwh: string | undefined;
      try {
        ({ sub, pwh } = this.signer.verify(req.refreshToken, 'refresh'));
      } catch (err) {
        if (err instanceof InvalidTokenError) throw new TokenRequestError('invalid grant', `refresh token refused: ${err.message}`);
        throw err;
      }
      user = await this.users.lookup(sub);
      if (!user || user.fingerprint !== pwh) throw new TokenRequestError('invalid grant', 'refresh token of a user that was removed or changed password; log in again');
    } else {
      const creds = req.grant === 'password' ? { username: req.username, password: req.password } : req.basic;
      if (creds) {
        user = await this.users.verify(creds.username, creds.password);
        if (!user) throw new TokenRequestError('bad credentials', 'incorrect username or password');
      }
    }
    const access = this.signer.sign(user?.name ?? '', 'access', tokenTtl, user?.fingerprint);
    const body: Record<string, unknown> = { token: access.token, access_token: access.token, expires_in: access.expiresIn, issued_at: access.issuedAt };
    if (req.grant !== 'get') body.scope = req.scope;
    if (user && req.grant !== 'refresh_token' && req.offline) body.refresh_token = this.signer.sign(user.name, 'refresh', refreshTokenTtl, user.fingerprint).token;
    return { body, user: user?.name };
  }
}
