import { rm } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { Config } from '../config/index.js';
import { OciError } from '../oci/errors.js';
import { digestWithAlgorithmOf, parseDigest } from '../oci/digest.js';
import { ALL_MANIFEST_TYPES, isAccepted, isIndexType, upstreamAccept } from '../oci/media-types.js';
import type { ManifestReference } from '../oci/reference.js';
import type { BlobStore, ByteRange } from '../storage/blob-store.js';
import type { MetadataStore, TagRecord } from '../storage/metadata-store.js';
import { BlobNotFoundError, StorageUnavailableError } from '../storage/errors.js';
import { blobKey } from '../storage/keys.js';
import type { UpstreamPool, RegistryUpstream, UpstreamResponse } from '../upstream/registry-upstream.js';
import { readLimited, upstreamStatusError } from '../upstream/registry-upstream.js';
import { UpstreamIntegrityError, UpstreamManifestInvalidError, UpstreamStatusError, UpstreamTagListError, UpstreamUnavailableError } from '../upstream/errors.js';
import type { Metrics } from '../observability/metrics.js';
import type { Logger } from '../observability/logger.js';
import { SingleFlight } from '../util/single-flight.js';
import { BlobFill } from './blob-fill.js';
import { TagPolicy } from './tag-policy.js';
import type { Evictor } from './evictor.js';
import { checkedMediaType, headMediaType, manifestDigestOf } from './manifest-response.js';
import { isServedManifestType } from '../oci/manifest-check.js';
import { referencedBlobs } from './manifest-refs.js';
import { FillLease } from './fill-lease.js';
import { CacheBypass } from './bypass.js';
import type { DownloadTracker } from './downloads.js';
import { fetchUpstreamTags, pageTags, sortTags } from './tag-list.js';
import type { BlobHandle, ManifestResult, PassThroughResult, TagListResult, Target } from './results.js';

/** distribution's limit for manifests; also what keeps a hostile upstream from filling memory. */
export const MAX_MANIFEST_BYTES = 4 << 20;
const MAX_LIST_BYTES = 4 << 20;
/** How long a request waits for a blob another replica is downloading. */
const FOREIGN_FILL_WAIT_MS = 5 * 60_000;

export interface PullThroughDeps {
  readonly config: Config;
  readonly blobs: BlobStore;
  readonly meta: MetadataStore;
  readonly upstreams: UpstreamPool;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Size-capped LRU eviction, when `cache.maxSize` is set. */
  readonly evictor?: Evictor;
  /** Downloads in progress, for the admin API and status page. */
  readonly downloads?: DownloadTracker;
}

/**
 * Whether an upstream failure allows serving cached content instead: unreachable, 429/5xx, or
 * an answer that is no manifest (a captive portal's or proxy's HTML page is an outage too).
 */
function isTransient(err: unknown): err is UpstreamUnavailableError | UpstreamStatusError | UpstreamManifestInvalidError {
  return err instanceof UpstreamUnavailableError || (err instanceof UpstreamStatusError && err.transient) || err instanceof UpstreamManifestInvalidError;
}

/** What a stale answer says about the upstream failure that caused it. */
function staleReasonOf(err: unknown): string {
  return err instanceof UpstreamStatusError ? `upstream answered ${err.status}` : (err as Error).message;
}

/**
 * The pull-through policy (see README "Cache semantics"): content by digest is immutable and
 * served locally; tags are revalidated with an upstream HEAD and fetched with GET only when the
 * digest changed; stale manifests are served when upstream fails; one upstream download per blob
 * however many clients want it; content is served under a repository only once the upstream has
 * confirmed that repository holds it.
 */
export class PullThroughCache {
  private readonly fills = new Map<string, BlobFill>();
  private readonly fillStarts = new SingleFlight<BlobFill | null>();
  private readonly manifestFlights = new SingleFlight<ManifestResult>();
  private readonly confirmFlights = new SingleFlight<void>();
  private readonly tagListFlights = new SingleFlight<string[]>();
  private readonly tagPolicy: TagPolicy;
  /** Answers without the cache while a store is unreachable. */
  private readonly bypass: CacheBypass;
  /** While a cached blob streams, its last access is refreshed this often so no replica evicts it. */
  private readonly touchWhileReadingMs: number;

