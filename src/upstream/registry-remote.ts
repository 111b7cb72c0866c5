import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { digestWithAlgorithmOf, isDigest, parseDigest, sha256Of } from '../oci/digest.js';
import { ALL_MANIFEST_TYPES, MediaType } from '../oci/media-types.js';
import { checkManifest, isServedManifestType, bareMediaType } from '../oci/manifest-check.js';
import { nextLink } from './link-header.js';
import { BodyTooLargeError, UpstreamIntegrityError, UpstreamManifestInvalidError, UpstreamTooLargeError } from './errors.js';
import { readLimited, upstreamStatusError, type Credentials, type RegistryUpstream, type UpstreamKind, type UpstreamPool, type UpstreamResponse } from './registry-upstream.js';
import type { RegistryConfig } from '../config/index.js';
import {
  MAX_LIST_BYTES,
  MAX_MANIFEST_BYTES,
  MAX_PAGES,
  MAX_TAGS,
  type BlobRange,
  type BlobStat,
  type CallOptions,
  type ListReferrersOptions,
  type ListTagsOptions,
  type ManifestStat,
  type OpenBlobOptions,
  type ReferrersAnswer,
  type RemoteBlob,
  type RemoteManifest,
  type RemoteRegistries,
  type RemoteRegistry,
  type RemoteRepository,
} from './remote.js';

const CONTENT_RANGE = /^bytes (\d+)-(\d+)\/(\d+|\*)$/;
/** Bytes of all referrers pages together (each page is bounded by MAX_LIST_BYTES). */
const MAX_REFERRERS_BYTES = 16 << 20;

/** A Content-Length header as a number, or undefined when absent or not a plain count. */
function lengthOf(res: UpstreamResponse): number | undefined {
  const len = res.headers['content-length'];
  return len !== undefined && /^\d+$/.test(len) ? Number(len) : undefined;
}

/** Passes on bytes [skip, skip + take) of a stream: a range out of a whole body sent anyway. */
function slice(body: Readable, skip: number, take: number): Readable {
  let pos = 0;
  const out = new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      const from = Math.max(0, skip - pos);
      const to = Math.min(chunk.length, skip + take - pos);
      pos += chunk.length;
      if (to > from) this.push(chunk.subarray(from, to));
      if (pos >= skip + take) {
        // Everything wanted has passed: end here and let the rest of the upstream body go.
        this.push(null);
        body.unpipe(out);
        body.destroy();
      }
      cb();
    },
  });
  body.on('error', (err) => out.destroy(err));
  return body.pipe(out);
}

/**
 * A {@link RemoteRepository} over the registry client: the one place that knows the /v2 paths,
 * statuses, headers and bodies of blob, manifest, tag and referrers requests. Requests go through
 * RegistryUpstream.request (authentication, tokens, redirects, the two transports, the
 * `pullthrough_upstream_requests_total` kinds `blob`, `manifest`, `tags`, `referrers`).
 */
export class RegistryRemoteRepository implements RemoteRepository {
  readonly registry: string;
  readonly account: string;

  constructor(
    private readonly up: RegistryUpstream,
    readonly name: string,
    private readonly credentials: Credentials | null | undefined,
  ) {
    this.registry = up.registry.name;
    this.account = up.identityFor(name, credentials);
  }

  private request(method: 'GET' | 'HEAD', path: string, kind: UpstreamKind, headers: Record<string, string>, signal: AbortSignal | undefined): Promise<UpstreamResponse> {
    return this.up.request({ method, path, repo: this.name, kind, credentials: this.credentials, headers, ...(signal ? { signal } : {}) });
  }

  /** Reads a bounded body, turning "too large" into the typed answer for `what`. */
  private async read(res: UpstreamResponse, limit: number, what: string): Promise<Buffer> {
    try {
      return await readLimited(res.body, limit);
    } catch (err) {
      if (err instanceof BodyTooLargeError) throw new UpstreamTooLargeError(this.registry, what, limit, `${what} larger than ${limit} bytes`);
      throw new UpstreamIntegrityError(this.registry, `${what} unreadable: ${(err as Error).message}`);
    }
  }

