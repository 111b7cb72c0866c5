/**
 * The typed remote: what cache/ may ask of an upstream registry, in repository terms. Paths,
 * status codes, Link headers, JSON, challenges, tokens, redirects and transports stay behind it
 * (RegistryRemote); tests script it in-process (test/helpers/fake-remote.ts). Learned from
 * distribution's registry/proxy, whose proxy stores wrap a remote repository's blob, manifest and
 * tag services; here one interface carries all of them, and every failure is a typed error.
 *
 * Null or throw: the two existence questions (`statBlob`, `headManifest`) answer a 404 with null,
 * since "not there" is an answer the caller branches on and a HEAD carries no upstream message.
 * Every other call, and every other non-success status, throws:
 * - UpstreamStatusError for an upstream answer other than success (401, 403, 404 on a GET, 429, 5xx),
 *   carrying the upstream's own code and message for the client;
 * - UpstreamUnavailableError when the upstream or its token service cannot be reached in time;
 * - UpstreamIntegrityError when the upstream's bytes contradict what was asked or announced;
 * - UpstreamTooLargeError past a bound (manifest 4 MiB, tag list count/bytes, referrers bytes).
 * Nothing returns a raw HTTP status.
 */
import type { Readable } from 'node:stream';
import type { RegistryConfig } from '../config/index.js';
import type { Credentials } from './registry-upstream.js';

export type { Credentials } from './registry-upstream.js';

/** An inclusive byte range of a blob, as in `Range: bytes=start-end`. */
export interface BlobRange {
  readonly start: number;
  readonly end: number;
}

/** What an upstream says about a blob without sending it. */
export interface BlobStat {
  /** The digest asked for. */
  readonly digest: string;
  /** Bytes, when the upstream said (`Content-Length`); distribution and Docker Hub always do. */
  readonly size: number | undefined;
}

/** A blob's bytes (or a range of them) on their way from upstream. */
export interface RemoteBlob {
  readonly digest: string;
  /** The whole blob's size when the upstream said (Content-Length of a 200, or the total of a 206's Content-Range). */
  readonly size: number | undefined;
  /**
   * The bytes `body` holds: the range asked for, or null for the whole blob. The body always holds
   * exactly this, also when the upstream ignored the Range and sent everything (the rest is skipped).
   */
  readonly range: BlobRange | null;
  /**
   * The bytes. Not verified: the caller hashes them (a range cannot be). Must be consumed or
   * destroyed. It may fail mid-way with the transport's error (a reset, a timeout, an abort);
   * callers treat any body error as the upstream having become unavailable.
   */
  readonly body: Readable;
}

/** What a manifest HEAD says. */
export interface ManifestStat {
  /** The digest: the one asked for, else the upstream's `Docker-Content-Digest`; undefined when a tag's HEAD named none. */
  readonly digest: string | undefined;
  readonly mediaType: string;
  /** Bytes, from Content-Length (0 when the upstream sent none). */
  readonly size: number;
}

/** A manifest fetched whole and checked. */
export interface RemoteManifest {
  /** Computed from the bytes (with the algorithm of the digest asked for or announced; sha256 otherwise). */
  readonly digest: string;
  /** The upstream's `Docker-Content-Digest`, when it sent one (equal to `digest`, or the fetch failed). */
  readonly claimedDigest: string | undefined;
  /** The upstream's Content-Type when it names a manifest type, else sniffed from the body. */
  readonly mediaType: string;
  /** At most {@link MAX_MANIFEST_BYTES}. */
  readonly body: Buffer;
}

/** The referrers of a manifest, or that the upstream has no referrers API. */
export type ReferrersAnswer =
  | {
      readonly supported: true;
      /** An OCI image index (application/vnd.oci.image.index.v1+json); pages the upstream linked are merged into one. */
      readonly body: Buffer;
      readonly mediaType: string;
      /** The `OCI-Filters-Applied` header (`artifactType` when the upstream filtered). */
      readonly filtersApplied: string | undefined;
    }
  /**
   * The upstream answered 404 on the referrers endpoint: per the spec, it has no referrers API.
   * Its own error code and message come along, for a caller that passes the 404 on to its client.
   */
  | { readonly supported: false; readonly upstreamCode?: string; readonly upstreamMessage?: string };

/** A cancellation signal for one call. */
export interface CallOptions {
  readonly signal?: AbortSignal;
}

export interface OpenBlobOptions extends CallOptions {
  readonly range?: BlobRange;
}

