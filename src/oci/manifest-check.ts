/**
 * What counts as a manifest: the one check every manifest from upstream passes before it is
 * cached or served (see docs/spec-conformance.md).
 */
import { MediaType } from './media-types.js';

/**
 * The manifest media types pullthrough serves: OCI image manifests and indexes, Docker schema2
 * manifests and manifest lists. Not served:
 * - Docker schema1 (`…manifest.v1+json`, `…v1+prettyjws`): deprecated, refused by current Docker
 *   and containerd, not part of the distribution spec; the digest of a signed one covers its
 *   payload without the signature, not the bytes served, so it cannot be verified as served.
 * - The OCI artifact manifest (`application/vnd.oci.artifact.manifest.v1+json`): dropped from
 *   image-spec before 1.1.0; artifacts are image manifests with an `artifactType` now.
 */
export const SERVED_MANIFEST_TYPES: ReadonlySet<string> = new Set([MediaType.OciManifest, MediaType.OciIndex, MediaType.DockerManifest, MediaType.DockerManifestList]);

/** The media type without parameters, lower-cased (`Content-Type: a/b; charset=utf-8` → `a/b`). */
export function bareMediaType(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase();
}

/** True when `contentType` names a manifest type pullthrough serves. */
export function isServedManifestType(contentType: string | undefined): boolean {
  return SERVED_MANIFEST_TYPES.has(bareMediaType(contentType));
}

/** The outcome of {@link checkManifest}: the media type to serve it with, or why it is no manifest. */
export type ManifestCheck = { readonly ok: true; readonly mediaType: string } | { readonly ok: false; readonly reason: string };

const isIndex = (t: string): boolean => t === MediaType.OciIndex || t === MediaType.DockerManifestList;

/**
 * Checks that `body`, served with `contentType`, is a manifest or index pullthrough may cache and
 * serve: a JSON object with `schemaVersion` 2, a Content-Type that is one of
 * {@link SERVED_MANIFEST_TYPES}, a `mediaType` field (when present: OCI allows it absent) equal to
 * that Content-Type, and the shape of that type (`config` and `layers` for a manifest, `manifests`
 * for an index). Pure; never throws.
 */
export function checkManifest(body: Uint8Array, contentType: string | undefined): ManifestCheck {
  const ct = bareMediaType(contentType);
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
  } catch {
    return { ok: false, reason: `body is not JSON (Content-Type ${ct || 'none'})` };
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return { ok: false, reason: 'body is not a JSON object' };
  const m = doc as Record<string, unknown>;
  if (!('schemaVersion' in m)) return { ok: false, reason: 'body has no schemaVersion' };
  if (m.schemaVersion !== 2) return { ok: false, reason: `schemaVersion ${JSON.stringify(m.schemaVersion)?.slice(0, 20)} is not served (only 2)` };
  if (!SERVED_MANIFEST_TYPES.has(ct)) return { ok: false, reason: `Content-Type ${JSON.stringify(ct)} is not a manifest media type` };
  if (m.mediaType !== undefined && m.mediaType !== ct) {
    return { ok: false, reason: `body declares mediaType ${JSON.stringify(m.mediaType).slice(0, 200)}, Content-Type says ${ct}` };
  }
  if (isIndex(ct)) {
    if (!Array.isArray(m.manifests)) return { ok: false, reason: `${ct} without a manifests array` };
  } else if (typeof m.config !== 'object' || m.config === null || !Array.isArray(m.layers)) {
    return { ok: false, reason: `${ct} without config and layers` };
  }
  return { ok: true, mediaType: ct };
}