  constructor(private readonly d: PullThroughDeps) {
    this.tagPolicy = new TagPolicy(d.config);
    this.bypass = new CacheBypass(d);
    this.touchWhileReadingMs = Math.floor(d.config.cache.evictionGrace / 3);
  }

  /** True when `err` says the metadata store (not the blob store, not upstream) is unreachable. */
  private metadataDown(err: unknown): err is StorageUnavailableError {
    return err instanceof StorageUnavailableError && err.backend === this.d.meta.kind;
  }

  /**
   * Runs `cached`; when the metadata store turns out unreachable on the way, answers with
   * `bypass` instead (see CacheBypass: confirmed with upstream, verified, nothing stored).
   */
  private async orBypass<T>(cached: () => Promise<T>, bypass: () => Promise<T>): Promise<T> {
    try {
      return await cached();
    } catch (err) {
      if (!this.metadataDown(err)) throw err;
      this.bypass.note('metadata_unavailable', err);
      return bypass();
    }
  }

  private up(t: Target): RegistryUpstream {
    return this.d.upstreams.for(t.registry);
  }

  /**
   * The namespace under which what upstream told us about `t` is kept (links, tag records, shared
   * in-flight requests): the registry name, plus the upstream account the repository maps to when
   * it has one of its own. What one account was shown never vouches for a request made with another.
   */
  private space(t: Target): string {
    const id = this.up(t).identityFor(t.repo, t.credentials);
    return id ? `${t.registry.name}#${id}` : t.registry.name;
  }

  /**
   * Makes sure upstream has confirmed that `t.repo` holds `digest`, asking with a HEAD if it has
   * not yet. This is what keeps content fetched for one repository from being served under
   * another the client may not read.
   * @throws OciError / UpstreamStatusError when upstream says no; UpstreamUnavailableError.
   */
  private async confirm(t: Target, digest: string, kind: 'blob' | 'manifest'): Promise<void> {
    if (await this.d.meta.isLinked(this.space(t), t.repo, digest)) return;
    await this.confirmFlights.run(`${this.space(t)}/${t.repo}@${digest}`, async () => {
      const res = await this.up(t).request({
        method: 'HEAD',
        path: `/v2/${t.repo}/${kind}s/${digest}`,
        repo: t.repo,
        kind,
        credentials: t.credentials,
        headers: kind === 'manifest' ? { accept: ALL_MANIFEST_TYPES.join(', ') } : {},
      });
      res.body.destroy();
      if (res.status !== 200) throw await upstreamStatusError(t.registry.name, res);
      await this.d.meta.link(this.space(t), t.repo, digest);
    });
  }

  // ---------------------------------------------------------------- manifests

  /**
   * A manifest by tag or digest. `accepted` is the client's Accept set (null: anything); `head`
   * avoids fetching a body upstream just to answer a HEAD. While the metadata store is
   * unreachable it comes verified from upstream, uncached (CacheBypass). Whatever upstream sends
   * is served and cached only when it is a manifest (oci/manifest-check.ts).
   * @throws OciError, UpstreamStatusError, UpstreamUnavailableError, UpstreamIntegrityError,
   *   UpstreamManifestInvalidError
   */
  async manifest(t: Target, ref: ManifestReference, accepted: Set<string> | null, head: boolean): Promise<ManifestResult> {
    const m = await this.orBypass(
      () => (ref.kind === 'digest' ? this.manifestByDigest(t, ref.digest, head) : this.manifestByTag(t, ref.tag, accepted, head)),
      () => this.bypass.manifest(t, ref, accepted, head),
    );
    // A client that got an image manifest fetches its blobs next: they count as used now, so an
    // eviction pass set off by one of its layers landing does not evict another it has yet to ask for.
    if (m.body && m.cache !== 'pass') {
      const now = Date.now();
      for (const d of referencedBlobs(m.body)) void this.d.meta.touchBlob(d, now).catch(() => {});
    }
    return m;
  }

