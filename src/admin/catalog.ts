/**
 * A snapshot of what the cache holds, read from the metadata store alone (never upstream): tag
 * records, manifests and what they reference, blob records and pins. Listings, status, purge and
 * pins are computed over it.
 */
import type { BlobRecord, MetadataStore, PinRecord, TagRecord } from '../storage/metadata-store.js';
import { manifestShape, platformMatches, type ManifestShape } from './manifest-tree.js';

/** A cached manifest and what it references. */
export interface ManifestNode {
  readonly digest: string;
  readonly mediaType: string;
  /** Bytes of the manifest itself. */
  readonly size: number;
  readonly shape: ManifestShape;
}

/** One tag record, with where it is kept. */
export interface TagEntry {
  /** The namespace the record is kept under: the registry name, or `name#account` (see PullThroughCache.space). */
  readonly space: string;
  /** Configured registry name. */
  readonly registry: string;
  readonly repo: string;
  /** The tag as users write it. */
  readonly tag: string;
  /** The record's own name: the tag, or `tag~single` for clients that take no index. */
  readonly key: string;
  readonly record: TagRecord;
}

/** Everything an image (a manifest and what it references) consists of in the cache. */
export interface Closure {
  /** Cached manifests (the root, and the chosen children of an index). */
  readonly manifests: Set<string>;
  /** Referenced manifests that are not cached. */
  readonly missingManifests: Set<string>;
  /** Blobs the manifests reference, with their declared size. */
  readonly blobs: Map<string, number>;
  /** Platforms of the index children (all of them, not only the chosen ones). */
  readonly platforms: string[];
}

/** A cached image as the admin API lists it. */
export interface ImageSummary {
  readonly registry: string;
  readonly repo: string;
  readonly tag: string | null;
  readonly digest: string;
  readonly mediaType: string;
  readonly platforms: string[];
  /** Bytes in the cache: its manifests plus the blobs present. */
  readonly size: number;
  readonly blobs: { readonly present: number; readonly total: number };
  /** Last read of any of its blobs (ISO time), null when none is cached. */
  readonly lastPulled: string | null;
  /** When upstream last confirmed the tag (ISO time); null for an image listed by digest. */
  readonly checkedAt: string | null;
  readonly pinned: boolean;
}

/** The registry name of a record namespace (`docker.io#u1234` → `docker.io`). */
export function registryOfSpace(space: string): string {
  const i = space.indexOf('#');
  return i < 0 ? space : space.slice(0, i);
}

export class Catalog {
  private constructor(
    readonly manifests: Map<string, ManifestNode>,
    readonly blobs: Map<string, BlobRecord>,
    readonly tags: TagEntry[],
    readonly pins: Map<string, PinRecord>,
  ) {}

  /**
   * Reads the whole snapshot.
   * @throws StorageUnavailableError when the metadata store cannot be reached.
   */
  static async read(meta: MetadataStore): Promise<Catalog> {
    const [repos, digests, blobList, pins] = await Promise.all([meta.listRepositories(), meta.listManifests(), meta.oldestBlobs(Infinity), meta.listPins()]);
    const tags: TagEntry[] = [];
    for (const { registry: space, repo } of repos) {
      for (const key of await meta.listTags(space, repo)) {
        const record = await meta.getTag(space, repo, key);
        if (record) tags.push({ space, registry: registryOfSpace(space), repo, tag: key.replace(/~single$/, ''), key, record });
      }
    }
    const manifests = new Map<string, ManifestNode>();
    for (const digest of digests) {
      const m = await meta.getManifest(digest);
      if (m) manifests.set(digest, { digest, mediaType: m.mediaType, size: m.body.length, shape: manifestShape(m.body) });
    }
    const blobs = new Map<string, BlobRecord>();
    for (const b of blobList) blobs.set(b.digest, { size: b.size, lastAccess: b.lastAccess });
    return new Catalog(manifests, blobs, tags, pins);
  }