  async statBlob(digest: string, opts: CallOptions = {}): Promise<BlobStat | null> {
    const res = await this.request('HEAD', `/v2/${this.name}/blobs/${digest}`, 'blob', {}, opts.signal);
    res.body.destroy();
    if (res.status === 404) return null;
    if (res.status !== 200) throw await upstreamStatusError(this.registry, res);
    return { digest, size: lengthOf(res) };
  }

  async openBlob(digest: string, opts: OpenBlobOptions = {}): Promise<RemoteBlob> {
    const range = opts.range ?? null;
    const headers: Record<string, string> = range ? { range: `bytes=${range.start}-${range.end}` } : {};
    const res = await this.request('GET', `/v2/${this.name}/blobs/${digest}`, 'blob', headers, opts.signal);
    if (res.status === 200) {
      const size = lengthOf(res);
      if (!range) return { digest, size, range: null, body: res.body };
      // The upstream (or its CDN) ignored the Range: hand on just the part asked for.
      if (size !== undefined && range.start >= size) {
        res.body.destroy();
        throw new UpstreamIntegrityError(this.registry, `${digest}: range ${range.start}-${range.end} starts past the blob's ${size} bytes`);
      }
      const end = size === undefined ? range.end : Math.min(range.end, size - 1);
      return { digest, size, range: { start: range.start, end }, body: slice(res.body, range.start, end - range.start + 1) };
    }
    if (res.status === 206 && range) {
      const m = CONTENT_RANGE.exec(res.headers['content-range'] ?? '');
      const got: BlobRange | undefined = m ? { start: Number(m[1]), end: Number(m[2]) } : undefined;
      if (!got || got.start !== range.start || got.end > range.end) {
        res.body.destroy();
        throw new UpstreamIntegrityError(this.registry, `${digest}: asked for bytes ${range.start}-${range.end}, got Content-Range ${res.headers['content-range'] ?? '(none)'}`);
      }
      return { digest, size: m![3] === '*' ? undefined : Number(m![3]), range: got, body: res.body };
    }
    throw await upstreamStatusError(this.registry, res);
  }

  private static accept(accept: readonly string[]): string {
    return (accept.length ? accept : ALL_MANIFEST_TYPES).join(', ');
  }

  async headManifest(reference: string, accept: readonly string[], opts: CallOptions = {}): Promise<ManifestStat | null> {
    const res = await this.request('HEAD', `/v2/${this.name}/manifests/${reference}`, 'manifest', { accept: RegistryRemoteRepository.accept(accept) }, opts.signal);
    res.body.destroy();
    if (res.status === 404) return null;
    if (res.status !== 200) throw await upstreamStatusError(this.registry, res);
    const claimed = res.headers['docker-content-digest'];
    const digest = isDigest(reference) ? reference : claimed && isDigest(claimed) ? claimed : undefined;
    // No body to look at: the Content-Type alone must name a manifest type (docs/spec-conformance.md).
    const mediaType = bareMediaType(res.headers['content-type']);
    if (!isServedManifestType(mediaType)) throw new UpstreamManifestInvalidError(this.registry, `Content-Type ${JSON.stringify(mediaType)} is not a manifest media type`);
    return { digest, mediaType, size: lengthOf(res) ?? 0 };
  }

  async getManifest(reference: string, accept: readonly string[], opts: CallOptions = {}): Promise<RemoteManifest> {
    const res = await this.request('GET', `/v2/${this.name}/manifests/${reference}`, 'manifest', { accept: RegistryRemoteRepository.accept(accept) }, opts.signal);
    if (res.status !== 200) throw await upstreamStatusError(this.registry, res);
    const body = await this.read(res, MAX_MANIFEST_BYTES, `manifest ${reference}`);
    const claimed = res.headers['docker-content-digest'] || undefined;
    // Whether it is a manifest at all first: a captive portal's page (which may well come with a
    // digest header of its own) is an outage the cache may serve stale for, not an integrity fault.
    const check = checkManifest(body, res.headers['content-type']);
    if (!check.ok) throw new UpstreamManifestInvalidError(this.registry, check.reason);
    let digest: string;
    if (isDigest(reference)) {
      digest = digestWithAlgorithmOf(parseDigest(reference), body);
      if (digest !== reference) throw new UpstreamIntegrityError(this.registry, `manifest ${reference} hashes to ${digest}`);
    } else {
      // Hash with the algorithm upstream names (sha512 registries exist), sha256 otherwise.
      digest = claimed && /^sha512:[a-f0-9]{128}$/.test(claimed) ? digestWithAlgorithmOf(parseDigest(claimed), body) : sha256Of(body);
      if (claimed && claimed !== digest) throw new UpstreamIntegrityError(this.registry, `${reference}: Docker-Content-Digest ${claimed}, body hashes to ${digest}`);
    }
    return { digest, claimedDigest: claimed, mediaType: check.mediaType, body };
  }