  private async manifestByDigest(t: Target, digest: string, head: boolean): Promise<ManifestResult> {
    const rec = await this.d.meta.getManifest(digest);
    // A record of another media type was stored before manifests were checked: fetched again.
    if (rec && isServedManifestType(rec.mediaType)) {
      await this.confirm(t, digest, 'manifest');
      return { digest, mediaType: rec.mediaType, size: rec.body.length, body: rec.body, cache: 'hit' };
    }
    return this.manifestFlights.run(`${this.space(t)}/${t.repo}@${digest}|${head}`, async () => {
      const res = await this.up(t).request({
        method: head ? 'HEAD' : 'GET',
        path: `/v2/${t.repo}/manifests/${digest}`,
        repo: t.repo,
        kind: 'manifest',
        credentials: t.credentials,
        headers: { accept: ALL_MANIFEST_TYPES.join(', ') },
      });
      if (res.status !== 200) throw await upstreamStatusError(t.registry.name, res);
      if (head) {
        res.body.destroy();
        return { digest, mediaType: headMediaType(t.registry.name, res), size: Number(res.headers['content-length'] ?? 0), cache: 'pass' };
      }
      const body = await this.readManifest(t, res);
      const mediaType = checkedMediaType(t.registry.name, res, body);
      const got = digestWithAlgorithmOf(parseDigest(digest), body);
      if (got !== digest) throw new UpstreamIntegrityError(t.registry.name, `manifest ${digest} hashes to ${got}`);
      await this.d.meta.putManifest(digest, { mediaType, body });
      await this.d.meta.link(this.space(t), t.repo, digest);
      return { digest, mediaType, size: body.length, body, cache: 'miss' };
    });
  }

  private async readManifest(t: Target, res: UpstreamResponse): Promise<Buffer> {
    try {
      return await readLimited(res.body, MAX_MANIFEST_BYTES);
    } catch (err) {
      throw new UpstreamIntegrityError(t.registry.name, `manifest unreadable: ${(err as Error).message}`);
    }
  }

  /**
   * Tag records are kept per Accept class: clients that cannot take an index may get a different
   * manifest for the same tag from upstream, and must not flip the record others rely on.
   */
  private static tagKey(tag: string, accepted: Set<string> | null): string {
    const takesIndex = accepted === null || [...accepted].some(isIndexType);
    return takesIndex ? tag : `${tag}~single`;
  }

  private async manifestByTag(t: Target, tag: string, accepted: Set<string> | null, head: boolean): Promise<ManifestResult> {
    const key = PullThroughCache.tagKey(tag, accepted);
    const timing = this.tagPolicy.timingFor(tag);
    const rec = await this.d.meta.getTag(this.space(t), t.repo, key);
    const age = rec ? Date.now() - rec.checkedAt : Infinity;
    if (rec && age < timing.revalidateMs && isAccepted(accepted, rec.mediaType)) {
      const m = await this.d.meta.getManifest(rec.digest);
      if (m && isServedManifestType(m.mediaType)) return { digest: rec.digest, mediaType: m.mediaType, size: m.body.length, body: m.body, cache: 'hit' };
    }
    const flightKey = `${this.space(t)}/${t.repo}:${key}|${head}|${accepted ? [...accepted].sort().join(',') : '*'}`;
    return this.manifestFlights.run(flightKey, async () => {
      const staleUsable = rec !== null && age <= timing.revalidateMs + timing.staleIfErrorMs && isAccepted(accepted, rec.mediaType);
      try {
        return await this.revalidateTag(t, tag, key, accepted, head, rec, staleUsable);
      } catch (err) {
        if (!isTransient(err) || !rec || !staleUsable) throw err;
        const m = await this.d.meta.getManifest(rec.digest);
        if (!m || !isServedManifestType(m.mediaType)) throw err;
        const reason = staleReasonOf(err);
        this.d.metrics.staleServed.inc({ registry: t.registry.name });
        this.d.log.warn('serving stale manifest', { registry: t.registry.name, repo: t.repo, tag, digest: rec.digest, reason, ageSeconds: Math.round(age / 1000) });
        return { digest: rec.digest, mediaType: m.mediaType, size: m.body.length, body: m.body, cache: 'stale', staleReason: reason };
      }
    });
  }

