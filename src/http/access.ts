import type { Config } from '../config/index.js';
import { parseBasic, type ClientAuth } from '../auth/client-auth.js';
import { AccessDeniedError, AuthenticationRequiredError } from '../auth/errors.js';
import { ANONYMOUS } from '../auth/identity.js';
import { describeRule, type AccessRules, type Action } from '../auth/rules.js';
import { SERVICE } from '../auth/tokens.js';
import type { RequestView } from './request-view.js';

/** The client's repository name in a /v2 API path (as the client spelled it, for challenge scopes). */
const API_NAME = /^\/v2\/(.+?)\/(manifests|blobs|tags|referrers)\/(uploads)?/;
const KIND_OF = { manifests: 'manifest', blobs: 'blob', tags: 'tags', referrers: 'referrers' } as const;
/** What may appear in a challenge parameter without quoting trouble. */
const SAFE_NAME = /^[a-z0-9._/:-]{1,255}$/;
const SAFE_HOST = /^[A-Za-z0-9.-]{1,253}(:\d{1,5})?$|^\[[0-9A-Fa-f:.]{2,45}\](:\d{1,5})?$/;

/** What {@link AccessControl} needs. */
export interface AccessDeps {
  /** `auth.realm`, for challenges. */
  readonly config: Pick<Config, 'auth'>;
  readonly rules: AccessRules;
  /** Present when client authentication is on (auth.enabled). */
  readonly clientAuth?: ClientAuth;
}

/**
 * Who the client is and what the rules let it do. With authentication off every
 * client is anonymous and only the rules apply; with it on, /v2 requests need a pullthrough token
 * (or Basic credentials), and a client without one is sent to `<scheme>://<Host>/token`, which
 * reaches pullthrough through every door (the TLS door's Host is the hijacked registry name).
 */
export class AccessControl {
  constructor(private readonly d: AccessDeps) {}

  /** True when client authentication is on. */
  get authEnabled(): boolean {
    return this.d.clientAuth !== undefined;
  }

  /**
   * The `WWW-Authenticate` challenge for this request: realm on the Host the client used (or
   * `auth.realm`), service `pullthrough`, and the repository scope when there is one.
   */
  challenge(ctx: RequestView, scopeName?: string, action: Action = 'pull'): string {
    let realm = this.d.config.auth.realm;
    if (!realm) {
      const host = ctx.get('host');
      const safe = SAFE_HOST.test(host) ? host : `${ctx.socket.localAddress?.includes(':') ? `[${ctx.socket.localAddress}]` : ctx.socket.localAddress}:${ctx.socket.localPort}`;
      realm = `${ctx.protocol}://${safe}/token`;
    }
    let value = `Bearer realm="${realm}",service="${SERVICE}"`;
    if (scopeName !== undefined && SAFE_NAME.test(scopeName)) value += `,scope="repository:${scopeName}:${action === 'push' ? 'pull,push' : 'pull'}"`;
    return value;
  }

  /**
   * Establishes the client's identity for a /v2 request (anonymous while authentication is off).
   * @throws AuthenticationRequiredError when authentication is on and the request carries no
   *   valid token or credentials.
   */
  async authenticate(ctx: RequestView): Promise<void> {
    const state = ctx.state;
    state.identity = ANONYMOUS;
    if (!this.d.clientAuth) return;
    const api = API_NAME.exec(ctx.path);
    const name = api?.[1];
    const action: Action = ctx.method === 'GET' || ctx.method === 'HEAD' ? 'pull' : 'push';
    // For the request log of refused requests (the routes set it for the others).
    state.kind = api ? (action === 'push' || api[3] ? 'push' : KIND_OF[api[2] as keyof typeof KIND_OF]) : /^\/v2\/?$/.test(ctx.path) ? 'base' : 'other';
    const header = ctx.get('authorization');
    if (!header) throw new AuthenticationRequiredError('authentication required', 'no credentials', this.challenge(ctx, name, action));
    const r = await this.d.clientAuth.identify(header);
    if (!r.ok) {
      // For the audit line: the user name a failed Basic login claimed (never the password).
      state.claimedUser = parseBasic(header)?.username.slice(0, 128);
      throw new AuthenticationRequiredError(r.message, r.reason, this.challenge(ctx, name, action));
    }
    state.identity = r.identity;
    state.user = r.identity.user;
  }

  /**
   * Applies the rules to a request for `registry`/`repo` (`clientName` is the name as the client
   * spelled it, for the challenge scope).
   * @throws AccessDeniedError (403) naming the rule; AuthenticationRequiredError (401) when the
   *   client is anonymous and the deciding rule lets some signed-in users do it.
   */
  authorize(ctx: RequestView, registry: string, repo: string, action: Action, clientName: string): void {
    const state = ctx.state;
    const identity = state.identity ?? ANONYMOUS;
    const d = this.d.rules.decide(registry, repo, action, identity);
    state.rule = describeRule(d.rule);
    if (d.allowed) return;
    const what = `${action} of ${registry}/${repo}`;
    if (d.signInMayHelp && this.d.clientAuth) {
      throw new AuthenticationRequiredError(`authentication required: ${what} is allowed only to signed-in clients by ${describeRule(d.rule)}`, 'rule', this.challenge(ctx, clientName, action), d.rule, action);
    }
    const who = identity.user === undefined ? 'anonymous clients' : `user ${identity.user}`;
    const why = d.rule ? `${describeRule(d.rule)} does not allow it to ${who}` : `${describeRule(null)}`;
    throw new AccessDeniedError(`${what} denied: ${why}`, action, registry, repo, d.rule);
  }
}