  /**
   * The next page's path and query from a Link header, resolved against the page that named it.
   * `samePath`: the next page must be on the same path (a tag list pages within its own list).
   * @throws UpstreamIntegrityError when it points at another origin (or path).
   */
  private nextPage(res: UpstreamResponse, what: string, samePath?: string): string | undefined {
    const target = nextLink(res.headers.link);
    if (target === undefined) return undefined;
    let url: URL;
    try {
      url = new URL(target, res.url);
    } catch {
      throw new UpstreamIntegrityError(this.registry, `${what}: unusable Link ${JSON.stringify(target.slice(0, 200))}`);
    }
    // A registry pages within itself; a Link elsewhere would send the registry's credentials
    // (and pullthrough) wherever the upstream says.
    if (url.origin !== this.up.origin) {
      throw new UpstreamIntegrityError(this.registry, `${what}: Link to another origin ${url.origin}${url.pathname.slice(0, 200)}; not followed`);
    }
    if (samePath !== undefined && url.pathname !== samePath) {
      throw new UpstreamIntegrityError(this.registry, `${what}: Link to ${url.pathname.slice(0, 200)} is not ${samePath}; not followed`);
    }
    return url.pathname + url.search;
  }

  async listTags(opts: ListTagsOptions = {}): Promise<string[]> {
    const maxTags = opts.maxTags ?? MAX_TAGS;
    const maxPageBytes = opts.maxPageBytes ?? MAX_LIST_BYTES;
    const maxBytes = opts.maxBytes ?? Infinity;
    const what = `tag list of ${this.name}`;
    const listPath = `/v2/${this.name}/tags/list`;
    const tags = new Set<string>();
    const seen = new Set<string>();
    let bytes = 0;
    let path: string | undefined = `${listPath}${opts.pageSize !== undefined ? `?${new URLSearchParams({ n: String(opts.pageSize) })}` : ''}`;
    while (path !== undefined) {
      if (seen.has(path)) throw new UpstreamIntegrityError(this.registry, `${what}: Link leads back to a page already read (${path.slice(0, 200)})`);
      if (seen.size >= MAX_PAGES) throw new UpstreamIntegrityError(this.registry, `${what}: pages do not end (${seen.size} followed)`);
      seen.add(path);
      const res = await this.request('GET', path, 'tags', {}, opts.signal);
      if (res.status !== 200) throw await upstreamStatusError(this.registry, res);
      let next: string | undefined;
      try {
        next = this.nextPage(res, what, listPath);
      } catch (err) {
        res.body.destroy();
        throw err;
      }
      // The page's own bound, or what is left of the bound over all pages, whichever is less.
      const left = maxBytes - bytes;
      let body: Buffer;
      try {
        body = await readLimited(res.body, Math.min(maxPageBytes, left));
      } catch (err) {
        if (!(err instanceof BodyTooLargeError)) throw new UpstreamIntegrityError(this.registry, `${what} unreadable: ${(err as Error).message}`);
        if (left < maxPageBytes) throw new UpstreamTooLargeError(this.registry, what, maxBytes, `${what} larger than ${maxBytes} bytes after ${seen.size} page(s)`, seen.size);
        throw new UpstreamTooLargeError(this.registry, what, maxPageBytes, `${what}: a page larger than ${maxPageBytes} bytes`);
      }
      bytes += body.length;
      let doc: { tags?: unknown };
      try {
        doc = JSON.parse(body.toString('utf8')) as typeof doc;
      } catch {
        throw new UpstreamIntegrityError(this.registry, `${what} is not JSON`);
      }
      // distribution answers `"tags": null` for a repository without tags.
      const list = typeof doc === 'object' && doc !== null ? doc.tags : undefined;
      if (list !== null && !(Array.isArray(list) && list.every((x) => typeof x === 'string'))) {
        throw new UpstreamIntegrityError(this.registry, `${what}: a page has no "tags" array of strings`);
      }
      for (const t of (list as string[] | null) ?? []) {
        tags.add(t);
        if (tags.size > maxTags) throw new UpstreamTooLargeError(this.registry, what, maxTags, `${what} longer than ${maxTags} tags`);
      }
      path = next;
    }
    return [...tags];
  }