  private async revalidateTag(t: Target, tag: string, key: string, accepted: Set<string> | null, head: boolean, rec: TagRecord | null, staleUsable: boolean): Promise<ManifestResult> {
    const up = this.up(t);
    const path = `/v2/${t.repo}/manifests/${tag}`;
    const accept = upstreamAccept(accepted);
    // HEAD first: Docker Hub does not count HEADs against its pull limit.
    const h = await up.request({ method: 'HEAD', path, repo: t.repo, kind: 'manifest', credentials: t.credentials, headers: { accept } });
    h.body.destroy();
    if (h.status === 200) {
      const digest = h.headers['docker-content-digest'];
      if (digest) {
        const cached = await this.d.meta.getManifest(digest);
        if (cached && isServedManifestType(cached.mediaType)) {
          await this.recordTag(t, key, digest, cached.mediaType, cached.body.length);
          return { digest, mediaType: cached.mediaType, size: cached.body.length, body: cached.body, cache: rec?.digest === digest ? 'revalidated' : 'miss' };
        }
        if (head) return { digest, mediaType: headMediaType(t.registry.name, h), size: Number(h.headers['content-length'] ?? 0), cache: 'pass' };
      }
    } else if (staleUsable && (h.status === 429 || h.status >= 500)) {
      // A cached copy will be served; no need to ask a failing upstream again.
      throw await upstreamStatusError(t.registry.name, h);
    }
    // Otherwise a GET: it fetches what changed, or (after a HEAD error, which has no body)
    // fetches the upstream's own error message for the client.

    const res = await up.request({ method: 'GET', path, repo: t.repo, kind: 'manifest', credentials: t.credentials, headers: { accept } });
    if (res.status !== 200) throw await upstreamStatusError(t.registry.name, res);
    const body = await this.readManifest(t, res);
    const mediaType = checkedMediaType(t.registry.name, res, body);
    const claimed = res.headers['docker-content-digest'];
    const digest = manifestDigestOf(body, claimed);
    if (claimed && claimed !== digest) throw new UpstreamIntegrityError(t.registry.name, `${tag}: Docker-Content-Digest ${claimed}, body hashes to ${digest}`);
    await this.d.meta.putManifest(digest, { mediaType, body });
    await this.recordTag(t, key, digest, mediaType, body.length);
    return { digest, mediaType, size: body.length, body, cache: 'miss' };
  }

  private async recordTag(t: Target, key: string, digest: string, mediaType: string, size: number): Promise<void> {
    await this.d.meta.link(this.space(t), t.repo, digest);
    await this.d.meta.putTag(this.space(t), t.repo, key, { digest, mediaType, size, checkedAt: Date.now() });
  }

  // ---------------------------------------------------------------- blobs

  /**
   * A blob: from storage when cached (after confirming the repository), else from a shared upstream
   * download. For HEAD, a miss is answered from an upstream HEAD without downloading. While the
   * metadata store is unreachable, or the blob store cannot read a cached blob, it is served
   * without the cache (CacheBypass): confirmed upstream, verified, nothing written.
   * @throws OciError, UpstreamStatusError, UpstreamUnavailableError
   */
  async blob(t: Target, digest: string, head: boolean): Promise<BlobHandle> {
    return this.orBypass(
      () => this.cachedBlob(t, digest, head),
      () => this.bypass.blob(t, digest, head),
    );
  }

