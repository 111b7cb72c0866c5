import Koa, { type Context, type Next } from 'koa';
import Router from '@koa/router';
import type { Config } from '../config/index.js';
import type { NamesSettings } from '../config/served-names.js';
import { OciError } from '../oci/errors.js';
import type { PullThroughCache } from '../cache/pull-through.js';
import type { Metrics } from '../observability/metrics.js';
import type { Logger } from '../observability/logger.js';
import { v2Router, type DoorKind, type PushRelay } from './v2-routes.js';
import type { RequestState } from './state.js';
import { stateOf } from './request-view.js';
import { failureOf, sendFailure } from './failure.js';
import { createFront } from './front.js';
import type { RequestHandler } from '../doors/request-handler.js';
import { DoorHosts, type RegistryIndex } from './target.js';
import type { DoorAuth } from './door-auth.js';
import type { AccessControl } from './access.js';
import { tokenRouter } from './token-endpoint.js';
import type { ClientAuth } from '../auth/client-auth.js';
import type { TokenBuckets } from '../util/token-bucket.js';
import type { UpstreamFailureLog } from '../observability/upstream-failure-log.js';
import type { StatusHistory } from '../observability/history.js';

/** What the small endpoints need to know; each part is optional so doors can be added one by one. */
export interface AppDeps {
  /** `instanceName` (loop detection) and the served names (which Host a door answers for). */
  readonly config: Pick<Config, 'instanceName'> & NamesSettings;
  readonly cache: PullThroughCache;
  readonly index: RegistryIndex;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly door: DoorKind;
  /** The CA certificate (PEM) clients must trust for the TLS and CONNECT doors. */
  readonly caPem?: () => string;
  /** A ready-to-run setup script for a client (`docker`, `containerd`, …), or null if unknown. */
  readonly setupScript?: (client: string, requestHost: string | undefined) => string | null;
  /** Readiness: resolves when storage answers; rejects with the reason otherwise. */
  readonly ready: () => Promise<void>;
  /** False once the process is draining for shutdown. */
  readonly accepting: () => boolean;
  readonly push?: PushRelay;
  /** The upstream's challenge and token relay on the TLS and CONNECT doors (client authentication off). */
  readonly doorAuth?: DoorAuth;
  /** Who the client is and what the rules let it do; without it every request is allowed. */
  readonly access?: AccessControl;
  /** Client authentication (serves /token); present only while auth.enabled. */
  readonly clientAuth?: ClientAuth;
  /** Per-client-address request rate limit (rateLimit.requestsPerSecond). */
  readonly rateLimit?: TokenBuckets;
  /**
   * The /metrics text, when it is not this process's registry alone: a worker asks the primary
   * for every worker's metrics combined. Rejects (503) when they cannot be had.
   */
  readonly metricsText?: () => Promise<string>;
  /** Says once per registry and cause in the log why an upstream fails (clients hide error bodies). */
  readonly upstreamFailures?: UpstreamFailureLog;
  /** The status page's per-minute history and top repositories, counted where the metrics are. */
  readonly history?: StatusHistory;
}

/**
 * Whether a koa route below may answer `path`: the ops endpoints, /token and /v2. @koa/router
 * matches its string paths case-insensitively, so this does too; the front answers anything else
 * as an unknown endpoint without koa.
 */
function koaServes(path: string): boolean {
  const p = path.toLowerCase();
  return KOA_PREFIXES.some((prefix) => p.startsWith(prefix));
}
const KOA_PREFIXES = ['/v2', '/healthz', '/readyz', '/metrics', '/ca.crt', '/setup/', '/token'];

/** A door's request handler: what `createApp` gives. */
export interface RegistryApp {
  callback(): RequestHandler;
}

/**
 * What every door feeds: the front (front.ts: request log, metrics, admission checks, the pull
 * routes) before a koa application with /healthz, /readyz, /metrics, /ca.crt, /setup/<client>,
 * /token and the rest of /v2. It is a request handler, not a server, so plain HTTP, TLS and
 * CONNECT-tunnelled sockets can all be handed to it.
 */
