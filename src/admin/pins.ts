/**
 * Pins: a pinned reference's manifests and blobs are never evicted. The pin lives in the metadata
 * store (shared by replicas, kept across restarts); the evictor asks {@link pinnedBlobs} before
 * each pass that has to evict. A pin by tag follows the tag: it keeps what the tag's cached record
 * points to at the time of the pass.
 */
import type { MetadataStore } from '../storage/metadata-store.js';
import { Catalog } from './catalog.js';
import { canonicalRef, referenceText, type ImageRef } from './image-ref.js';
import { platformMatches } from './manifest-tree.js';
import { AdminRequestError } from './errors.js';

/** The store key of a pin: its canonical reference. */
export function pinKey(ref: ImageRef): string {
  return ref.canonical;
}

/** The manifest digests a reference stands for in `cat` (a tag: every cached record of it). */
export function rootsOf(cat: Catalog, registry: string, repo: string, reference: string): string[] {
  if (reference.includes(':')) return [reference];
  return [...new Set(cat.tagsOf(registry, repo, reference).map((t) => t.record.digest))];
}

/**
 * Blob digests every pin keeps, and their bytes in the cache.
 * @throws StorageUnavailableError when the metadata store cannot be reached.
 */
export async function pinnedBlobs(meta: MetadataStore): Promise<{ digests: Set<string>; bytes: number }> {
  const pins = await meta.listPins();
  const digests = new Set<string>();
  if (pins.size === 0) return { digests, bytes: 0 };
  const cat = await Catalog.read(meta);
  for (const p of pins.values()) {
    for (const d of cat.closure(rootsOf(cat, p.registry, p.repo, p.reference), p.platforms).blobs.keys()) digests.add(d);
  }
  let bytes = 0;
  for (const d of digests) bytes += cat.blobs.get(d)?.size ?? 0;
  return { digests, bytes };
}

/** What pinning answers. */
export interface PinResult {
  readonly ref: string;
  readonly digests: string[];
  readonly platforms: string[] | null;
  readonly blobs: number;
  readonly bytes: number;
}

/**
 * Pins a cached image (all platforms, or those named).
 * @throws AdminRequestError 404 NOT_CACHED when the image (or a chosen platform's manifest) is not
 *   cached (prefetch it first, or `prefetch --pin`), 400 UNKNOWN_PLATFORM for a platform the
 *   index does not have; StorageUnavailableError.
 */
export async function pin(meta: MetadataStore, ref: ImageRef, platforms: string[] | null): Promise<PinResult> {
  const cat = await Catalog.read(meta);
  const reference = referenceText(ref.reference);
  const roots = rootsOf(cat, ref.registry.name, ref.repo, reference).filter((d) => cat.manifests.has(d));
  if (roots.length === 0) {
    throw new AdminRequestError(404, 'NOT_CACHED', `${ref.canonical} is not cached: nothing to pin. Prefetch it first (pullthrough prefetch --pin ${ref.canonical})`);
  }
  const c = cat.closure(roots, platforms);
  if (platforms) {
    for (const p of platforms) {
      if (!c.platforms.some((have) => platformMatches(have, p))) {
        throw new AdminRequestError(400, 'UNKNOWN_PLATFORM', `${ref.canonical} has no platform ${p} (it has: ${c.platforms.join(', ') || 'a single platform'})`);
      }
    }
  }
  if (c.missingManifests.size > 0) {
    throw new AdminRequestError(404, 'NOT_CACHED', `${ref.canonical}: ${c.missingManifests.size} of its platform manifests are not cached; prefetch them first (pullthrough prefetch --pin ${platforms ? platforms.map((p) => `--platform ${p} `).join('') : ''}${ref.canonical})`);
  }
  await meta.putPin(pinKey(ref), { registry: ref.registry.name, repo: ref.repo, reference, platforms, pinnedAt: Date.now() });
  let bytes = 0;
  for (const d of c.blobs.keys()) bytes += cat.blobs.get(d)?.size ?? 0;
  return { ref: ref.canonical, digests: roots, platforms, blobs: c.blobs.size, bytes };
}

/**
 * Removes a pin.
 * @throws AdminRequestError 404 NOT_PINNED; StorageUnavailableError.
 */
export async function unpin(meta: MetadataStore, ref: ImageRef): Promise<void> {
  if (!(await meta.deletePin(pinKey(ref)))) throw new AdminRequestError(404, 'NOT_PINNED', `${ref.canonical} is not pinned`);
}

/** Every pin, for GET /api/v1/pins. */
export async function listPins(meta: MetadataStore): Promise<Array<{ ref: string; platforms: readonly string[] | null; pinnedAt: string }>> {
  const pins = await meta.listPins();
  return [...pins.values()]
    .map((p) => ({ ref: canonicalRef(p.registry, p.repo, p.reference), platforms: p.platforms, pinnedAt: new Date(p.pinnedAt).toISOString() }))
    .sort((a, b) => (a.ref < b.ref ? -1 : a.ref > b.ref ? 1 : 0));
}
