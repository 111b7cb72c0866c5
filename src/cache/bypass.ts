import { rm } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { Config } from '../config/index.js';
import { parseDigest, digestWithAlgorithmOf } from '../oci/digest.js';
import { ALL_MANIFEST_TYPES, upstreamAccept } from '../oci/media-types.js';
import type { ManifestReference } from '../oci/reference.js';
import type { BlobStore, ByteRange } from '../storage/blob-store.js';
import { blobKey } from '../storage/keys.js';
import type { UpstreamPool, RegistryUpstream } from '../upstream/registry-upstream.js';
import { readLimited, upstreamStatusError } from '../upstream/registry-upstream.js';
import { UpstreamIntegrityError } from '../upstream/errors.js';
import type { Metrics } from '../observability/metrics.js';
import type { Logger } from '../observability/logger.js';
import { SingleFlight } from '../util/single-flight.js';
import { BlobFill } from './blob-fill.js';
import type { DownloadTracker } from './downloads.js';
import { checkedMediaType, headMediaType, manifestDigestOf } from './manifest-response.js';
import type { BlobHandle, ManifestResult, Target } from './results.js';

/** Why the cache is bypassed; the label of `pullthrough_degraded_requests_total`. */
export type BypassReason = 'metadata_unavailable' | 'blob_store_unavailable';

export interface BypassDeps {
  readonly config: Config;
  readonly blobs: BlobStore;
  readonly upstreams: UpstreamPool;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly downloads?: DownloadTracker;
}

/** distribution's limit for manifests (as in pull-through.ts). */
const MAX_MANIFEST_BYTES = 4 << 20;
/** At most one "serving without the cache" warning per reason this often; the metric counts every request. */
const WARN_EVERY_MS = 30_000;

/**
 * Answers that do not use the metadata store: what pullthrough serves while Redis (or the file
 * store) is unreachable, and how a cached blob is served while the blob store cannot read it.
 *
 * The same guarantees as the cache, without its records:
 * - content is served under a repository only after the upstream confirmed that repository holds
 *   it (a HEAD for blobs; manifests are fetched from the repository itself), since the links that
 *   would remember earlier confirmations cannot be read;
 * - blob bytes are either read from the blob store (written there only after digest
 *   verification) or downloaded through a {@link BlobFill}, which verifies size and digest before
 *   the last byte is released; manifests are hashed against the digest asked for or announced;
 * - nothing is written: no records, no blobs (a blob in storage without a record would be outside
 *   eviction's accounting), so nothing needs repair once the store is back.
 *
 * Concurrent requests for the same blob on this replica share one download; across replicas there
 * is no lease (it lives in the unreachable store), so each replica downloads for itself.
 */
export class CacheBypass {
  private readonly fills = new Map<string, BlobFill>();
  private readonly manifestFlights = new SingleFlight<ManifestResult>();
  private readonly lastWarned = new Map<BypassReason, number>();

  constructor(private readonly d: BypassDeps) {}

  private up(t: Target): RegistryUpstream {
    return this.d.upstreams.for(t.registry);
  }

  /** Counts a request served without the cache; warns now and then with the cause. */
  note(reason: BypassReason, cause: unknown): void {
    this.d.metrics.degraded.inc({ reason });
    const now = Date.now();
    if (now - (this.lastWarned.get(reason) ?? 0) < WARN_EVERY_MS) return;
    this.lastWarned.set(reason, now);
    this.d.log.warn('serving without the cache', { reason, error: (cause as Error)?.message ?? String(cause) });
  }

  /**
   * A blob, confirmed for `t` with an upstream HEAD, then read from the blob store when it holds
   * it, else streamed (verified) from upstream.
   * @throws UpstreamStatusError when upstream does not confirm; UpstreamUnavailableError.
   */
  async blob(t: Target, digest: string, head: boolean): Promise<BlobHandle> {
    const res = await this.up(t).request({ method: 'HEAD', path: `/v2/${t.repo}/blobs/${digest}`, repo: t.repo, kind: 'blob', credentials: t.credentials });
    res.body.destroy();
    if (res.status !== 200) throw await upstreamStatusError(t.registry.name, res);
    const len = res.headers['content-length'];
    const size = len && /^\d+$/.test(len) ? Number(len) : undefined;
    if (head) return { digest, size, cache: 'pass', open: () => Promise.reject(new Error('HEAD has no body')) };
    const key = blobKey(digest);
    // An unreachable blob store too just means upstream.
    const stored = await this.d.blobs.stat(key).catch(() => null);
    if (stored && (size === undefined || stored.size === size)) {
      return {
        digest,
        size: stored.size,
        cache: 'hit',
        open: async (range?: ByteRange): Promise<Readable> => {
          try {
            return await this.d.blobs.read(key, range);
          } catch {
            // Gone (evicted by a replica that still reaches the metadata) or unreadable.
            return (await this.fromUpstream(t, digest)).open(range);
          }
        },
      };
    }
    return this.fromUpstream(t, digest);
  }

