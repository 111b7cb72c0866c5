/**
 * Purge: forget a tag, a digest, a repository, or everything not pulled since a time.
 *
 * Order, so that no half-deleted image is ever visible: first the records that make an image
 * visible (tag records, then manifests, indexes before their children), then blob records, then
 * blob bytes. A pull that meets the gap fetches again: a tag without its manifest record is
 * revalidated upstream, a manifest whose blob record is gone gets the blob downloaded again, a
 * reader whose bytes vanish under a record refetches them (PullThroughCache). A blob that another
 * cached manifest (or a pin) still references is kept.
 *
 * Downloads in progress: a blob of the purged image being downloaded on this replica, or whose
 * download lease (`fill:<digest>`) another replica holds, makes the purge refuse with 409
 * IN_PROGRESS before anything is deleted. While purging, the purge holds the download lease of
 * every blob it deletes, so no replica starts downloading one of them in between (it waits for
 * the lease, then downloads it anew). One purge at a time across replicas (lease `admin-purge`).
 */
import type { BlobStore } from '../storage/blob-store.js';
import type { Lock, MetadataStore } from '../storage/metadata-store.js';
import { blobKey } from '../storage/keys.js';
import type { DownloadTracker } from '../cache/downloads.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { Catalog, type TagEntry } from './catalog.js';
import { canonicalRef, referenceText, type ImageRef } from './image-ref.js';
import { rootsOf } from './pins.js';
import { AdminRequestError } from './errors.js';

/** What to purge. */
export type PurgeSelector =
  | { readonly kind: 'ref'; readonly ref: ImageRef }
  | { readonly kind: 'repo'; readonly registry: string; readonly repo: string }
  | { readonly kind: 'olderThan'; readonly before: number };

/** What a purge removed (or, with dryRun, would remove). */
export interface PurgeResult {
  readonly dryRun: boolean;
  readonly tags: string[];
  readonly manifests: string[];
  readonly blobs: string[];
  /** Blob bytes freed. */
  readonly bytes: number;
  /** Images left alone because a pin keeps them. */
  readonly skippedPinned: string[];
}

export interface PurgeDeps {
  readonly meta: MetadataStore;
  readonly blobs: BlobStore;
  readonly downloads: DownloadTracker;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** cache.fillLease: the lease held on each blob while it is deleted. */
  readonly leaseMs: number;
}

interface Plan {
  tags: TagEntry[];
  manifests: string[];
  blobs: string[];
  /** Blobs of the purged manifests that have no record yet: maybe being downloaded. */
  unrecorded: string[];
  skippedPinned: string[];
}

function plan(cat: Catalog, sel: PurgeSelector): Plan {
  const skippedPinned: string[] = [];
  let tags: TagEntry[] = [];
  const forced = new Set<string>();
  const candidates = new Set<string>();
  const pinnedTag = (t: TagEntry): boolean => cat.isPinned(t.registry, t.repo, t.tag, t.record.digest);

  if (sel.kind === 'ref') {
    const { ref } = sel;
    const reference = referenceText(ref.reference);
    const roots = rootsOf(cat, ref.registry.name, ref.repo, reference);
    if (ref.reference.kind === 'tag') {
      tags = cat.tagsOf(ref.registry.name, ref.repo, ref.reference.tag);
      if (tags.length === 0) throw new AdminRequestError(404, 'NOT_CACHED', `${ref.canonical} is not cached`);
    } else {
      if (!cat.manifests.has(ref.reference.digest)) throw new AdminRequestError(404, 'NOT_CACHED', `${ref.canonical} is not cached`);
      // The manifest goes, so do the tags that point at it (they would name nothing cached).
      tags = cat.tags.filter((t) => roots.includes(t.record.digest));
      for (const r of roots) forced.add(r);
    }
    const pinned = tags.some(pinnedTag) || roots.some((d) => cat.isPinned(ref.registry.name, ref.repo, null, d));
    if (pinned) throw new AdminRequestError(409, 'PINNED', `${ref.canonical} is pinned; unpin it first (pullthrough unpin ${ref.canonical})`);
  } else if (sel.kind === 'repo') {
    tags = cat.tags.filter((t) => t.registry === sel.registry && t.repo === sel.repo);
    if (tags.length === 0) throw new AdminRequestError(404, 'NOT_CACHED', `${sel.registry}/${sel.repo}: nothing cached`);
  } else {
    // Tagged images not pulled since `before`, and manifests pulled by digest alone (no tag, no index names them).
    for (const t of cat.tags) {
      const last = cat.lastPulled(cat.closure([t.record.digest]));
      if (last === null || last < sel.before) tags.push(t);
    }
    const named = new Set<string>(cat.tags.map((t) => t.record.digest));
    for (const m of cat.manifests.values()) if (m.shape.kind === 'index') for (const c of m.shape.children) named.add(c.digest);
    for (const d of cat.manifests.keys()) {
      if (named.has(d)) continue;
      const last = cat.lastPulled(cat.closure([d]));
      if (last === null || last < sel.before) candidates.add(d);
    }
  }
  if (sel.kind !== 'ref') {
    const kept = tags.filter(pinnedTag);
    for (const t of kept) skippedPinned.push(canonicalRef(t.registry, t.repo, t.tag));
    tags = tags.filter((t) => !pinnedTag(t));
  }
  for (const t of tags) candidates.add(t.record.digest);
  for (const d of forced) candidates.add(d);

  // Keep whatever remains reachable: the tags left, every manifest that is no candidate, pins.
  const removedTags = new Set(tags);
  const roots = new Set<string>();
  for (const t of cat.tags) if (!removedTags.has(t)) roots.add(t.record.digest);
  const candidateClosure = cat.closure(candidates).manifests;
  for (const d of cat.manifests.keys()) if (!candidateClosure.has(d)) roots.add(d);
  for (const p of cat.pins.values()) for (const d of cat.closure(rootsOf(cat, p.registry, p.repo, p.reference), p.platforms).manifests) roots.add(d);
  for (const d of forced) roots.delete(d);
  const keep = cat.closure(roots).manifests;
  for (const d of forced) keep.delete(d);
  const manifests = [...candidateClosure].filter((d) => !keep.has(d));
  // Indexes first: an index is never visible while a child it names is already gone.
  manifests.sort((a, b) => Number(cat.manifests.get(b)?.shape.kind === 'index') - Number(cat.manifests.get(a)?.shape.kind === 'index'));

  const keptBlobs = new Set<string>();
  for (const d of cat.manifests.keys()) {
    if (manifests.includes(d)) continue;
    const s = cat.manifests.get(d)!.shape;
    if (s.kind === 'image') for (const b of s.blobs) keptBlobs.add(b.digest);
  }
  const gone = cat.closure(manifests);
  const blobs: string[] = [];
  const unrecorded: string[] = [];
  for (const d of gone.blobs.keys()) {
    if (keptBlobs.has(d)) continue;
    if (cat.blobs.has(d)) blobs.push(d);
    else unrecorded.push(d);
  }
  return { tags, manifests, blobs, unrecorded, skippedPinned };
}

