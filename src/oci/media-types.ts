/** Manifest media types pullthrough understands, and Accept negotiation over them. */

export const MediaType = {
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerManifestV1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  DockerManifestV1: 'application/vnd.docker.distribution.manifest.v1+json',
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciIndex: 'application/vnd.oci.image.index.v1+json',
} as const;

/** Every manifest media type, in the order pullthrough asks upstream for them. */
export const ALL_MANIFEST_TYPES: readonly string[] = [
  MediaType.OciIndex,
  MediaType.DockerManifestList,
  MediaType.OciManifest,
  MediaType.DockerManifest,
];

/** True for index/list types (whose entries are manifests, not layers). */
export function isIndexType(mediaType: string): boolean {
  return mediaType === MediaType.OciIndex || mediaType === MediaType.DockerManifestList;
}

/**
 * The set of manifest media types a client's Accept header allows; `null` means "anything"
 * (no Accept header, or a wildcard). Parameters and q-values are ignored except q=0, which excludes.
 */
export function acceptedTypes(accept: string | string[] | undefined): Set<string> | null {
  const raw = Array.isArray(accept) ? accept.join(',') : accept;
  if (!raw || raw.trim() === '') return null;
  const out = new Set<string>();
  for (const part of raw.split(',')) {
    const [type, ...params] = part.split(';').map((x) => x.trim().toLowerCase());
    if (!type) continue;
    if (params.some((p) => /^q=0(\.0*)?$/.test(p))) continue;
    if (type === '*/*' || type === 'application/*') return null;
    out.add(type);
  }
  // A client that names no manifest type at all (e.g. only application/json) is treated as the
  // distribution reference registry treats it: it may receive the image manifest types.
  if (![...out].some((t) => ALL_MANIFEST_TYPES.includes(t) || t === MediaType.DockerManifestV1Signed || t === MediaType.DockerManifestV1)) {
    out.add(MediaType.DockerManifest);
    out.add(MediaType.OciManifest);
  }
  return out;
}

/** True when `mediaType` is acceptable under `accepted` (see {@link acceptedTypes}). */
export function isAccepted(accepted: Set<string> | null, mediaType: string): boolean {
  return accepted === null || accepted.has(mediaType);
}

/** The Accept header to send upstream for a client that accepts `accepted`. */
export function upstreamAccept(accepted: Set<string> | null): string {
  if (accepted === null) return ALL_MANIFEST_TYPES.join(', ');
  return [...accepted].join(', ');
}