  /**
   * Streams a blob from upstream, verified, storing nothing. The caller has made sure `t` may
   * read it (a link, or an upstream HEAD).
   * @throws UpstreamStatusError, UpstreamUnavailableError
   */
  async fromUpstream(t: Target, digest: string): Promise<BlobHandle> {
    let fill = this.fills.get(digest);
    if (!fill) {
      const registry = t.registry.name;
      const progress = this.d.downloads?.start({ digest, registry, repo: t.repo, uncached: true });
      const f = new BlobFill(
        {
          spoolDir: this.d.config.paths.spool,
          fillTimeoutMs: this.d.config.upstream.fillTimeout,
          onBytes: (n) => {
            this.d.metrics.upstreamBytes.inc({ registry }, n);
            progress?.add(n);
          },
          // Verified and read by its clients: nothing to keep.
          commit: (_digest, path) => rm(path, { force: true }),
        },
        this.up(t),
        t.repo,
        // Nothing is linked (the commit discards the file); the key only names the fill.
        `${t.registry.name}/${t.repo}`,
        digest,
        t.credentials,
      );
      fill = f;
      this.fills.set(digest, f);
      this.d.metrics.fillsInFlight.inc();
      f.started.then(({ size }) => progress?.setTotal(size), () => {});
      f.done
        .catch((err: unknown) => this.d.log.warn('uncached blob download failed', { registry, repo: t.repo, digest, error: (err as Error).message }))
        .finally(() => {
          this.d.metrics.fillsInFlight.dec();
          progress?.end();
          if (this.fills.get(digest) === f) this.fills.delete(digest);
          f.release();
        });
    }
    const f = fill;
    const { size } = await f.started;
    return {
      digest,
      size,
      cache: 'pass',
      open: async (range?: ByteRange): Promise<Readable> => {
        if (this.fills.get(digest) === f) return f.reader(range);
        // It finished between answering and reading, and kept nothing: download again.
        return (await this.fromUpstream(t, digest)).open(range);
      },
    };
  }

  /**
   * A manifest straight from upstream (a HEAD for HEAD requests), checked to be a manifest
   * (oci/manifest-check.ts) and its digest verified.
   * @throws UpstreamStatusError, UpstreamUnavailableError, UpstreamIntegrityError, UpstreamManifestInvalidError
   */
  async manifest(t: Target, ref: ManifestReference, accepted: Set<string> | null, head: boolean): Promise<ManifestResult> {
    const reference = ref.kind === 'digest' ? ref.digest : ref.tag;
    const accept = ref.kind === 'digest' ? ALL_MANIFEST_TYPES.join(', ') : upstreamAccept(accepted);
    // Keyed by the upstream account too: an answer given to one account is not shared with another.
    const key = `${t.registry.name}#${this.up(t).identityFor(t.repo, t.credentials)}/${t.repo}:${reference}|${head}|${accept}`;
    return this.manifestFlights.run(key, async () => {
      const up = this.up(t);
      const path = `/v2/${t.repo}/manifests/${reference}`;
      if (head) {
        const h = await up.request({ method: 'HEAD', path, repo: t.repo, kind: 'manifest', credentials: t.credentials, headers: { accept } });
        h.body.destroy();
        if (h.status !== 200) throw await upstreamStatusError(t.registry.name, h);
        const digest = ref.kind === 'digest' ? ref.digest : h.headers['docker-content-digest'];
        // Without a digest to answer with, fall through to a GET and hash the body.
        if (digest) return { digest, mediaType: headMediaType(t.registry.name, h), size: Number(h.headers['content-length'] ?? 0), cache: 'pass' };
      }
      const res = await up.request({ method: 'GET', path, repo: t.repo, kind: 'manifest', credentials: t.credentials, headers: { accept } });
      if (res.status !== 200) throw await upstreamStatusError(t.registry.name, res);
      const body = await readLimited(res.body, MAX_MANIFEST_BYTES).catch((err: Error) => {
        throw new UpstreamIntegrityError(t.registry.name, `manifest unreadable: ${err.message}`);
      });
      const mediaType = checkedMediaType(t.registry.name, res, body);
      const claimed = res.headers['docker-content-digest'];
      const digest = ref.kind === 'digest' ? digestWithAlgorithmOf(parseDigest(ref.digest), body) : manifestDigestOf(body, claimed);
      if (ref.kind === 'digest' && digest !== ref.digest) throw new UpstreamIntegrityError(t.registry.name, `manifest ${ref.digest} hashes to ${digest}`);
      if (ref.kind === 'tag' && claimed && claimed !== digest) throw new UpstreamIntegrityError(t.registry.name, `${ref.tag}: Docker-Content-Digest ${claimed}, body hashes to ${digest}`);
      return { digest, mediaType, size: body.length, body, cache: 'pass' };
    });
  }

  /** Downloads in progress here (for draining). */
  get inFlight(): number {
    return this.fills.size;
  }
}
