import { digestWithAlgorithmOf, parseDigest, sha256Of } from '../oci/digest.js';
import { bareMediaType, checkManifest, isServedManifestType } from '../oci/manifest-check.js';
import type { UpstreamResponse } from '../upstream/registry-upstream.js';
import { UpstreamManifestInvalidError } from '../upstream/errors.js';

/**
 * The media type to cache and serve an upstream manifest body with: its Content-Type, once
 * `checkManifest` found body and Content-Type to be a manifest pullthrough serves.
 * @throws UpstreamManifestInvalidError when they are not.
 */
export function checkedMediaType(registry: string, res: UpstreamResponse, body: Buffer): string {
  const c = checkManifest(body, res.headers['content-type']);
  if (!c.ok) throw new UpstreamManifestInvalidError(registry, c.reason);
  return c.mediaType;
}

/**
 * The media type of a manifest an upstream HEAD announced (no body to check): its Content-Type,
 * when that is a manifest type pullthrough serves.
 * @throws UpstreamManifestInvalidError otherwise.
 */
export function headMediaType(registry: string, res: UpstreamResponse): string {
  const ct = bareMediaType(res.headers['content-type']);
  if (!isServedManifestType(ct)) throw new UpstreamManifestInvalidError(registry, `HEAD answered Content-Type ${JSON.stringify(ct)}, not a manifest media type`);
  return ct;
}

/**
 * The digest of a manifest body fetched by tag: hashed with the algorithm the upstream's
 * `Docker-Content-Digest` names (sha512 registries exist), sha256 otherwise.
 */
export function manifestDigestOf(body: Buffer, claimed: string | undefined): string {
  return claimed && /^sha512:[a-f0-9]{128}$/.test(claimed) ? digestWithAlgorithmOf(parseDigest(claimed), body) : sha256Of(body);
}
