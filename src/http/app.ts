import Koa, { type Context, type Next } from 'koa';
import type { TLSSocket } from 'node:tls';
import Router from '@koa/router';
import type { Config } from '../config/index.js';
import type { NamesSettings } from '../config/served-names.js';
import { OciError } from '../oci/errors.js';
import type { PullThroughCache } from '../cache/pull-through.js';
import type { Metrics } from '../observability/metrics.js';
import type { Logger } from '../observability/logger.js';
import { toOciError } from './error-mapping.js';
import { v2Router, type DoorKind, type PushRelay } from './v2-routes.js';
import type { RequestState } from './state.js';
import { DoorHosts, type RegistryIndex } from './target.js';
import type { DoorAuth } from './door-auth.js';
import type { AccessControl } from './access.js';
import { auditDenied } from './audit.js';
import { tokenRouter } from './token-endpoint.js';
import type { ClientAuth } from '../auth/client-auth.js';
import { RateLimitedError } from '../auth/errors.js';
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

const MAX_QUERY = 4096;
/** Probes and scrapes are never rate limited (kubelets and Prometheus poll from one address). */
const OPS_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

/**
 * The koa application every door feeds: /v2 plus /healthz, /readyz, /metrics, /ca.crt and
 * /setup/<client>. It is a request handler, not a server, so plain HTTP, TLS and CONNECT-tunnelled
 * sockets can all be handed to `app.callback()`.
 */
export function createApp(deps: AppDeps): Koa {
  const app = new Koa();
  // Errors are answered and logged by the middleware below; koa's default handler would print stacks.
  app.silent = true;
  const { metrics, log } = deps;

  app.use(async (ctx: Context, next: Next) => {
    const state: RequestState = { kind: 'other', bytes: 0 };
    ctx.state = state;
    const started = process.hrtime.bigint();
    // Read now: by 'close' the socket may be gone (koa's ctx.ip would throw there).
    const client = ctx.req.socket?.remoteAddress ?? '';
    ctx.res.once('close', () => {
      try {
        logRequest();
      } catch (err) {
        log.error('request log failed', { error: (err as Error).message });
      }
    });
    const logRequest = (): void => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const aborted = !ctx.res.writableFinished;
      const cache = state.cache ?? 'none';
      metrics.requests.inc({ kind: state.kind, cache, status: String(ctx.status) });
      metrics.requestDuration.observe({ kind: state.kind, cache }, ms / 1000);
      if (state.bytes && state.kind !== 'ops' && state.kind !== 'token') metrics.bytesServed.inc({ source: cache === 'miss' || cache === 'pass' ? 'upstream' : 'cache' }, state.bytes);
      deps.history?.request({ registry: state.registry, repo: state.repo, kind: state.kind, cache: state.cache, bytes: state.bytes });
      if (state.kind === 'ops') return;
      // Only chosen fields: never headers, so never credentials.
      log.info('request', {
        door: deps.door,
        method: ctx.method,
        path: ctx.path.slice(0, 512),
        ns: typeof ctx.query.ns === 'string' ? ctx.query.ns.slice(0, 255) : undefined,
        registry: state.registry,
        repo: state.repo,
        kind: state.kind,
        cache: state.cache,
        status: ctx.status,
        error: state.errorCode,
        stale: state.staleReason,
        bytes: state.bytes,
        ms: Math.round(ms * 10) / 10,
        aborted: aborted || undefined,
        client,
        user: state.user,
      });
    };
    try {
      if (deps.rateLimit && !OPS_PATHS.has(ctx.path)) {
        const wait = deps.rateLimit.take(client);
        if (wait > 0) throw new RateLimitedError(wait);
      }
      if (ctx.querystring.length > MAX_QUERY) throw new OciError('REQUEST_INVALID', 'query string too long');
      // A request that already passed through this pullthrough came back to it: an upstream name
      // resolves to pullthrough itself. Refuse rather than recurse.
      const via = ctx.get('via');
      if (via && via.split(',').some((hop) => hop.trim().split(/\s+/)[1] === deps.config.instanceName)) {
        throw new OciError('LOOP_DETECTED', 'request loop: this request already passed through this pullthrough (check the DNS of its upstreams)');
      }
      await next();
    } catch (err) {
      const oci = toOciError(err, state.kind);
      state.errorCode = oci.code;
      auditDenied(log, metrics, deps.door, ctx, err);
      deps.upstreamFailures?.note(err);
      if (oci.code === 'INTERNAL') log.error('internal error', { path: ctx.path.slice(0, 512), error: (err as Error)?.stack ?? String(err) });
      if (ctx.headerSent) {
        ctx.res.destroy();
        return;
      }
      ctx.status = oci.status;
      for (const [k, v] of Object.entries(oci.headers)) ctx.set(k, v);
      ctx.type = 'application/json';
      if (ctx.method !== 'HEAD') ctx.body = JSON.stringify(oci.toBody());
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

  if (deps.door !== 'mirror') {
    // The TLS and CONNECT doors stand in for registries by name: a /v2 request for a Host they do
    // not serve (or on a port they do not serve it on) is refused, never routed to defaultRegistry.
    const hosts = new DoorHosts(deps.config);
    app.use(async (ctx: Context, next: Next) => {
      if (ctx.path === '/v2' || ctx.path.startsWith('/v2/')) {
        const sni = (ctx.req.socket as TLSSocket).servername;
        hosts.check(ctx.get('host') || undefined, typeof sni === 'string' && sni ? sni : undefined);
      }
      await next();
    });
  }
  if (deps.clientAuth) app.use(tokenRouter(deps.clientAuth).routes());
  if (deps.access) {
    const access = deps.access;
    app.use(async (ctx: Context, next: Next) => {
      if (ctx.path === '/v2' || ctx.path.startsWith('/v2/')) await access.authenticate(ctx);
      await next();
    });
  }
  // With client authentication on, pullthrough's own token flow replaces the upstream's on the doors.
  const doorAuth = deps.clientAuth ? undefined : deps.doorAuth;
  const v2 = v2Router({ cache: deps.cache, index: deps.index, door: deps.door, push: deps.push, doorAuth, access: deps.access });
  app.use(v2.routes());
  app.use((ctx) => {
    if ((ctx.state as RequestState).kind === 'other' && ctx.status === 404 && !ctx.body) {
      throw new OciError('NAME_UNKNOWN', 'unknown endpoint');
    }
  });
  return app;
}
