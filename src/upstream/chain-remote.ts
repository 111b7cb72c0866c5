/**
 * Upstream chains (issue 18; docs/upstream-chains.md): a registry's ordered `upstreams`, as one
 * {@link RemoteRegistry}. Each entry is its own RegistryUpstream (its credentials, CA, tokens and
 * connections) behind a RegistryRemote; ChainRemote asks them in order:
 *
 * - content by digest (statBlob, openBlob, head/getManifest by digest) from any entry: the cache
 *   verifies every digest, so any mirror is safe for it;
 * - tags (head/getManifest by tag, listTags) and referrers only from entries with `tags: true`,
 *   since a mirror could answer a tag with other content.
 *
 * What moves on to the next entry: no answer (connect error, timeout), a 5xx, a 429, an entry
 * skipped by its health; for content by digest also a 404 and bytes that contradict the digest.
 * A 401 or 403 is an access decision and ends the chain. The failover table is in the docs.
 *
 * Offline mode (OfflineSwitch) answers every call with UpstreamOfflineError before any connection.
 */
import { createHash } from 'node:crypto';
import type { LookupFunction } from 'node:net';
import type { RegistryConfig, UpstreamEntryConfig } from '../config/index.js';
import type { Metrics } from '../observability/metrics.js';
import type { Logger } from '../observability/logger.js';
import { isDigest } from '../oci/digest.js';
import {
  UpstreamIntegrityError,
  UpstreamManifestInvalidError,
  UpstreamOfflineError,
  UpstreamStatusError,
  UpstreamTooLargeError,
  UpstreamUnavailableError,
} from './errors.js';
import { RegistryUpstream, type UpstreamPool, type UpstreamSettings } from './registry-upstream.js';
import { RegistryRemote } from './registry-remote.js';
import type { OfflineSwitch } from './offline-switch.js';
import { UpstreamHealth, systemClock, type Clock, type HealthOptions, type ProbeResult } from './upstream-health.js';
import type {
  BlobStat,
  CallOptions,
  Credentials,
  ListReferrersOptions,
  ListTagsOptions,
  ManifestStat,
  OpenBlobOptions,
  ReferrersAnswer,
  RemoteBlob,
  RemoteManifest,
  RemoteRegistries,
  RemoteRegistry,
  RemoteRepository,
} from './remote.js';

/** Why a call moved past an entry: the `reason` label of pullthrough_upstream_failovers_total. */
export type FailoverReason = 'unavailable' | 'status_5xx' | 'rate_limited' | 'not_found' | 'integrity' | 'skipped';

/** One entry of a chain: its remote, its health (chains of two or more), what it may answer. */
export interface ChainEntry {
  /** The entry's origin (`https://host:port`): what logs and metrics name, never credentials. */
  readonly origin: string;
  readonly tags: boolean;
  readonly remote: RemoteRegistry;
  /** Undefined in a chain of one: with nowhere to fail over to, it is always asked. */
  readonly health: UpstreamHealth | undefined;
}

/** What a ChainRemote reports to. */
export interface ChainObservers {
  readonly metrics: Metrics;
  readonly log: Logger;
}

/** Which scope a call belongs to: content by digest may come from any entry, tags only from trusted ones. */
type Scope = 'content' | 'tags';

/** How an entry's answer or failure counts for the chain. */
type Verdict =
  | { readonly kind: 'next'; readonly reason: FailoverReason; readonly err: unknown }
  | { readonly kind: 'not-found'; readonly err: unknown }
  /** A tag-trusted entry's 404: the registry's answer, whatever happened further up the chain. */
  | { readonly kind: 'answer'; readonly err: unknown }
  | { readonly kind: 'stop'; readonly err: unknown };

function isAbort(err: unknown, signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true || (err as { name?: unknown } | null)?.name === 'AbortError';
}

/**
 * A {@link RemoteRepository} over the entries of a chain. Its `account` is the first entry's
 * account in a chain of one (so nothing cached before chains changes meaning), `''` or
 * `anonymous` when every entry says so, else a hash of every entry's origin and account: what one
 * combination of upstream accounts confirmed never vouches for another.
 */
