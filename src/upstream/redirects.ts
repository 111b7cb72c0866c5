import type { Readable } from 'node:stream';
import type { Metrics } from '../observability/metrics.js';
import { UpstreamUnavailableError } from './errors.js';
import { findAddressRefusal } from '../net/address-guard.js';
import { describeNetworkError } from './network-error.js';
import type { OriginGuard } from './origin-guard.js';
import type { RoutedTransports, Traffic } from './routed-transports.js';
import type { Exchange } from './transport.js';
import { USER_AGENT, type UpstreamKind, type UpstreamRequest, type UpstreamResponse } from './upstream-request.js';

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;

/**
 * A pull's requests (blob and manifest GETs, HEADs) go to the ObjectReader transport: it reads
 * blobs into reused slabs, and keeps its connection after a HEAD, where undici closes it (then the
 * next request to the registry, a tag's revalidation or the GET after it, paid a new connection
 * and TLS handshake). One client for the whole pull also means one kept-alive connection for it,
 * and no undici in the pull path of a registry without token auth.
 */
function trafficOf(req: UpstreamRequest): Traffic {
  if (req.method === 'HEAD') return 'pull';
  return req.method === 'GET' && (req.kind === 'blob' || req.kind === 'manifest') ? 'pull' : 'api';
}

/**
 * Sends a registry client's requests over its transports: one exchange plus redirects (up to 5,
 * dropping Authorization across origins, http(s) only), each hop routed by the origin guard, the
 * User-Agent and Via headers added, `upstreamRequests` and `rateLimitRemaining` counted, and
 * transport failures turned into typed upstream errors.
 */
export class RedirectingSender {
  constructor(
    private readonly registryName: string,
    /** The `Via` value (`1.1 <instanceName>`), so a loop back into pullthrough is detected. */
    private readonly via: string,
    private readonly guard: OriginGuard,
    private readonly transports: RoutedTransports,
    private readonly metrics: Metrics,
  ) {}

  /**
   * One request to `url` with `authorization`, following redirects. A token request (`isToken`)
   * sends none of `req.headers`.
   * @throws UpstreamUnavailableError when the upstream cannot be reached, or a redirect names a
   *   scheme other than http(s); UpstreamAddressRefusedError when a redirect or the token realm
   *   names a refused address; the abort when `req.signal` aborts.
   */
  async send(req: UpstreamRequest, url: URL, authorization: string | undefined, isToken = false): Promise<UpstreamResponse> {
    let current = url;
    let auth = authorization;
    for (let hop = 0; ; hop++) {
      const headers: Record<string, string> = {
        'user-agent': USER_AGENT,
        via: this.via,
        ...(isToken ? {} : req.headers),
      };
      if (auth) headers.authorization = auth;
      const what = hop > 0 ? 'redirect' : isToken ? 'token realm' : 'request';
      const route = await this.guard.route(current, what);
      const transport = this.transports.pick(route, trafficOf(req));
      let r: Exchange;
      try {
        r = await transport.exchange({ url: current, method: req.method, headers, signal: req.signal });
      } catch (err) {
        const refused = findAddressRefusal(err);
        if (refused) throw this.guard.refusal(what, current, refused);
        this.count(req.method, req.kind, '0');
        if (req.signal?.aborted) throw err;
        throw new UpstreamUnavailableError(this.registryName, describeNetworkError(err), { cause: err });
      }
      // Discarding a body (destroy) makes undici emit an error; consumers that care attach their
      // own listeners, this one only keeps an unobserved discard from crashing the process.
      r.body.on('error', () => {});
      this.count(req.method, req.kind, String(r.status));
      const h = r.headers;
      const remaining = h['ratelimit-remaining'];
      if (remaining) {
        const n = parseInt(remaining, 10);
        if (Number.isFinite(n)) this.metrics.rateLimitRemaining.set({ registry: this.registryName }, n);
      }
      if (REDIRECTS.has(r.status) && h.location && hop < MAX_REDIRECTS) {
        r.body.destroy();
        const next = new URL(h.location, current);
        if (next.protocol !== 'https:' && next.protocol !== 'http:') {
          throw new UpstreamUnavailableError(this.registryName, `redirect to unsupported URL scheme ${next.protocol}`);
        }
        // Credentials meant for the registry must not travel to a CDN or object store.
        if (next.origin !== current.origin) auth = undefined;
        current = next;
        continue;
      }
      return { status: r.status, headers: h, body: r.body, url: current.toString() };
    }
  }

  /**
   * One exchange as the client asked for it (pushes, token relays): its headers and body, only
   * Via added, no redirects followed, the head awaited for up to `headersTimeout`.
   * @throws UpstreamUnavailableError when the upstream cannot be reached;
   *   UpstreamAddressRefusedError when `url` (a token realm) is on a refused address.
   */
  async relay(url: URL, method: string, headers: Record<string, string>, body: Readable | null, kind: UpstreamKind, headersTimeout: number): Promise<UpstreamResponse> {
    const what = kind === 'token' ? 'token realm' : 'request';
    const route = await this.guard.route(url, what);
    let r: Exchange;
    try {
      r = await this.transports.pick(route, 'api').exchange({ url, method, headers: { ...headers, via: this.via }, body, headersTimeout });
    } catch (err) {
      const refused = findAddressRefusal(err);
      if (refused) throw this.guard.refusal(what, url, refused);
      this.count(method, kind, '0');
      throw new UpstreamUnavailableError(this.registryName, describeNetworkError(err), { cause: err });
    }
    r.body.on('error', () => {});
    this.count(method, kind, String(r.status));
    return { status: r.status, headers: r.headers, body: r.body, url: url.toString() };
  }

  private count(method: string, kind: UpstreamKind, status: string): void {
    this.metrics.upstreamRequests.inc({ registry: this.registryName, method, kind, status });
  }
}