  async listReferrers(digest: string, opts: ListReferrersOptions = {}): Promise<ReferrersAnswer> {
    const what = `referrers of ${digest}`;
    const qs = opts.artifactType !== undefined ? `?${new URLSearchParams({ artifactType: opts.artifactType })}` : '';
    const pages: Buffer[] = [];
    const manifests: unknown[] = [];
    const seen = new Set<string>();
    let filtersApplied: string | undefined;
    let total = 0;
    let path: string | undefined = `/v2/${this.name}/referrers/${digest}${qs}`;
    while (path !== undefined) {
      if (seen.has(path) || seen.size >= MAX_PAGES) throw new UpstreamIntegrityError(this.registry, `${what}: pages do not end (${seen.size} followed)`);
      seen.add(path);
      const res = await this.request('GET', path, 'referrers', { accept: MediaType.OciIndex }, opts.signal);
      if (res.status === 404 && pages.length === 0) {
        // The upstream's own code and message, for a caller that passes this 404 on.
        // (Only what it sent: a registry that sends no error JSON gets a plain `{ supported: false }`.)
        const e = await upstreamStatusError(this.registry, res);
        return { supported: false, ...(e.upstreamCode !== undefined ? { upstreamCode: e.upstreamCode } : {}), ...(e.upstreamMessage !== undefined ? { upstreamMessage: e.upstreamMessage } : {}) };
      }
      if (res.status !== 200) throw await upstreamStatusError(this.registry, res);
      filtersApplied ??= res.headers['oci-filters-applied'] || undefined;
      let next: string | undefined;
      try {
        next = this.nextPage(res, what);
      } catch (err) {
        res.body.destroy();
        throw err;
      }
      const body = await this.read(res, MAX_LIST_BYTES, what);
      let doc: { manifests?: unknown };
      try {
        doc = JSON.parse(body.toString('utf8')) as typeof doc;
      } catch {
        throw new UpstreamIntegrityError(this.registry, `${what} is not JSON`);
      }
      if (!Array.isArray(doc.manifests)) throw new UpstreamIntegrityError(this.registry, `${what} is not an image index`);
      pages.push(body);
      manifests.push(...(doc.manifests as unknown[]));
      total += body.length;
      if (total > MAX_REFERRERS_BYTES) throw new UpstreamTooLargeError(this.registry, what, MAX_REFERRERS_BYTES, `${what} larger than ${MAX_REFERRERS_BYTES} bytes`);
      path = next;
    }
    // One page is passed on as the upstream wrote it; several become one index.
    const body = pages.length === 1 ? pages[0]! : Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests }));
    return { supported: true, body, mediaType: MediaType.OciIndex, filtersApplied };
  }
}

/** The {@link RemoteRegistry} of one configured registry, over its RegistryUpstream client. */
export class RegistryRemote implements RemoteRegistry {
  readonly name: string;

  constructor(private readonly up: RegistryUpstream) {
    this.name = up.registry.name;
  }

  repository(name: string, credentials?: Credentials | null): RemoteRepository {
    return new RegistryRemoteRepository(this.up, name, credentials);
  }
}

/**
 * The {@link RemoteRegistries} over an UpstreamPool: one RegistryRemote per configured registry,
 * over the pool's one client for it (token cache, connections).
 */
export class RegistryRemotes implements RemoteRegistries {
  private readonly remotes = new Map<string, RegistryRemote>();

  constructor(private readonly pool: UpstreamPool) {}

  for(registry: RegistryConfig): RemoteRegistry {
    let r = this.remotes.get(registry.name);
    if (!r) {
      r = new RegistryRemote(this.pool.for(registry));
      this.remotes.set(registry.name, r);
    }
    return r;
  }
}