/**
 * Purges what `sel` selects.
 * @throws AdminRequestError 404 NOT_CACHED, 409 PINNED (a pinned reference), 409 IN_PROGRESS (a
 *   blob of it is being downloaded; nothing deleted), 409 BUSY (another purge runs);
 *   StorageUnavailableError.
 */
export async function purge(d: PurgeDeps, sel: PurgeSelector, dryRun: boolean): Promise<PurgeResult> {
  const lock = dryRun ? null : await d.meta.tryLock('admin-purge', 5 * 60_000);
  if (!dryRun && !lock) throw new AdminRequestError(409, 'BUSY', 'another purge is running (on this or another replica); try again');
  const leases: Lock[] = [];
  try {
    const cat = await Catalog.read(d.meta);
    const p = plan(cat, sel);
    let bytes = 0;
    for (const b of p.blobs) bytes += cat.blobs.get(b)?.size ?? 0;
    const result: PurgeResult = {
      dryRun,
      tags: p.tags.map((t) => canonicalRef(t.registry, t.repo, t.key)),
      manifests: p.manifests,
      blobs: p.blobs,
      bytes,
      skippedPinned: p.skippedPinned,
    };
    // Downloads in progress: here (the tracker), or on another replica (its lease is taken).
    const busy = new Set<string>();
    for (const b of [...p.blobs, ...p.unrecorded]) {
      if (d.downloads.forDigest(b).length > 0) busy.add(b);
      else if (!dryRun) {
        const l = await d.meta.tryLock(`fill:${b}`, d.leaseMs);
        if (l) leases.push(l);
        else busy.add(b);
      }
    }
    if (busy.size > 0) {
      throw new AdminRequestError(409, 'IN_PROGRESS', `${busy.size} blob(s) of it are being downloaded right now; nothing was purged. Try again once the download is done (pullthrough status REF shows it)`, { downloading: [...busy] });
    }
    if (dryRun) return result;
    // Visible records first, then blob records, then bytes (see the module comment).
    for (const t of p.tags) await d.meta.deleteTag(t.space, t.repo, t.key);
    for (const m of p.manifests) await d.meta.deleteManifest(m);
    for (const b of p.blobs) await d.meta.deleteBlob(b);
    for (const b of p.blobs) await d.blobs.delete(blobKey(b));
    const total = await d.meta.totalBlobSize().catch(() => null);
    if (total !== null) d.metrics.cacheSizeBytes.set(total);
    d.log.info('purged', { selector: sel.kind === 'ref' ? sel.ref.canonical : sel.kind === 'repo' ? `${sel.registry}/${sel.repo}` : `not pulled since ${new Date(sel.before).toISOString()}`, tags: result.tags.length, manifests: result.manifests.length, blobs: result.blobs.length, bytes });
    return result;
  } finally {
    await Promise.allSettled(leases.map((l) => l.release()));
    await lock?.release().catch(() => {});
  }
}
