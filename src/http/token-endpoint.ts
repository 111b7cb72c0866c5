import type { Context } from 'koa';
import Router from '@koa/router';
import { parseBasic, type ClientAuth, type TokenRequest } from '../auth/client-auth.js';
import { TokenRequestError } from '../auth/errors.js';
import type { RequestState } from './state.js';

/** An OAuth2 form is a few hundred bytes; anything much larger is not one. */
const MAX_FORM_BYTES = 64 * 1024;

async function readForm(ctx: Context): Promise<URLSearchParams> {
  const type = (ctx.get('content-type') || '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') throw new TokenRequestError('bad request', 'POST /token takes an application/x-www-form-urlencoded form');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of ctx.req) {
    size += (c as Buffer).length;
    if (size > MAX_FORM_BYTES) throw new TokenRequestError('bad request', `form larger than ${MAX_FORM_BYTES} bytes`);
    chunks.push(c as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function answer(ctx: Context, body: Record<string, unknown>): void {
  // Tokens must not be kept by any cache between client and pullthrough.
  ctx.set('cache-control', 'no-store');
  ctx.set('pragma', 'no-cache');
  ctx.type = 'application/json';
  const text = JSON.stringify(body);
  (ctx.state as RequestState).bytes = Buffer.byteLength(text);
  ctx.body = text;
}

/**
 * `/token`, pullthrough's own token service (only while authentication is on):
 * - `GET /token?service=pullthrough&scope=…[&offline_token=true]`, Basic credentials optional
 *   (none: an anonymous token), as docker, podman, skopeo and `docker login` ask;
 * - `POST /token` with an OAuth2 form: `grant_type=password` (containerd `--user`) and
 *   `grant_type=refresh_token` (dockerd after `docker login`).
 */
export function tokenRouter(auth: ClientAuth): Router {
  const router = new Router();
  const kind = async (ctx: Context, next: () => Promise<unknown>): Promise<void> => {
    (ctx.state as RequestState).kind = 'token';
    (ctx.state as RequestState).cache = 'pass';
    await next();
  };

  router.get('/token', kind, async (ctx) => {
    const header = ctx.get('authorization');
    const basic = header ? parseBasic(header) : undefined;
    if (header && !basic) throw new TokenRequestError('bad request', 'GET /token takes Basic credentials or none');
    (ctx.state as RequestState).claimedUser = basic?.username.slice(0, 128);
    const grant = await auth.issue({ grant: 'get', basic, offline: ctx.query.offline_token === 'true' });
    (ctx.state as RequestState).user = grant.user;
    answer(ctx, grant.body);
  });

  router.post('/token', kind, async (ctx) => {
    const form = await readForm(ctx);
    const grantType = form.get('grant_type');
    const scope = form.get('scope') ?? '';
    let req: TokenRequest;
    if (grantType === 'password') {
      const username = form.get('username') ?? '';
      (ctx.state as RequestState).claimedUser = username.slice(0, 128);
      req = { grant: 'password', username, password: form.get('password') ?? '', offline: form.get('access_type') === 'offline', scope };
    } else if (grantType === 'refresh_token') {
      req = { grant: 'refresh_token', refreshToken: form.get('refresh_token') ?? '', scope };
    } else {
      throw new TokenRequestError('unsupported grant', `unsupported grant_type ${JSON.stringify((grantType ?? '').slice(0, 64))} (use password or refresh_token)`);
    }
    const grant = await auth.issue(req);
    (ctx.state as RequestState).user = grant.user;
    answer(ctx, grant.body);
  });

  router.all('/token', kind, () => {
    throw new TokenRequestError('bad request', 'use GET or POST on /token');
  });
  return router;
}