export class ChainRepository implements RemoteRepository {
  readonly account: string;
  private readonly repos: RemoteRepository[];

  constructor(
    private readonly chain: ChainRemote,
    readonly name: string,
    credentials: Credentials | null | undefined,
  ) {
    // A client's own credentials belong to the registry itself (the first entry), never to a
    // mirror; the mirrors are asked anonymously for that client.
    this.repos = chain.entries.map((e, i) => e.remote.repository(name, credentials === undefined || credentials === null || i === 0 ? credentials : null));
    const ids = this.repos.map((r) => r.account);
    if (ids.length === 1 || (ids.every((id) => id === ids[0]) && (ids[0] === '' || ids[0] === 'anonymous'))) this.account = ids[0]!;
    else this.account = 'c' + createHash('sha256').update(chain.entries.map((e, i) => `${e.origin}\0${ids[i]}`).join('\n')).digest('hex').slice(0, 12);
  }

  get registry(): string {
    return this.chain.name;
  }

  statBlob(digest: string, opts: CallOptions = {}): Promise<BlobStat | null> {
    return this.chain.call('content', `blob ${this.name}@${digest}`, opts.signal, (i) => this.repos[i]!.statBlob(digest, opts), { nullIsNotFound: true });
  }

  openBlob(digest: string, opts: OpenBlobOptions = {}): Promise<RemoteBlob> {
    return this.chain.call('content', `blob ${this.name}@${digest}`, opts.signal, (i) => this.repos[i]!.openBlob(digest, opts));
  }

  headManifest(reference: string, accept: readonly string[], opts: CallOptions = {}): Promise<ManifestStat | null> {
    const scope: Scope = isDigest(reference) ? 'content' : 'tags';
    return this.chain.call(scope, `manifest ${this.name}${scope === 'content' ? '@' : ':'}${reference}`, opts.signal, (i) => this.repos[i]!.headManifest(reference, accept, opts), { nullIsNotFound: true });
  }

  getManifest(reference: string, accept: readonly string[], opts: CallOptions = {}): Promise<RemoteManifest> {
    const scope: Scope = isDigest(reference) ? 'content' : 'tags';
    return this.chain.call(scope, `manifest ${this.name}${scope === 'content' ? '@' : ':'}${reference}`, opts.signal, (i) => this.repos[i]!.getManifest(reference, accept, opts));
  }

  listTags(opts: ListTagsOptions = {}): Promise<string[]> {
    return this.chain.call('tags', `the tag list of ${this.name}`, opts.signal, (i) => this.repos[i]!.listTags(opts));
  }

  listReferrers(digest: string, opts: ListReferrersOptions = {}): Promise<ReferrersAnswer> {
    return this.chain.call('tags', `the referrers of ${this.name}@${digest}`, opts.signal, (i) => this.repos[i]!.listReferrers(digest, opts));
  }
}

/**
 * The {@link RemoteRegistry} of one registry's chain. Build it with {@link ChainRemotes} (from
 * the config) or directly from entries (tests).
 */
export class ChainRemote implements RemoteRegistry {
  constructor(
    readonly name: string,
    readonly entries: readonly ChainEntry[],
    private readonly offline: OfflineSwitch,
    private readonly observers: ChainObservers,
  ) {
    if (entries.length === 0) throw new RangeError(`registry ${name}: a chain needs at least one upstream`);
  }

  repository(name: string, credentials?: Credentials | null): RemoteRepository {
    return new ChainRepository(this, name, credentials);
  }