  private async cachedBlob(t: Target, digest: string, head: boolean): Promise<BlobHandle> {
    const rec = await this.d.meta.getBlob(digest);
    if (rec) {
      await this.confirm(t, digest, 'blob');
      void this.d.meta.touchBlob(digest, Date.now()).catch(() => {});
      const redirectUrl = this.d.blobs.redirectUrl?.bind(this.d.blobs);
      return {
        digest,
        size: rec.size,
        cache: 'hit',
        redirect: redirectUrl ? () => redirectUrl(blobKey(digest)).catch(() => null) : undefined,
        open: async (range) => {
          try {
            return this.held(digest, await this.d.blobs.read(blobKey(digest), range));
          } catch (err) {
            if (err instanceof StorageUnavailableError && err.backend === this.d.blobs.kind) {
              // The bytes are unreadable for now; the repository is confirmed: relay from upstream.
              this.bypass.note('blob_store_unavailable', err);
              return (await this.bypass.fromUpstream(t, digest)).open(range);
            }
            if (!(err instanceof BlobNotFoundError)) throw err;
            // Metadata outlived the bytes (evicted elsewhere, lost volume): forget and refetch.
            this.d.log.warn('blob record without bytes; fetching again', { digest });
            await this.d.meta.deleteBlob(digest);
            return (await this.fromUpstream(t, digest)).open(range);
          }
        },
      };
    }
    if (head) {
      const fill = this.fills.get(digest);
      if (fill?.size !== undefined && fill.repos.has(`${this.space(t)}/${t.repo}`)) {
        return { digest, size: fill.size, cache: 'miss', open: () => Promise.reject(new Error('HEAD has no body')) };
      }
      const res = await this.up(t).request({ method: 'HEAD', path: `/v2/${t.repo}/blobs/${digest}`, repo: t.repo, kind: 'blob', credentials: t.credentials });
      res.body.destroy();
      if (res.status !== 200) throw await upstreamStatusError(t.registry.name, res);
      const len = res.headers['content-length'];
      return { digest, size: len && /^\d+$/.test(len) ? Number(len) : undefined, cache: 'pass', open: () => Promise.reject(new Error('HEAD has no body')) };
    }
    return this.fromUpstream(t, digest);
  }

  /** Marks a cached blob as in use (not evictable) for as long as `stream` is open. */
  private held(digest: string, stream: Readable): Readable {
    const release = this.d.evictor?.hold(digest);
    const timer = setInterval(() => void this.d.meta.touchBlob(digest, Date.now()).catch(() => {}), this.touchWhileReadingMs);
    timer.unref();
    stream.once('close', () => {
      clearInterval(timer);
      release?.();
    });
    return stream;
  }

  private async fromUpstream(t: Target, digest: string): Promise<BlobHandle> {
    let fill = this.fills.get(digest);
    if (fill && !fill.repos.has(`${this.space(t)}/${t.repo}`)) {
      await this.confirm(t, digest, 'blob');
      fill.repos.add(`${this.space(t)}/${t.repo}`);
    }
    fill ??= (await this.fillStarts.run(digest, () => this.startFill(t, digest))) ?? undefined;
    if (!fill) return this.waitForForeignFill(t, digest);
    if (!fill.repos.has(`${this.space(t)}/${t.repo}`)) {
      // Joined a fill another repository started while we were deciding.
      await this.confirm(t, digest, 'blob');
      fill.repos.add(`${this.space(t)}/${t.repo}`);
    }
    const { size } = await fill.started;
    const f = fill;
    return {
      digest,
      size,
      cache: 'miss',
      open: async (range?: ByteRange): Promise<Readable> => {
        if (this.fills.get(digest) === f) return f.reader(range);
        // The fill finished between answering and reading: the bytes are in storage now.
        await f.done;
        return this.held(digest, await this.d.blobs.read(blobKey(digest), range));
      },
    };
  }

