import { digestWithAlgorithmOf, parseDigest, sha256Of } from '../oci/digest.js';
import { ALL_MANIFEST_TYPES, sniffManifestMediaType } from '../oci/media-types.js';
import type { UpstreamResponse } from '../upstream/registry-upstream.js';

/** A manifest's media type: the upstream's Content-Type when it names one, else sniffed from the body. */
export function mediaTypeOf(res: UpstreamResponse, body?: Buffer): string {
  const ct = (res.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (ALL_MANIFEST_TYPES.includes(ct) || ct.startsWith('application/vnd.docker.distribution.manifest.v1')) return ct;
  return (body && sniffManifestMediaType(body)) ?? ct;
}

/**
 * The digest of a manifest body fetched by tag: hashed with the algorithm the upstream's
 * `Docker-Content-Digest` names (sha512 registries exist), sha256 otherwise.
 */
export function manifestDigestOf(body: Buffer, claimed: string | undefined): string {
  return claimed && /^sha512:[a-f0-9]{128}$/.test(claimed) ? digestWithAlgorithmOf(parseDigest(claimed), body) : sha256Of(body);
}