  /**
   * Asks the entries of `scope` in order until one answers (see the file comment).
   * @throws UpstreamOfflineError in offline mode (nothing asked); UpstreamUnavailableError when
   *   every entry of the scope is skipped; else the answer that ended the chain: a 401/403 (or
   *   other client error) from the first entry asked, the first entry's failure when every entry
   *   failed, the first 404 when every entry said not found.
   */
  async call<T>(scope: Scope, what: string, signal: AbortSignal | undefined, ask: (index: number) => Promise<T>, opts: { nullIsNotFound?: boolean } = {}): Promise<T> {
    // Reached only for what the cache does not hold (or is revalidating): say what is missing.
    if (this.offline.isOffline(this.name)) throw new UpstreamOfflineError(this.name, `${what} is not cached`);
    if (this.entries.length === 1) return ask(0);
    const indexes = this.entries.flatMap((e, i) => (scope === 'content' || e.tags ? [i] : []));
    let notFound: { value: T } | { err: unknown } | undefined;
    let failure: unknown;
    const skipped: string[] = [];
    let asked = 0;
    for (const [n, i] of indexes.entries()) {
      const entry = this.entries[i]!;
      const last = n === indexes.length - 1;
      const moveOn = (reason: FailoverReason): void => {
        if (!last) this.observers.metrics.upstreamFailovers.inc({ registry: this.name, reason });
      };
      if (entry.health && !entry.health.available()) {
        skipped.push(entry.origin);
        moveOn('skipped');
        continue;
      }
      asked++;
      let verdict: Verdict;
      try {
        const value = await ask(i);
        entry.health?.succeeded();
        if (!(opts.nullIsNotFound && value === null && scope === 'content')) return value;
        notFound ??= { value };
        moveOn('not_found');
        continue;
      } catch (err) {
        if (isAbort(err, signal)) throw err;
        verdict = this.judge(entry, scope, err);
      }
      if (verdict.kind === 'answer') throw verdict.err;
      if (verdict.kind === 'stop') {
        // An access decision (or a client error) of the first entry asked is the answer; after a
        // failure further up the chain, that failure is (a cached copy may be served for it).
        throw asked === 1 || failure === undefined ? verdict.err : failure;
      }
      if (verdict.kind === 'not-found') notFound ??= { err: verdict.err };
      else failure ??= verdict.err;
      moveOn(verdict.kind === 'not-found' ? 'not_found' : verdict.reason);
    }
    if (failure !== undefined) throw failure;
    if (skipped.length > 0) {
      const which = scope === 'tags' ? 'every upstream trusted for tags' : 'every upstream';
      throw new UpstreamUnavailableError(this.name, `${which} is skipped after failing (${skipped.join(', ')}); see pullthrough_upstream_up`);
    }
    if (notFound && 'value' in notFound) return notFound.value;
    throw notFound!.err;
  }

  /** How an entry's failure counts, and what it does to the entry's health. */
  private judge(entry: ChainEntry, scope: Scope, err: unknown): Verdict {
    if (err instanceof UpstreamUnavailableError) {
      entry.health?.failed(err.message);
      return { kind: 'next', reason: 'unavailable', err };
    }
    if (err instanceof UpstreamStatusError) {
      if (err.status === 429) {
        entry.health?.rateLimited(err.retryAfter);
        return { kind: 'next', reason: 'rate_limited', err };
      }
      if (err.status >= 500) {
        entry.health?.failed(`answered ${err.status}`);
        return { kind: 'next', reason: 'status_5xx', err };
      }
      entry.health?.succeeded();
      // Not found by digest: another entry may hold it. A tag's 404 is the registry's answer.
      if (err.status === 404) return scope === 'content' ? { kind: 'not-found', err } : { kind: 'answer', err };
      return { kind: 'stop', err };
    }
    // Bytes that contradict their digest (or are no manifest): a bad mirror, not a missing image.
    if (scope === 'content' && (err instanceof UpstreamIntegrityError || err instanceof UpstreamManifestInvalidError || err instanceof UpstreamTooLargeError)) {
      return { kind: 'next', reason: 'integrity', err };
    }
    return { kind: 'stop', err };
  }

  /** Stops the entries' health timers. The entries' clients are closed by whoever made them. */
  close(): void {
    for (const e of this.entries) e.health?.close();
  }
}

