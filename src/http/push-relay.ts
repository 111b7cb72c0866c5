import type { Context } from 'koa';
import type { UpstreamPool } from '../upstream/registry-upstream.js';
import type { OfflineSwitch } from '../upstream/offline-switch.js';
import { UpstreamOfflineError } from '../upstream/errors.js';
import type { Target } from '../cache/results.js';
import type { PushRelay } from './v2-routes.js';
import type { RequestState } from './state.js';

// Per-connection headers (RFC 9110 §7.6.1) and ones the relay sets itself.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te', 'trailer', 'upgrade', 'host', 'via', 'transfer-encoding']);

/** How the relay authenticates upstream. */
export interface PushRelayOptions {
  /**
   * Client authentication is on: the client's Authorization is pullthrough's own (already checked
   * against the rules' push list), so it is never sent upstream; the write goes with the
   * credentials configured for the repository instead, and upstream challenges are not passed on
   * (they would send the client to the upstream's token service).
   */
  readonly centralCredentials?: boolean;
  /** Registries in offline mode get no write relayed (UpstreamOfflineError, before any connection). */
  readonly offline?: Pick<OfflineSwitch, 'isOffline'>;
}

/**
 * Pushes through the TLS and CONNECT doors: the request goes to the real upstream with the
 * client's own headers and credentials, its body streamed both ways (never buffered), and the
 * upstream's answer comes back as it is, except that upload `Location`s naming the upstream are
 * made relative so the client keeps talking to the name it asked for (and so to pullthrough), and
 * `Location`s on other origins are refused (502) when they name private or metadata addresses.
 * The upstream's 401 challenges are passed on: the client authenticates to the upstream itself
 * (unless `centralCredentials`, see {@link PushRelayOptions}).
 */
export function createPushRelay(upstreams: UpstreamPool, opts: PushRelayOptions = {}): PushRelay {
  return async (ctx: Context, target: Target): Promise<void> => {
    if (opts.offline?.isOffline(target.registry.name)) throw new UpstreamOfflineError(target.registry.name, `${ctx.method} ${ctx.path} is not relayed`);
    const up = upstreams.for(target.registry);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(ctx.req.headers)) {
      if (v === undefined || HOP_BY_HOP.has(k)) continue;
      if (opts.centralCredentials && k === 'authorization') continue;
      headers[k] = Array.isArray(v) ? v.join(', ') : v;
    }
    if (opts.centralCredentials && target.repo) {
      const auth = await up.writeAuthorization(target.repo);
      if (auth) headers.authorization = auth;
    }
    const hasBody = ctx.req.headers['content-length'] !== undefined || ctx.req.headers['transfer-encoding'] !== undefined;
    // The client's path names the repository as the client knows it; upstream wants its own name.
    const path = ctx.path.replace(/^\/v2\/.+?\/(blobs|manifests|tags|referrers)\//, `/v2/${target.repo}/$1/`);
    const qs = new URLSearchParams(ctx.querystring);
    qs.delete('ns');
    const res = await up.relay(ctx.method, `${path}${qs.size ? `?${qs}` : ''}`, headers, hasBody ? ctx.req : null, target.repo ? 'push' : 'other');
    // An upload Location on another origin goes to the client as it is, and the client follows it
    // (through the CONNECT door, or from its own network): the same address rule as pullthrough's
    // own upstream connections, so an upstream cannot point clients into private space either.
    if (res.headers.location !== undefined) {
      try {
        await up.checkLocation(res.headers.location);
      } catch (err) {
        res.body.destroy();
        throw err;
      }
    }
    (ctx.state as RequestState).cache = 'pass';
    ctx.status = res.status;
    for (const [k, v] of Object.entries(res.headers)) {
      if (HOP_BY_HOP.has(k) || k === 'content-length') continue;
      if (opts.centralCredentials && k === 'www-authenticate') continue;
      if (k === 'location') ctx.set(k, relativeTo(v, up.origin));
      else ctx.set(k, v);
    }
    const len = res.headers['content-length'];
    if (len !== undefined && /^\d+$/.test(len)) ctx.length = Number(len);
    if (ctx.method === 'HEAD' || res.status === 204 || res.status === 304) {
      res.body.destroy();
      return;
    }
    res.body.on('data', (c: Buffer) => ((ctx.state as RequestState).bytes += c.length));
    ctx.body = res.body;
  };
}

/** `https://upstream/v2/x/blobs/uploads/1?s=2` → `/v2/x/blobs/uploads/1?s=2`; other hosts untouched. */
function relativeTo(location: string, origin: string): string {
  try {
    const u = new URL(location, origin);
    return u.origin === origin ? u.pathname + u.search : location;
  } catch {
    return location;
  }
}