  /** Starts a download, or returns null when another replica holds the download lease. */
  private async startFill(t: Target, digest: string): Promise<BlobFill | null> {
    const existing = this.fills.get(digest);
    if (existing) return existing;
    const lock = await FillLease.acquire(this.d.meta, `fill:${digest}`, this.d.config.cache.fillLease, this.d.metrics, this.d.log);
    if (!lock) return null;
    // Another replica may have finished between our metadata read and taking the lease.
    const landed = await this.d.meta.getBlob(digest).catch(async (err: unknown) => {
      await lock.release();
      throw err;
    });
    if (landed) {
      await lock.release();
      return null;
    }
    const registry = t.registry.name;
    const progress = this.d.downloads?.start({ digest, registry, repo: t.repo });
    const fill = new BlobFill(
      {
        spoolDir: this.d.config.paths.spool,
        fillTimeoutMs: this.d.config.upstream.fillTimeout,
        onBytes: (n) => {
          this.d.metrics.upstreamBytes.inc({ registry }, n);
          progress?.add(n);
        },
        commit: (dg, path, size, repos) => this.commit(dg, path, size, repos),
      },
      this.up(t),
      t.repo,
      `${this.space(t)}/${t.repo}`,
      digest,
      t.credentials,
    );
    this.fills.set(digest, fill);
    this.d.metrics.fillsInFlight.inc();
    fill.started.then(({ size }) => progress?.setTotal(size), () => {});
    fill.done
      .catch((err: unknown) => {
        const reason =
          err instanceof UpstreamIntegrityError ? 'integrity'
          : err instanceof UpstreamStatusError ? `status_${err.status}`
          : err instanceof UpstreamUnavailableError ? 'unavailable'
          : err instanceof StorageUnavailableError ? 'storage_unavailable'
          : 'other';
        this.d.metrics.fillFailures.inc({ reason });
        this.d.log.warn('blob download failed', { registry, repo: t.repo, digest, reason, error: (err as Error).message });
      })
      .finally(() => {
        this.d.metrics.fillsInFlight.dec();
        progress?.end();
        if (this.fills.get(digest) === fill) this.fills.delete(digest);
        fill.release();
        void lock.release();
      });
    return fill;
  }

  private async commit(digest: string, path: string, size: number, repos: ReadonlySet<string>): Promise<void> {
    try {
      await this.d.blobs.putFile(blobKey(digest), path, size);
    } catch (err) {
      await rm(path, { force: true });
      throw err;
    }
    // Links first: replicas waiting for the record then serve it without asking upstream again.
    for (const r of repos) {
      const i = r.indexOf('/');
      await this.d.meta.link(r.slice(0, i), r.slice(i + 1), digest);
    }
    await this.d.meta.putBlob(digest, { size, lastAccess: Date.now() });
    // The shared total, which other replicas and workers add to as well: a gauge that only added
    // this process's downloads to the total it read at start would drift apart between them.
    const total = await this.d.meta.totalBlobSize().catch(() => null);
    if (total !== null) this.d.metrics.cacheSizeBytes.set(total);
    else this.d.metrics.cacheSizeBytes.inc(size);
    void this.d.evictor?.trigger();
  }

