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
import type { Config } from '../config/index.js';
import type { PullThroughCache } from '../cache/pull-through.js';
import type { DownloadTracker } from '../cache/downloads.js';
import type { BlobStore } from '../storage/blob-store.js';
import type { MetadataStore } from '../storage/metadata-store.js';
import type { Metrics } from '../observability/metrics.js';
import type { Logger } from '../observability/logger.js';
import type { OfflineSwitch } from '../upstream/offline-switch.js';
import { PullthroughError } from '../util/errors.js';

/** What admin routes may use. */
export interface AdminDeps {
  readonly config: Config;
  readonly cache: PullThroughCache;
  readonly blobs: BlobStore;
  readonly meta: MetadataStore;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly downloads: DownloadTracker;
  readonly offline: OfflineSwitch;
}

/** A module of admin routes: registers its endpoints on the router. */
export type AdminRoutes = (router: Router, deps: AdminDeps) => void;

/**
 * An admin error a route throws for the caller's mistake or a refusal: answered with `status` and
 * `code` (e.g. 400 INVALID_REFERENCE, 404 NOT_CACHED, 409 IN_PROGRESS).
 */
export class AdminRequestError extends PullthroughError {
  readonly code = 'ERR_ADMIN_REQUEST';

  constructor(
    readonly status: number,
    /** The answer's `error.code`: stable, documented, what the CLI and scripts branch on. */
    readonly apiCode: string,
    message: string,
  ) {
    super(message);
  }
}

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
        ctx.body = { error: { code: err.apiCode, message: err.message } };
        return;
      }
      deps.log.error('admin request failed', { method: ctx.method, path: ctx.path, error: (err as Error).message });
      ctx.status = 500;
      ctx.body = { error: { code: 'INTERNAL', message: 'internal error; see the log' } };
    }
  });
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}
