/**
 * The admin listener's application (listen.admin): JSON endpoints under /api/v1 for the CLI's
 * subcommands and scripts, and the status page. Route modules register on one router; errors are
 * answered here, in one place, as `{ "error": { "code", "message" } }` with the status they carry.
 *
 * Deliberately separate from the registry doors' app (src/http/app.ts): nothing here is reachable
 * on a registry door, and no /v2 route is reachable here.
 */
import Koa, { type Context, type Next } from 'koa';
import Router from '@koa/router';
import type { AdminDeps, AdminRoutes } from './deps.js';
import { AdminRequestError } from './errors.js';
import { adminAccess } from './access.js';
import { StorageUnavailableError } from '../storage/errors.js';

export type { AdminDeps, AdminRoutes } from './deps.js';
export { AdminRequestError } from './errors.js';

/** The built-in endpoints; the rest come from route modules. */
const coreRoutes: AdminRoutes = (router, deps) => {
  /** Blob downloads in progress on this process. */
  router.get('/api/v1/downloads', (ctx) => {
    ctx.body = { downloads: deps.downloads.list() };
  });
};

/** Builds the admin application from its route modules (core routes included). */
export function createAdminApp(deps: AdminDeps, modules: readonly AdminRoutes[] = []): Koa {
  const app = new Koa();
  app.proxy = false;
  const router = new Router();
  for (const m of [coreRoutes, ...modules]) m(router, deps);
  app.use(async (ctx: Context, next: Next) => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) {
        ctx.status = 404;
        ctx.body = { error: { code: 'NOT_FOUND', message: `no admin endpoint ${ctx.method} ${ctx.path}` } };
      }
    } catch (err) {
      if (err instanceof AdminRequestError) {
        ctx.status = err.status;
        ctx.body = { error: { code: err.apiCode, message: err.message, ...(err.detail !== undefined ? { detail: err.detail } : {}) } };
        return;
      }
      if (err instanceof StorageUnavailableError) {
        ctx.status = 503;
        ctx.body = { error: { code: 'STORE_UNAVAILABLE', message: `the ${err.backend} store cannot be reached: ${err.message}` } };
        return;
      }
      deps.log.error('admin request failed', { method: ctx.method, path: ctx.path, error: (err as Error).message });
      ctx.status = 500;
      ctx.body = { error: { code: 'INTERNAL', message: 'internal error; see the log' } };
    }
  });
  // Credentials off loopback (src/admin/access.ts), before any route, the status page's included.
  app.use(adminAccess(deps.config, deps.clientAuth));
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}