  /** Another replica is downloading: wait (bounded) for it to land, or take over if it died. */
  private async waitForForeignFill(t: Target, digest: string): Promise<BlobHandle> {
    const deadline = Date.now() + Math.min(FOREIGN_FILL_WAIT_MS, this.d.config.upstream.fillTimeout);
    let delay = 100;
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 1000);
      if (await this.d.meta.getBlob(digest)) {
        this.d.metrics.fillWaits.inc({ outcome: 'landed' });
        return this.cachedBlob(t, digest, false);
      }
      const fill = this.fills.get(digest) ?? (await this.fillStarts.run(digest, () => this.startFill(t, digest)));
      if (fill) {
        // The lease was free again: the other replica stopped (died, or its download failed).
        this.d.metrics.fillWaits.inc({ outcome: 'took_over' });
        return this.fromUpstream(t, digest);
      }
    }
    this.d.metrics.fillWaits.inc({ outcome: 'gave_up' });
    throw new OciError('UNAVAILABLE', 'blob is being fetched by another replica; try again', { digest }, { 'retry-after': '5' });
  }

  // ---------------------------------------------------------------- tags, referrers

  /**
   * The repository's tag list as the spec wants it: the whole upstream list (over all its Link
   * pages, at most `upstream.tagListMaxSize`), sorted lexically, paged here by `n` and `last`.
   * Each good list is kept; when upstream fails (unreachable, 429/5xx, no usable list) the last
   * one is served stale for up to the default `staleIfError`, else the tags pullthrough has seen.
   * @throws UpstreamStatusError, UpstreamUnavailableError, UpstreamTagListError
   */
  async tags(t: Target, query: { n?: number; last?: string }, clientName: string): Promise<TagListResult> {
    const answer = (sorted: readonly string[], cache: TagListResult['cache'], staleReason?: string): TagListResult => {
      const page = pageTags(sorted, query);
      return { body: Buffer.from(JSON.stringify({ name: clientName, tags: page.tags })), next: page.next, cache, staleReason };
    };
    const space = this.space(t);
    let sorted: string[];
    try {
      sorted = await this.tagListFlights.run(`${space}/${t.repo}`, async () => {
        const list = sortTags(await fetchUpstreamTags(this.up(t), t.repo, t.credentials, this.d.config.upstream.tagListMaxSize));
        await this.d.meta.putTagList(space, t.repo, { tags: list, fetchedAt: Date.now() }).catch((err: unknown) => {
          // Without the metadata store the list is still served, only not kept.
          if (!this.metadataDown(err)) throw err;
          this.bypass.note('metadata_unavailable', err);
        });
        return list;
      });
    } catch (err) {
      if (!isTransient(err) && !(err instanceof UpstreamTagListError)) throw err;
      // Without the metadata store there is nothing stale to offer: the upstream's failure stands.
      const rec = await this.d.meta.getTagList(space, t.repo).catch(() => Promise.reject(err));
      let stale: readonly string[] | undefined;
      if (rec && Date.now() - rec.fetchedAt <= this.tagPolicy.listTiming().staleIfErrorMs) stale = rec.tags;
      else if (!rec) {
        // Never listed before: the tags pullthrough has fetched, without its per-Accept records.
        const seen = (await this.d.meta.listTags(space, t.repo).catch(() => Promise.reject(err))).filter((x) => !x.includes('~'));
        if (seen.length) stale = seen;
      }
      if (!stale) throw err;
      const reason = staleReasonOf(err);
      this.d.metrics.staleServed.inc({ registry: t.registry.name });
      this.d.log.warn('serving stale tag list', { registry: t.registry.name, repo: t.repo, reason, ageSeconds: rec ? Math.round((Date.now() - rec.fetchedAt) / 1000) : undefined });
      return answer(stale, 'stale', reason);
    }
    return answer(sorted, 'pass');
  }

  /**
   * The upstream's referrers index, passed through (a 404 from an upstream without the referrers
   * API is passed on too, so clients fall back to the tag schema as they would upstream).
   */
  async referrers(t: Target, digest: string, artifactType: string | undefined): Promise<PassThroughResult> {
    const qs = artifactType ? `?${new URLSearchParams({ artifactType })}` : '';
    const res = await this.up(t).request({ method: 'GET', path: `/v2/${t.repo}/referrers/${digest}${qs}`, repo: t.repo, kind: 'referrers', credentials: t.credentials });
    if (res.status !== 200) throw await upstreamStatusError(t.registry.name, res);
    const body = await readLimited(res.body, MAX_LIST_BYTES).catch((err: Error) => {
      throw new UpstreamIntegrityError(t.registry.name, `referrers unreadable: ${err.message}`);
    });
    const headers: Record<string, string> = { 'content-type': res.headers['content-type'] ?? 'application/vnd.oci.image.index.v1+json' };
    if (res.headers['oci-filters-applied']) headers['oci-filters-applied'] = res.headers['oci-filters-applied'];
    return { body, headers };
  }

  /** Blob downloads in progress on this replica (for draining). */
  get inFlight(): number {
    return this.fills.size + this.bypass.inFlight;
  }

  /** Waits for downloads in progress to finish (or fail). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.fills.values()].map((f) => f.done));
  }
}