export interface ListTagsOptions extends CallOptions {
  /** Ask for pages of this many tags (`?n=`); the upstream may ignore it. Default: the upstream's own paging. */
  readonly pageSize?: number;
  /** Refuse (UpstreamTooLargeError) a list longer than this. Default {@link MAX_TAGS}. */
  readonly maxTags?: number;
  /** Refuse (UpstreamTooLargeError) a page larger than this many bytes. Default {@link MAX_LIST_BYTES}. */
  readonly maxPageBytes?: number;
  /**
   * Refuse (UpstreamTooLargeError with `pages` set) once the pages together pass this many bytes,
   * e.g. `upstream.tagListMaxSize`. Default: no bound beyond `maxPageBytes` and `maxTags`.
   */
  readonly maxBytes?: number;
}

export interface ListReferrersOptions extends CallOptions {
  readonly artifactType?: string;
}

/** distribution's limit for manifests; also what keeps a hostile upstream from filling memory. */
export const MAX_MANIFEST_BYTES = 4 << 20;
/** Bytes of one tag list or referrers page. */
export const MAX_LIST_BYTES = 4 << 20;
/** Tags of one repository, over all pages. */
export const MAX_TAGS = 100_000;
/** Pages followed for one list (a Link loop ends here at the latest). */
export const MAX_PAGES = 1_000;

/** One repository of an upstream registry, as seen with one set of credentials. */
export interface RemoteRepository {
  /** The configured registry name (`docker.io`). */
  readonly registry: string;
  /** The repository (`library/alpine`). */
  readonly name: string;
  /**
   * Which upstream account these calls use, as a short opaque id (`''` for the registry's
   * default): what the upstream confirmed for one account never vouches for another.
   */
  readonly account: string;

  /**
   * Whether the repository holds a blob (HEAD).
   * @returns null when the upstream answers 404.
   * @throws UpstreamStatusError (401, 403, 429, 5xx…), UpstreamUnavailableError
   */
  statBlob(digest: string, opts?: CallOptions): Promise<BlobStat | null>;

  /**
   * A blob's bytes, or a range of them (GET, following redirects to CDNs without credentials).
   * @throws UpstreamStatusError (404 included: the client gets the upstream's message),
   *   UpstreamUnavailableError; an aborted `signal` rejects with its reason.
   */
  openBlob(digest: string, opts?: OpenBlobOptions): Promise<RemoteBlob>;

  /**
   * What a manifest HEAD says, by tag or digest. `accept` lists the media types the caller takes
   * (empty: every type pullthrough knows); the upstream picks among them.
   * @returns null when the upstream answers 404 (no such manifest, or none in an accepted type).
   * @throws UpstreamStatusError, UpstreamUnavailableError
   */
  headManifest(reference: string, accept: readonly string[], opts?: CallOptions): Promise<ManifestStat | null>;

  /**
   * A manifest by tag or digest, read whole (bounded) and checked: by digest, the bytes must hash
   * to it; by tag, to the `Docker-Content-Digest` the upstream announced, if any.
   * @throws UpstreamStatusError (404 included), UpstreamUnavailableError, UpstreamIntegrityError,
   *   UpstreamTooLargeError past {@link MAX_MANIFEST_BYTES}.
   */
  getManifest(reference: string, accept: readonly string[], opts?: CallOptions): Promise<RemoteManifest>;

  /**
   * Every tag, in the upstream's order without repeats, following its `Link: <…>; rel="next"`
   * pages (same origin only).
   * @throws UpstreamStatusError, UpstreamUnavailableError, UpstreamIntegrityError (not JSON, not a
   *   list of strings, a Link to another origin or path, a page loop), UpstreamTooLargeError past
   *   `maxTags`, `maxPageBytes` or `maxBytes`.
   */
  listTags(opts?: ListTagsOptions): Promise<string[]>;

  /**
   * The referrers of a manifest digest (OCI 1.1), optionally filtered by artifact type.
   * @returns `{ supported: false }` when the upstream answers 404 (no referrers API).
   * @throws UpstreamStatusError, UpstreamUnavailableError, UpstreamIntegrityError (not an index),
   *   UpstreamTooLargeError past {@link MAX_LIST_BYTES} a page.
   */
  listReferrers(digest: string, opts?: ListReferrersOptions): Promise<ReferrersAnswer>;
}

/** An upstream registry: its repositories, each with the credentials a request brings. */
export interface RemoteRegistry {
  /** The configured registry name. */
  readonly name: string;
  /**
   * One repository. `credentials`: undefined for the configured ones (per namespace, registry,
   * auth host), null for anonymous, else a client's own (pass-through).
   */
  repository(name: string, credentials?: Credentials | null): RemoteRepository;
}

/**
 * Where the cache gets the remote of each configured registry. server.ts builds it (today
 * {@link RegistryRemotes} over the UpstreamPool, one RegistryRemote per registry); anything that
 * is a RemoteRegistry fits, e.g. a chain of upstreams with health (issue 18), without cache/
 * changing.
 */
export interface RemoteRegistries {
  /** The remote for `registry`; the same object on every call is not required. */
  for(registry: RegistryConfig): RemoteRegistry;
}