export function createApp(deps: AppDeps): RegistryApp {
  const app = new Koa();
  // Errors are answered and logged by the middleware below; koa's default handler would print stacks.
  app.silent = true;
  const { metrics } = deps;
  // With client authentication on, pullthrough's own token flow replaces the upstream's on the doors.
  const doorAuth = deps.clientAuth ? undefined : deps.doorAuth;

  app.use(async (ctx: Context, next: Next) => {
    // The front made the state and writes the request's log line from it when the response closes.
    ctx.state = stateOf(ctx.req);
    try {
      await next();
    } catch (err) {
      // Answered on the response itself, as the front answers its own failures.
      ctx.respond = false;
      sendFailure(ctx.res, ctx.method, failureOf(deps, ctx, err));
    }
  });

  const ops = new Router();
  const opsKind = async (ctx: Context, next: Next): Promise<void> => {
    (ctx.state as RequestState).kind = 'ops';
    await next();
  };
  ops.get('/healthz', opsKind, (ctx) => {
    ctx.body = 'ok\n';
  });
  ops.get('/readyz', opsKind, async (ctx) => {
    if (!deps.accepting()) {
      ctx.status = 503;
      ctx.body = 'draining\n';
      return;
    }
    try {
      await deps.ready();
      ctx.body = 'ready\n';
    } catch (err) {
      ctx.status = 503;
      ctx.body = `not ready: ${(err as Error).message}\n`;
    }
  });
  ops.get('/metrics', opsKind, async (ctx) => {
    if (deps.metricsText) {
      try {
        const text = await deps.metricsText();
        ctx.type = metrics.registry.contentType;
        ctx.body = text;
      } catch (err) {
        // Not this worker's metrics alone: a scrape that silently saw one worker would look like
        // counters going backwards.
        ctx.status = 503;
        ctx.type = 'text/plain';
        ctx.body = `metrics unavailable: ${(err as Error).message}\n`;
      }
      return;
    }
    ctx.type = metrics.registry.contentType;
    ctx.body = await metrics.registry.metrics();
  });
  ops.get('/ca.crt', opsKind, (ctx) => {
    if (!deps.caPem) throw new OciError('NAME_UNKNOWN', 'no CA: the TLS and proxy doors are not enabled');
    ctx.type = 'application/x-pem-file';
    ctx.body = deps.caPem();
  });
  ops.get('/setup/:client', opsKind, (ctx) => {
    let script: string | null;
    try {
      script = deps.setupScript?.(ctx.params.client!, ctx.get('host') || undefined) ?? null;
    } catch (err) {
      // A Host header that is no host name: the client's mistake, not ours.
      if (err instanceof TypeError) throw new OciError('REQUEST_INVALID', err.message);
      throw err;
    }
    if (script === null) throw new OciError('NAME_UNKNOWN', 'unknown client; try docker, containerd, podman, hosts, systemd or coredns');
    ctx.type = 'text/plain; charset=utf-8';
    ctx.body = script;
  });
  app.use(ops.routes());

  if (deps.clientAuth) app.use(tokenRouter(deps.clientAuth).routes());
  // The door's Host check and the client's authentication for /v2 are the front's (front.ts),
  // done before a /v2 request reaches the routes below.
  const v2 = v2Router({ cache: deps.cache, index: deps.index, door: deps.door, push: deps.push, doorAuth, access: deps.access });
  app.use(v2.routes());
  app.use((ctx) => {
    if ((ctx.state as RequestState).kind === 'other' && ctx.status === 404 && !ctx.body) {
      throw new OciError('NAME_UNKNOWN', 'unknown endpoint');
    }
  });
  const koa = app.callback();
  const front = createFront(
    {
      door: deps.door,
      log: deps.log,
      metrics: deps.metrics,
      upstreamFailures: deps.upstreamFailures,
      instanceName: deps.config.instanceName,
      pull: { cache: deps.cache, index: deps.index, access: deps.access, doorAuth },
      // The TLS and CONNECT doors stand in for registries by name: a /v2 request for a Host they
      // do not serve (or on a port they do not serve it on) is refused, never routed to defaultRegistry.
      hosts: deps.door !== 'mirror' ? new DoorHosts(deps.config) : undefined,
      rateLimit: deps.rateLimit,
      history: deps.history,
      koaServes,
    },
    koa,
  );
  return { callback: () => front };
}
