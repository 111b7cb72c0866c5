import { ALL_MANIFEST_TYPES } from '../oci/media-types.js';
import type { MetadataStore } from '../storage/metadata-store.js';
import { UpstreamManifestInvalidError } from '../upstream/errors.js';
import { SingleFlight } from '../util/single-flight.js';
import { notFoundUpstream, type RemoteTarget } from './remote-target.js';

/** What a blob or manifest is, for the upstream question that confirms a repository holds it. */
export type ContentKind = 'blob' | 'manifest';

/**
 * Asks the upstream whether `at`'s repository holds `digest` (a HEAD, never a counted GET),
 * storing nothing.
 * @returns the blob's size when the upstream said, for a blob.
 * @throws UpstreamStatusError (404 when it does not, 401, 403, 429, 5xx), UpstreamUnavailableError.
 */
export async function confirmUpstream(at: RemoteTarget, digest: string, kind: ContentKind): Promise<{ size: number | undefined }> {
  if (kind === 'blob') {
    const stat = await at.remote.statBlob(digest);
    if (!stat) throw notFoundUpstream(at.t.registry.name);
    return { size: stat.size };
  }
  try {
    const stat = await at.remote.headManifest(digest, ALL_MANIFEST_TYPES);
    if (!stat) throw notFoundUpstream(at.t.registry.name);
    return { size: stat.size };
  } catch (err) {
    // The upstream answered 200 for the digest: that is the confirmation, whatever Content-Type
    // it named (the body, checked when it was fetched, is what is served).
    if (err instanceof UpstreamManifestInvalidError) return { size: undefined };
    throw err;
  }
}

/**
 * Which repositories the upstream has confirmed hold which content: a link per (space,
 * repository, digest) in the metadata store. Content fetched for one repository is served under
 * another only once the upstream confirmed that one too, so private content never leaks through
 * a shared digest. Concurrent confirmations of one link share one upstream HEAD.
 */
export class Confirmations {
  private readonly flights = new SingleFlight<void>();

  constructor(private readonly meta: MetadataStore) {}

  /**
   * Makes sure the upstream has confirmed that `at`'s repository holds `digest`, asking if it has not yet.
   * @throws UpstreamStatusError when upstream says no (404 included); UpstreamUnavailableError;
   *   StorageUnavailableError from the metadata store.
   */
  async confirm(at: RemoteTarget, digest: string, kind: ContentKind): Promise<void> {
    if (await this.meta.isLinked(at.space, at.t.repo, digest)) return;
    await this.flights.run(`${at.key}@${digest}`, async () => {
      await confirmUpstream(at, digest, kind);
      await this.meta.link(at.space, at.t.repo, digest);
    });
  }
}
