/** What admin route modules get (src/admin/app.ts builds the app from them). */
import type Router from '@koa/router';
import type { Config } from '../config/index.js';
import type { PullThroughCache } from '../cache/pull-through.js';
import type { DownloadTracker } from '../cache/downloads.js';
import type { BlobStore } from '../storage/blob-store.js';
import type { MetadataStore } from '../storage/metadata-store.js';
import type { Metrics } from '../observability/metrics.js';
import type { Logger } from '../observability/logger.js';
import type { OfflineSwitch } from '../upstream/offline-switch.js';
import type { RegistryIndex } from '../http/target.js';
import type { AccessRules } from '../auth/rules.js';
import type { ClientAuth } from '../auth/client-auth.js';

/** The parts of the config the admin API reads: its access, usage against maxSize, the registries. */
export type AdminSettings = Pick<Config, 'listen' | 'admin' | 'auth' | 'cache' | 'registries' | 'instanceName'>;

/** What admin routes may use. */
export interface AdminDeps {
  readonly config: AdminSettings;
  readonly cache: PullThroughCache;
  readonly blobs: BlobStore;
  readonly meta: MetadataStore;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly downloads: DownloadTracker;
  readonly offline: OfflineSwitch;
  /** Registry names and aliases, for references as users write them. */
  readonly index: RegistryIndex;
  /** The access rules: a prefetch is refused for a repository they deny the caller. */
  readonly rules: AccessRules;
  /** Client authentication, when on: admin users of auth.adminGroup sign in with it. */
  readonly clientAuth?: ClientAuth;
}

/** A module of admin routes: registers its endpoints on the router. */
export type AdminRoutes = (router: Router, deps: AdminDeps) => void;
