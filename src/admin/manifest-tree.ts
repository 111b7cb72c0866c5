/**
 * What a cached manifest points at, for listings, purge and pins: an index's children with their
 * platforms, an image manifest's config and layers with their sizes. Pure; never throws.
 */
import { isDigest } from '../oci/digest.js';

/** More references than any real image has; a bound against hostile manifests. */
const MAX_REFS = 1000;

/** One child of an index. */
export interface IndexChild {
  readonly digest: string;
  /** `os/arch[/variant]`, or `unknown` when the index names none. */
  readonly platform: string;
}

/** A blob an image manifest references, with the size the manifest declares. */
export interface BlobRef {
  readonly digest: string;
  readonly size: number;
}

/** A parsed manifest: an index (children), an image (blobs), or something else (no references). */
export type ManifestShape =
  | { readonly kind: 'index'; readonly children: readonly IndexChild[] }
  | { readonly kind: 'image'; readonly blobs: readonly BlobRef[]; readonly platform: string | null }
  | { readonly kind: 'other' };

/** `os/arch[/variant]` of an OCI platform object, or null. */
export function platformText(p: unknown): string | null {
  if (typeof p !== 'object' || p === null) return null;
  const { os, architecture, variant } = p as { os?: unknown; architecture?: unknown; variant?: unknown };
  if (typeof os !== 'string' || typeof architecture !== 'string') return null;
  return typeof variant === 'string' && variant ? `${os}/${architecture}/${variant}` : `${os}/${architecture}`;
}

/**
 * Whether `platform` (as `os/arch[/variant]`) is what the user asked for with `want`: equal, or
 * `want` names no variant and the architecture matches (`linux/arm64` takes `linux/arm64/v8`).
 */
export function platformMatches(platform: string, want: string): boolean {
  if (platform === want) return true;
  return want.split('/').length === 2 && platform.startsWith(`${want}/`);
}

/** Parses a manifest body; never throws (a body that is not a manifest is `other`). */
export function manifestShape(body: Buffer): ManifestShape {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    return { kind: 'other' };
  }
  if (typeof doc !== 'object' || doc === null) return { kind: 'other' };
  const m = doc as { manifests?: unknown; config?: { digest?: unknown; size?: unknown }; layers?: unknown };
  if (Array.isArray(m.manifests)) {
    const children: IndexChild[] = [];
    for (const c of m.manifests.slice(0, MAX_REFS)) {
      const d = (c as { digest?: unknown } | null)?.digest;
      if (typeof d === 'string' && isDigest(d)) children.push({ digest: d, platform: platformText((c as { platform?: unknown }).platform) ?? 'unknown' });
    }
    return { kind: 'index', children };
  }
  if (!Array.isArray(m.layers)) return { kind: 'other' };
  const blobs: BlobRef[] = [];
  const add = (x: { digest?: unknown; size?: unknown } | null | undefined): void => {
    if (x && typeof x.digest === 'string' && isDigest(x.digest) && blobs.length < MAX_REFS && !blobs.some((b) => b.digest === x.digest)) {
      blobs.push({ digest: x.digest, size: typeof x.size === 'number' && x.size >= 0 ? x.size : 0 });
    }
  };
  add(m.config);
  for (const l of m.layers) add(l as { digest?: unknown; size?: unknown } | null);
  return { kind: 'image', blobs, platform: null };
}
