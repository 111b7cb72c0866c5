import { createHash } from 'node:crypto';
import type { Config, RegistryConfig } from '../config/index.js';
import type { Logger } from '../observability/logger.js';
import { UpstreamUnavailableError } from './errors.js';
import { parseChallenge, type Challenge } from './www-authenticate.js';
import { TokenCache } from './token-cache.js';
import { compileGlob } from '../util/glob.js';
import { readLimited, upstreamStatusError } from './response-body.js';
import type { RedirectingSender } from './redirects.js';
import type { Credentials, UpstreamRequest } from './upstream-request.js';

const MAX_TOKEN_BODY = 1 << 20;
/** How long the upstream's client challenge is remembered. */
const CHALLENGE_TTL_MS = 10 * 60_000;

/**
 * One registry's authentication: which credentials a repository uses, the challenge the registry
 * last sent, Basic headers, and Bearer tokens from its token service (cached per credentials,
 * service and scope; concurrent requests for one scope share one token request).
 */
export class TokenFlow {
  private readonly tokens = new TokenCache();
  /** The last challenge the registry sent, so later requests can authenticate pre-emptively. */
  private challenge: Challenge | null = null;
  private readonly pendingTokens = new Map<string, Promise<string | null>>();
  /** `registries.<name>.credentials`, compiled: the first whose glob fits a repository is used for it. */
  private readonly namespaces: ReadonlyArray<{ re: RegExp; creds: Credentials }>;
  private probed: { challenge: Challenge | null; until: number } | undefined;

  constructor(
    private readonly registry: Pick<RegistryConfig, 'name' | 'username' | 'password' | 'credentials'>,
    private readonly authHosts: Config['authHosts'],
    private readonly base: URL,
    private readonly sender: RedirectingSender,
    private readonly log: Logger,
  ) {
    this.namespaces = (registry.credentials ?? []).map((c) => ({ re: compileGlob(c.match), creds: { username: c.username, password: c.password } }));
  }

  /** Remembers the challenge of a 401, for this request's retry and later requests. */
  learn(challenge: Challenge): void {
    this.challenge = challenge;
  }

  /**
   * The credentials a request uses: the caller's override, else the first per-namespace entry
   * matching the repository, else the registry's own, else the token host's (`authHosts`).
   */
  private credentialsFor(override: Credentials | null | undefined, host: string, repo: string | undefined): Credentials | null {
    if (override !== undefined) return override;
    const ns = repo === undefined ? undefined : this.namespaces.find((n) => n.re.test(repo));
    if (ns) return ns.creds;
    if (this.registry.username !== undefined) return { username: this.registry.username, password: this.registry.password ?? '' };
    const h = this.authHosts[host];
    return h ? { username: h.username, password: h.password } : null;
  }

  /**
   * Which upstream account requests for `repo` use, as a short opaque id: `''` for the registry's
   * default (no credentials of its own, or only `authHosts` ones), `anonymous` for an explicit
   * anonymous override, else a hash of the user name. The cache keys what upstream confirmed by
   * it, so a confirmation made with one account never vouches for another. Password changes of
   * the same account keep the id (the account's access is what matters).
   */
  identityFor(repo: string, override?: Credentials | null): string {
    let c: Credentials | null | undefined = override;
    if (c === undefined) c = this.namespaces.find((n) => n.re.test(repo))?.creds;
    if (c === undefined && this.registry.username !== undefined) c = { username: this.registry.username, password: '' };
    if (c === undefined) return '';
    if (c === null) return 'anonymous';
    return 'u' + createHash('sha256').update(c.username).digest('hex').slice(0, 12);
  }

  private static credentialId(c: Credentials | null): string {
    // Never the password itself in a map key that might be dumped: a hash of both.
    return c ? createHash('sha256').update(`${c.username}\0${c.password}`).digest('hex').slice(0, 16) : 'anonymous';
  }

