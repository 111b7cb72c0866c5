import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { parse as parseQuery } from 'node:querystring';
import { OciError } from '../oci/errors.js';
import { RateLimitedError } from '../auth/errors.js';
import type { TokenBuckets } from '../util/token-bucket.js';
import type { StatusHistory } from '../observability/history.js';
import type { RequestHandler } from '../doors/request-handler.js';
import type { RequestState } from './state.js';
import { attachState, LeanRequest, splitTarget } from './request-view.js';
import { failureOf, sendFailure, type FailureDeps } from './failure.js';
import { matchPull, servePull, type PullDeps, type PullRoute } from './pull-routes.js';
import type { DoorHosts } from './target.js';
import { isV2 } from './v2-paths.js';

/** What the front needs besides the koa app it hands the other requests to. */
export interface FrontDeps extends FailureDeps {
  /** This pullthrough's name in `Via` (loop detection). */
  readonly instanceName: string;
  /** The pull routes' parts; its `access` also authenticates the client of every /v2 request. */
  readonly pull: PullDeps;
  /** The Hosts a TLS or CONNECT door answers /v2 for; absent on the mirror door. */
  readonly hosts?: DoorHosts;
  readonly rateLimit?: TokenBuckets;
  readonly history?: StatusHistory;
  /** Whether a koa route may answer this path; anything else is an unknown endpoint. */
  readonly koaServes: (path: string) => boolean;
}

const MAX_QUERY = 4096;
/** Probes and scrapes are never rate limited (kubelets and Prometheus poll from one address). */
const OPS_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

/**
 * The request handler every door feeds. It keeps what every request gets in one place — the
 * request log line and metrics, the rate limit, the query-length and loop checks, and for /v2 the
 * door's Host check and the client's authentication — answers the pull requests itself
 * (pull-routes.ts) and unknown paths with a 404, and hands the rest (ops endpoints, tokens,
 * writes, tags, referrers) to `koa` with the request's state attached.
 */
export function createFront(deps: FrontDeps, koa: RequestHandler): RequestHandler {
  const { log, metrics } = deps;

  const record = (view: LeanRequest, res: ServerResponse, ns: string | undefined, started: bigint): void => {
    const state = view.state;
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    const cache = state.cache ?? 'none';
    const status = res.statusCode;
    metrics.requests.record(state.kind, cache, status, ms / 1000);
    if (state.bytes && state.kind !== 'ops' && state.kind !== 'token') metrics.bytesServed.inc({ source: cache === 'miss' || cache === 'pass' ? 'upstream' : 'cache' }, state.bytes);
    if (state.sendfileBytes) metrics.sendfileBytes.inc(state.sendfileBytes);
    deps.history?.request({ registry: state.registry, repo: state.repo, kind: state.kind, cache: state.cache, bytes: state.bytes });
    if (state.kind === 'ops') return;
    // Only chosen fields: never headers, so never credentials.
    log.info('request', {
      door: deps.door,
      method: view.method,
      path: view.path.slice(0, 512),
      ns: ns?.slice(0, 255),
      registry: state.registry,
      repo: state.repo,
      kind: state.kind,
      cache: state.cache,
      status,
      error: state.errorCode,
      stale: state.staleReason,
      bytes: state.bytes,
      ms: Math.round(ms * 10) / 10,
      aborted: !res.writableFinished || undefined,
      client: view.ip,
      user: state.user,
    });
  };

  /** The checks every request passes before it is routed. @throws what the client gets instead */
  const admit = (view: LeanRequest, path: string, query: string): void => {
    if (deps.rateLimit && !OPS_PATHS.has(path)) {
      const wait = deps.rateLimit.take(view.ip);
      if (wait > 0) throw new RateLimitedError(wait);
    }
    if (query.length > MAX_QUERY) throw new OciError('REQUEST_INVALID', 'query string too long');
    // A request that already passed through this pullthrough came back to it: an upstream name
    // resolves to pullthrough itself. Refuse rather than recurse.
    const via = view.get('via');
    if (via && via.split(',').some((hop) => hop.trim().split(/\s+/)[1] === deps.instanceName)) {
      throw new OciError('LOOP_DETECTED', 'request loop: this request already passed through this pullthrough (check the DNS of its upstreams)');
    }
  };

  /**
   * A /v2 request, whether a pull route or koa answers it: first the door's Host check, then who
   * the client is (anonymous while authentication is off), then the route.
   */
  const v2 = async (view: LeanRequest, res: ServerResponse, route: PullRoute | undefined, ns: string | undefined): Promise<void> => {
    if (deps.hosts) {
      const sni = (view.socket as TLSSocket).servername;
      deps.hosts.check(view.get('host') || undefined, typeof sni === 'string' && sni ? sni : undefined);
    }
    await deps.pull.access?.authenticate(view);
    if (route) return servePull(view, res, route, ns, deps.pull);
    attachState(view.req, view.state);
    koa(view.req, res);
  };

  return (req: IncomingMessage, res: ServerResponse): void => {
    const started = process.hrtime.bigint();
    const { path, query } = splitTarget(req.url ?? '/');
    const state: RequestState = { kind: 'other', bytes: 0 };
    const view = new LeanRequest(req, path, state);
    let ns: string | undefined;
    if (query) {
      const v = parseQuery(query).ns;
      if (typeof v === 'string') ns = v;
    }
    res.once('close', () => {
      try {
        record(view, res, ns, started);
      } catch (err) {
        log.error('request log failed', { error: (err as Error).message });
      }
    });
    const fail = (err: unknown): void => {
      try {
        sendFailure(res, view.method, failureOf(deps, view, err));
      } catch (e) {
        log.error('error answer failed', { error: (e as Error)?.stack ?? String(e) });
        res.destroy();
      }
    };
    try {
      admit(view, path, query);
      if (isV2(path)) {
        v2(view, res, matchPull(view.method, path), ns).catch(fail);
        return;
      }
      if (!deps.koaServes(path)) throw new OciError('NAME_UNKNOWN', 'unknown endpoint');
      attachState(req, state);
      koa(req, res);
    } catch (err) {
      fail(err);
    }
  };
}