/** Builds one entry's health, reporting to the log and `pullthrough_upstream_up`. */
export function entryHealth(registry: string, origin: string, opts: HealthOptions, probe: (signal: AbortSignal) => Promise<ProbeResult>, observers: ChainObservers, clock: Clock = systemClock): UpstreamHealth {
  const { metrics, log } = observers;
  const labels = { registry, upstream: origin };
  metrics.upstreamUp.set(labels, 1);
  return new UpstreamHealth(
    opts,
    probe,
    {
      skipped(reason, forMs) {
        metrics.upstreamUp.set(labels, 0);
        log.warn('upstream skipped', { registry, upstream: origin, reason, seconds: Math.round(forMs / 1000) });
      },
      takenBack(how) {
        metrics.upstreamUp.set(labels, 1);
        log.warn('upstream taken back', { registry, upstream: origin, after: how });
      },
    },
    clock,
  );
}

/**
 * `GET /v2/` on an entry: any answer but 5xx or 429 means it is there (401 included: it asks for
 * credentials, so it answers).
 */
export async function probeUpstream(up: RegistryUpstream, signal: AbortSignal): Promise<ProbeResult> {
  try {
    const res = await up.request({ method: 'GET', path: '/v2/', kind: 'base', signal });
    res.body.destroy();
    if (res.status === 429) return { alive: false, reason: 'answered 429', retryAfter: res.headers['retry-after'] ?? '' };
    if (res.status >= 500) return { alive: false, reason: `answered ${res.status}` };
    return { alive: true };
  } catch (err) {
    if (err instanceof UpstreamStatusError && err.status < 500 && err.status !== 429) return { alive: true }; // its token service answered
    return { alive: false, reason: (err as Error).message };
  }
}

/** The RegistryConfig a chain entry's client reads: the registry's, with the entry's URL, credentials and CA. */
export function entryRegistryConfig(registry: RegistryConfig, e: UpstreamEntryConfig): RegistryConfig {
  return {
    ...registry,
    upstream: e.url,
    username: e.username,
    password: e.password,
    ca: e.ca,
    credentials: e.credentials,
    allowPrivateRedirects: e.allowPrivateRedirects,
    upstreams: [e],
  };
}

/** What {@link ChainRemotes} needs. */
export interface ChainRemotesOptions extends ChainObservers {
  /** The first entry's client comes from here (shared with the push relay and token relay). */
  readonly pool: UpstreamPool;
  readonly settings: UpstreamSettings;
  readonly offline: OfflineSwitch;
  readonly lookup?: LookupFunction;
  readonly clock?: Clock;
}

/**
 * One {@link ChainRemote} per configured registry, made on first use: the remote server.ts hands
 * the cache (`for(registry)`).
 */
export class ChainRemotes implements RemoteRegistries {
  private readonly chains = new Map<string, ChainRemote>();
  /** Clients of entries after the first (the pool owns the first ones). */
  private readonly own: RegistryUpstream[] = [];

  constructor(private readonly o: ChainRemotesOptions) {}

  /** The chain of a configured registry. */
  for(registry: RegistryConfig): ChainRemote {
    let chain = this.chains.get(registry.name);
    if (!chain) {
      const several = registry.upstreams.length > 1;
      const entries = registry.upstreams.map((e, i): ChainEntry => {
        let up: RegistryUpstream;
        if (i === 0) up = this.o.pool.for(registry);
        else {
          up = new RegistryUpstream(entryRegistryConfig(registry, e), this.o.settings, this.o.metrics, this.o.log, this.o.lookup);
          this.own.push(up);
        }
        const origin = new URL(e.url).origin;
        // Offline means no connection at all, probes included: the entry stays skipped until then.
        const probe = (signal: AbortSignal): Promise<ProbeResult> => (this.o.offline.isOffline(registry.name) ? Promise.resolve({ alive: false, reason: 'offline mode' }) : probeUpstream(up, signal));
        const health = several ? entryHealth(registry.name, origin, this.o.settings.upstream.health, probe, this.o, this.o.clock) : undefined;
        return { origin, tags: e.tags, remote: new RegistryRemote(up), health };
      });
      chain = new ChainRemote(registry.name, entries, this.o.offline, this.o);
      this.chains.set(registry.name, chain);
    }
    return chain;
  }

  async close(): Promise<void> {
    for (const c of this.chains.values()) c.close();
    await Promise.all(this.own.map((up) => up.close()));
  }
}