  /**
   * The Authorization header for a request, fetching a token if the registry wants one; undefined
   * when no challenge is known or no credentials/token apply. `fresh` drops a cached token first.
   * @throws UpstreamUnavailableError when the token service cannot be reached or answers
   *   unreadably; UpstreamStatusError when it refuses the credentials;
   *   UpstreamAddressRefusedError when the realm is on a refused address.
   */
  async authorization(req: UpstreamRequest, scope: string | undefined, fresh: boolean): Promise<string | undefined> {
    const ch = this.challenge;
    if (!ch) return undefined;
    if (ch.scheme === 'basic') {
      const c = this.credentialsFor(req.credentials, this.base.host, req.repo);
      return c ? 'Basic ' + Buffer.from(`${c.username}:${c.password}`).toString('base64') : undefined;
    }
    if (ch.scheme !== 'bearer' || !ch.params.realm) return undefined;
    let realm: URL;
    try {
      realm = new URL(ch.params.realm);
    } catch {
      return undefined;
    }
    const creds = this.credentialsFor(req.credentials, realm.host, req.repo);
    const key = `${TokenFlow.credentialId(creds)}|${ch.params.service ?? ''}|${scope ?? ''}`;
    if (fresh) this.tokens.delete(key);
    const cached = this.tokens.get(key);
    if (cached) return `Bearer ${cached}`;
    // Concurrent requests for one scope share one token request.
    let pending = this.pendingTokens.get(key);
    if (!pending) {
      pending = this.fetchToken(realm, ch.params.service, scope, creds, key, req.signal).finally(() => this.pendingTokens.delete(key));
      this.pendingTokens.set(key, pending);
    }
    const token = await pending;
    return token ? `Bearer ${token}` : undefined;
  }

  private async fetchToken(realm: URL, service: string | undefined, scope: string | undefined, creds: Credentials | null, key: string, signal?: AbortSignal): Promise<string | null> {
    const url = new URL(realm);
    if (service) url.searchParams.set('service', service);
    if (scope) url.searchParams.set('scope', scope);
    const headers: Record<string, string> = {};
    if (creds) headers.authorization = 'Basic ' + Buffer.from(`${creds.username}:${creds.password}`).toString('base64');
    const res = await this.sender.send({ method: 'GET', path: url.pathname, kind: 'token', signal }, url, headers.authorization, true);
    if (res.status !== 200) {
      const err = await upstreamStatusError(this.registry.name, res);
      this.log.warn('upstream token request refused', { registry: this.registry.name, status: res.status, user: creds?.username, scope });
      throw err;
    }
    let doc: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      doc = JSON.parse((await readLimited(res.body, MAX_TOKEN_BODY)).toString('utf8')) as typeof doc;
    } catch (err) {
      throw new UpstreamUnavailableError(this.registry.name, `token service sent an unreadable answer: ${(err as Error).message}`);
    }
    const token = typeof doc.token === 'string' ? doc.token : typeof doc.access_token === 'string' ? doc.access_token : null;
    if (!token) return null;
    const expiresIn = typeof doc.expires_in === 'number' && doc.expires_in > 0 ? doc.expires_in : 60;
    this.tokens.set(key, token, expiresIn);
    return token;
  }

  /**
   * The Authorization header for relaying a write to `repo` with pullthrough's own credentials
   * for it (scope `pull,push`), learning the registry's challenge first if needed. Undefined when
   * the registry asks for no authentication.
   * @throws UpstreamUnavailableError; UpstreamStatusError when the token service refuses.
   */
  async writeAuthorization(repo: string): Promise<string | undefined> {
    this.challenge ??= await this.clientChallenge();
    return this.authorization({ method: 'GET', path: '', repo, kind: 'push' }, `repository:${repo}:pull,push`, false);
  }

  /**
   * The challenge the upstream puts to clients without credentials (`GET /v2/` → 401), or null
   * when it has none or cannot be reached right now. Cached: this decides whether doors that stand
   * in for the registry challenge their clients, which they must for pushes to authenticate.
   * Never throws.
   */
  async clientChallenge(): Promise<Challenge | null> {
    const now = Date.now();
    if (this.probed && this.probed.until > now) return this.probed.challenge;
    let challenge: Challenge | null = null;
    let ttl = CHALLENGE_TTL_MS;
    try {
      const res = await this.sender.send({ method: 'GET', path: '/v2/', kind: 'base', signal: AbortSignal.timeout(5000) }, new URL('/v2/', this.base), undefined);
      res.body.destroy();
      if (res.status === 401) challenge = parseChallenge(res.headers['www-authenticate']);
    } catch {
      // Unreachable: answer clients without a challenge (cached pulls keep working); ask again soon.
      ttl = 10_000;
    }
    this.probed = { challenge, until: now + ttl };
    return challenge;
  }
}