  /** The tag records of `registry`/`repo` (every namespace), optionally of one tag only. */
  tagsOf(registry: string, repo: string, tag?: string): TagEntry[] {
    return this.tags.filter((t) => t.registry === registry && t.repo === repo && (tag === undefined || t.tag === tag));
  }

  /**
   * The manifests and blobs `roots` consist of; an index's children are limited to `platforms`
   * when given (null: all).
   */
  closure(roots: Iterable<string>, platforms: readonly string[] | null = null): Closure {
    const out: Closure = { manifests: new Set(), missingManifests: new Set(), blobs: new Map(), platforms: [] };
    const visit = (digest: string, depth: number): void => {
      if (out.manifests.has(digest) || out.missingManifests.has(digest) || depth > 4) return;
      const node = this.manifests.get(digest);
      if (!node) {
        out.missingManifests.add(digest);
        return;
      }
      out.manifests.add(digest);
      if (node.shape.kind === 'image') for (const b of node.shape.blobs) out.blobs.set(b.digest, b.size);
      if (node.shape.kind === 'index') {
        for (const c of node.shape.children) {
          if (!out.platforms.includes(c.platform)) out.platforms.push(c.platform);
          if (platforms && !platforms.some((p) => platformMatches(c.platform, p))) continue;
          visit(c.digest, depth + 1);
        }
      }
    };
    for (const r of roots) visit(r, 0);
    return out;
  }

  /** Whether a pin covers `registry`/`repo` by this tag or this digest. */
  isPinned(registry: string, repo: string, tag: string | null, digest: string): boolean {
    for (const p of this.pins.values()) {
      if (p.registry !== registry || p.repo !== repo) continue;
      if (p.reference === digest || (tag !== null && p.reference === tag)) return true;
    }
    return false;
  }

  /** Last read of any blob of `c`, ms since the epoch, or null. */
  lastPulled(c: Closure): number | null {
    let last: number | null = null;
    for (const d of c.blobs.keys()) {
      const b = this.blobs.get(d);
      if (b && (last === null || b.lastAccess > last)) last = b.lastAccess;
    }
    return last;
  }

  /** The summary of the image `digest` is the top of (under `tag`, when listed by tag). */
  summary(registry: string, repo: string, tag: string | null, digest: string, checkedAt: number | null): ImageSummary {
    const c = this.closure([digest]);
    let size = 0;
    for (const m of c.manifests) size += this.manifests.get(m)?.size ?? 0;
    let present = 0;
    for (const d of c.blobs.keys()) {
      const b = this.blobs.get(d);
      if (b) {
        present++;
        size += b.size;
      }
    }
    const last = this.lastPulled(c);
    return {
      registry,
      repo,
      tag,
      digest,
      mediaType: this.manifests.get(digest)?.mediaType ?? 'unknown',
      platforms: c.platforms,
      size,
      blobs: { present, total: c.blobs.size },
      lastPulled: last === null ? null : new Date(last).toISOString(),
      checkedAt: checkedAt === null ? null : new Date(checkedAt).toISOString(),
      pinned: this.isPinned(registry, repo, tag, digest),
    };
  }

  /**
   * Every tagged image whose manifest is cached, one per registry, repository and tag (a tag's
   * record for clients that take no index is listed only when there is no other), sorted.
   */
  images(): ImageSummary[] {
    const chosen = new Map<string, TagEntry>();
    for (const t of this.tags) {
      if (!this.manifests.has(t.record.digest)) continue;
      const k = `${t.registry}/${t.repo}:${t.tag}`;
      const prev = chosen.get(k);
      if (!prev || (prev.key !== prev.tag && t.key === t.tag) || (prev.key === t.key && t.record.checkedAt > prev.record.checkedAt)) chosen.set(k, t);
    }
    return [...chosen.entries()]
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .map(([, t]) => this.summary(t.registry, t.repo, t.tag, t.record.digest, t.record.checkedAt));
  }
}
