import { rootCertificates } from 'node:tls';
import { readFileSync } from 'node:fs';
import type { LookupFunction } from 'node:net';
import type { Readable } from 'node:stream';
import type { Config, RegistryConfig } from '../config/index.js';
import type { Metrics } from '../observability/metrics.js';
import type { Logger } from '../observability/logger.js';
import { parseChallenge, type Challenge } from './www-authenticate.js';
import { OriginGuard } from './origin-guard.js';
import { RoutedTransports } from './routed-transports.js';
import { RedirectingSender } from './redirects.js';
import { TokenFlow } from './token-flow.js';
import type { Credentials, UpstreamKind, UpstreamRequest, UpstreamResponse } from './upstream-request.js';

/**
 * The part of the configuration a registry client reads: timeouts and limits (`upstream`),
 * credentials for separate auth hosts (`authHosts`), and the `Via` name (`instanceName`).
 */
export type UpstreamSettings = Pick<Config, 'upstream' | 'authHosts' | 'instanceName'>;

/**
 * The client for one upstream registry: Bearer/Basic auth with a token cache ({@link TokenFlow}),
 * redirects to blob CDNs dropping Authorization across hosts ({@link RedirectingSender}),
 * keep-alive connection reuse, timeouts, a private CA, and a Via header so a loop back into
 * pullthrough is detected.
 *
 * Bytes move through {@link RoutedTransports}: undici for API requests, an ObjectReader for blob
 * GETs (every byte a fill caches, into reused slabs), each in a trusted variant for the
 * configured upstream's origin and a guarded one, checked by the {@link OriginGuard}, for origins
 * the upstream names (redirects, token realm).
 */
export class RegistryUpstream {
  private readonly base: URL;
  private readonly guard: OriginGuard;
  private readonly transports: RoutedTransports;
  private readonly sender: RedirectingSender;
  private readonly auth: TokenFlow;

  constructor(
    readonly registry: RegistryConfig,
    private readonly config: UpstreamSettings,
    metrics: Metrics,
    log: Logger,
    lookup?: LookupFunction,
  ) {
    this.base = new URL(registry.upstream);
    this.guard = new OriginGuard(registry, this.base, log, lookup);
    // A private CA is added to the public roots, not instead of them: blob redirects usually go
    // to public CDNs.
    const ca = registry.ca ? [...rootCertificates, readFileSync(registry.ca, 'utf8')] : undefined;
    this.transports = new RoutedTransports(
      {
        connectTimeout: config.upstream.connectTimeout,
        headersTimeout: config.upstream.headersTimeout,
        bodyTimeout: config.upstream.bodyTimeout,
        // undici's and the ObjectReader's alike: a reused connection the server closed meanwhile
        // is replaced transparently, a new one costs a TLS handshake to the CDN.
        keepAliveMs: 30_000,
        ...(ca ? { ca } : {}),
      },
      lookup,
      () => this.guard.rule,
    );
    this.sender = new RedirectingSender(registry.name, `1.1 ${config.instanceName}`, this.guard, this.transports, metrics);
    this.auth = new TokenFlow(registry, config.authHosts, this.base, this.sender, log);
  }

  /**
   * Checks a URL the upstream gave for the client to follow itself (a push's upload Location):
   * same rule as for pullthrough's own connections, with the name resolved now.
   * @throws UpstreamAddressRefusedError when the rule refuses it; UpstreamUnavailableError when
   *   its name does not resolve.
   */
  checkLocation(location: string): Promise<void> {
    return this.guard.checkLocation(location);
  }

  /** See {@link TokenFlow.identityFor}: the opaque upstream-account id requests for `repo` use. */
  identityFor(repo: string, override?: Credentials | null): string {
    return this.auth.identityFor(repo, override);
  }

  /**
   * Sends a request upstream, authenticating and following redirects.
   * @throws UpstreamUnavailableError when the upstream (or its token service) cannot be reached;
   *   UpstreamStatusError when the token service refuses the credentials;
   *   UpstreamAddressRefusedError when a redirect or the token realm names a refused address.
   */
  async request(req: UpstreamRequest): Promise<UpstreamResponse> {
    const scope = req.repo ? `repository:${req.repo}:pull` : undefined;
    let auth = await this.auth.authorization(req, scope, false);
    let res = await this.sender.send(req, new URL(req.path, this.base), auth);
    if (res.status === 401) {
      const challenge = parseChallenge(res.headers['www-authenticate']);
      if (challenge) {
        this.auth.learn(challenge);
        const retryAuth = await this.auth.authorization(req, challenge.params.scope ?? scope, true);
        if (retryAuth !== undefined && retryAuth !== auth) {
          res.body.destroy();
          auth = retryAuth;
          res = await this.sender.send(req, new URL(req.path, this.base), auth);
        }
      }
    }
    return res;
  }

  /**
   * Sends a client's request to the upstream as it is (pushes and other writes): the client's own
   * headers and credentials, the body streamed, no authentication or redirect handling of ours.
   * @throws UpstreamUnavailableError when the upstream cannot be reached;
   *   UpstreamAddressRefusedError when an absolute URL (a token realm) is on a refused address.
   */
  async relay(method: string, pathAndQuery: string, headers: Record<string, string>, body: Readable | null, kind: UpstreamKind): Promise<UpstreamResponse> {
    // Absolute URLs (a token realm) stay as they are; a malformed one rejects, as before the split.
    const url = new URL(pathAndQuery, this.base);
    // The upstream answers after the whole upload, which is as slow as the client sending it.
    return this.sender.relay(url, method, headers, body, kind, this.config.upstream.relayTimeout);
  }

  /**
   * The Authorization header for relaying a write to `repo` with pullthrough's own credentials
   * for it (scope `pull,push`), learning the registry's challenge first if needed. Undefined when
   * the registry asks for no authentication.
   * @throws UpstreamUnavailableError; UpstreamStatusError when the token service refuses.
   */
  writeAuthorization(repo: string): Promise<string | undefined> {
    return this.auth.writeAuthorization(repo);
  }

  /**
   * The challenge the upstream puts to clients without credentials (`GET /v2/` → 401), or null
   * when it has none or cannot be reached right now (cached; never throws).
   */
  clientChallenge(): Promise<Challenge | null> {
    return this.auth.clientChallenge();
  }

  /**
   * Relays a client's token request to the upstream's real token service: the realm the upstream
   * itself named in its challenge, never a URL from the request. Returns null when the upstream
   * uses no Bearer tokens.
   * @throws UpstreamUnavailableError when the token service cannot be reached;
   *   UpstreamAddressRefusedError when the realm is on a refused address.
   */
  async relayToken(method: 'GET' | 'POST', query: string, headers: Record<string, string>, body: Readable | null): Promise<UpstreamResponse | null> {
    const ch = await this.clientChallenge();
    if (ch?.scheme !== 'bearer' || !ch.params.realm) return null;
    let realm: URL;
    try {
      realm = new URL(ch.params.realm);
    } catch {
      return null;
    }
    const url = new URL(realm);
    for (const [k, v] of new URLSearchParams(query)) url.searchParams.append(k, v);
    return this.relay(method, url.toString(), headers, body, 'token');
  }

  /** The upstream's origin (`https://host:port`). */
  get origin(): string {
    return this.base.origin;
  }

  async close(): Promise<void> {
    await this.transports.close();
  }
}
