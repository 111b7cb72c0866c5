/**
 * Who may use the admin API. The rule is about where listen.admin is bound, not where a request
 * comes from: bound to loopback (127.0.0.0/8, ::1, localhost) only this machine can connect and no
 * credentials are asked (unless admin.requireCredentials); bound anywhere else, every request
 * needs one of
 * - `Authorization: Bearer <admin.token>` (config or PULLTHROUGH_ADMIN_TOKEN), or
 * - with client authentication on (auth.enabled) and auth.adminGroup set: a user of that group,
 *   by Basic credentials or one of pullthrough's own bearer tokens (from its /token endpoint).
 * The config loader refuses an off-loopback admin listener with neither (naming admin.token).
 * A rule by the peer's address was rejected: behind a local reverse proxy every request would
 * come from 127.0.0.1 and pass.
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import type { Context, Next } from 'koa';
import type { Config } from '../config/index.js';
import { isLoopbackHost } from '../config/schema.js';
import type { ClientAuth } from '../auth/client-auth.js';
import { ANONYMOUS, type Identity } from '../auth/identity.js';
import { AdminRequestError } from './errors.js';

/** What the access check leaves in ctx.state for routes: who asked. */
export interface AdminState {
  identity: Identity;
  /** `token`, `basic`, `bearer` or `loopback`. */
  via: string;
}

function sameSecret(a: string, b: string): boolean {
  // Hashed first so the comparison takes the same time whatever the lengths.
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

/** Whether this configuration asks the admin API's callers for credentials. */
export function adminNeedsCredentials(config: Pick<Config, 'listen' | 'admin'>): boolean {
  const l = config.listen.admin;
  return l !== null && (!isLoopbackHost(l.host) || config.admin.requireCredentials);
}

/** The koa middleware; throws AdminRequestError 401 UNAUTHORIZED / 403 FORBIDDEN. */
export function adminAccess(config: Pick<Config, 'listen' | 'admin' | 'auth'>, clientAuth: ClientAuth | undefined): (ctx: Context, next: Next) => Promise<void> {
  const needed = adminNeedsCredentials(config);
  const token = config.admin.token;
  const group = config.auth.enabled ? config.auth.adminGroup : undefined;
  const challenge = group && clientAuth ? 'Basic realm="pullthrough admin", charset="UTF-8"' : 'Bearer realm="pullthrough admin"';
  return async (ctx, next) => {
    const state = ctx.state as AdminState;
    state.identity = ANONYMOUS;
    state.via = 'loopback';
    if (!needed) return next();
    const header = ctx.get('authorization');
    const refuse = (message: string): never => {
      ctx.set('www-authenticate', challenge);
      throw new AdminRequestError(401, 'UNAUTHORIZED', message);
    };
    if (!header) refuse('credentials required: Authorization: Bearer <admin.token>' + (group ? ` or a user of group ${group}` : ''));
    const bearer = /^bearer\s+(\S+)\s*$/i.exec(header);
    if (token !== undefined && bearer && sameSecret(bearer[1]!, token)) {
      state.via = 'token';
      return next();
    }
    if (!group || !clientAuth) refuse('invalid admin token');
    const r = await clientAuth!.identify(header);
    if (!r.ok) refuse(r.message);
    if (!r.ok) return;
    if (!r.identity.groups.includes(group!)) {
      throw new AdminRequestError(403, 'FORBIDDEN', `user ${r.identity.user ?? 'anonymous'} is not in the admin group ${group}`);
    }
    state.identity = r.identity;
    state.via = r.via;
    return next();
  };
}
