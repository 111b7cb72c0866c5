import { UpstreamStatusError } from '../upstream/errors.js';
import type { RemoteTarget } from './remote-target.js';
import type { PassThroughResult } from './results.js';

/**
 * The upstream's referrers index, passed through. An upstream without the referrers API
 * (`supported: false`, its 404) gets the client that same 404 with the upstream's own code and
 * message, so clients fall back to the tag schema as they would upstream.
 * @throws UpstreamStatusError, UpstreamUnavailableError, UpstreamIntegrityError, UpstreamTooLargeError
 */
export async function referrersOf(at: RemoteTarget, digest: string, artifactType: string | undefined): Promise<PassThroughResult> {
  const r = await at.remote.listReferrers(digest, artifactType !== undefined ? { artifactType } : {});
  if (!r.supported) throw new UpstreamStatusError(at.t.registry.name, 404, r.upstreamCode, r.upstreamMessage?.slice(0, 1000), undefined);
  const headers: Record<string, string> = { 'content-type': r.mediaType };
  if (r.filtersApplied) headers['oci-filters-applied'] = r.filtersApplied;
  return { body: r.body, headers };
}
