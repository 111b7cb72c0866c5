import { createHash, randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MAX_REFERRERS_FILTERS, MAX_REFERRERS_RECORD_BYTES, type BlobRecord, type Lock, type ManifestRecord, type MetadataStore, type PinRecord, type ReferrersRecord, type TagListRecord, type TagRecord } from './metadata-store.js';
import { inParentDir, isErrno, writeFileAtomic } from '../util/atomic-file.js';
import { referrersFromJson, referrersToJson, type StoredReferrers } from './referrers-json.js';

/** How often batched last-access times are written to disk. */
const FLUSH_INTERVAL_MS = 5_000;

/**
 * Metadata as small JSON files under `dir`, each written atomically (temp file + rename), so a
 * crash leaves every record either old or new. Blob records are also held in memory for LRU
 * ordering; last-access updates are batched. For one process only: replicas sharing a cache use
 * `RedisMetadataStore`.
 */
export class FileMetadataStore implements MetadataStore {
  readonly kind = 'file';
  private readonly tmp: string;
  private readonly blobs = new Map<string, BlobRecord>();
  private readonly dirtyBlobs = new Set<string>();
  private readonly locks = new Map<string, { token: string; expires: number }>();
  private flushTimer: NodeJS.Timeout | undefined;
  /** Tag directories whose `repository` file (what the hashed name stands for) is written. */
  private readonly namedRepos = new Set<string>();

  private constructor(private readonly dir: string) {
    this.tmp = join(dir, '_tmp');
  }

  /** Opens (creating if needed) the store in `dir` and loads the blob index. */
  static async open(dir: string): Promise<FileMetadataStore> {
    const s = new FileMetadataStore(dir);
    await rm(s.tmp, { recursive: true, force: true });
    await mkdir(s.tmp, { recursive: true });
    await s.loadBlobs();
    s.flushTimer = setInterval(() => void s.flush().catch(() => {}), FLUSH_INTERVAL_MS);
    s.flushTimer.unref();
    return s;
  }

  private repoDir(registry: string, repo: string): string {
    // Hashed so that any registry/repository name maps to one short, safe directory name.
    return createHash('sha256').update(`${registry}/${repo}`).digest('hex').slice(0, 40);
  }

  private async readJson<T>(path: string): Promise<T | null> {
    try {
      return JSON.parse(await readFile(path, 'utf8')) as T;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return null;
      // A torn or foreign file is treated as absent: it is rewritten on the next fill.
      if (err instanceof SyntaxError) return null;
      throw err;
    }
  }

  private write(path: string, value: unknown): Promise<void> {
    return writeFileAtomic(path, JSON.stringify(value), this.tmp);
  }

  private tagPath(registry: string, repo: string, tag: string): string {
    return join(this.dir, 'tags', this.repoDir(registry, repo), `${tag}.json`);
  }

  async getTag(registry: string, repo: string, tag: string): Promise<TagRecord | null> {
    return this.readJson<TagRecord>(this.tagPath(registry, repo, tag));
  }

  async putTag(registry: string, repo: string, tag: string, record: TagRecord): Promise<void> {
    const dir = this.repoDir(registry, repo);
    const tagWrite = this.write(this.tagPath(registry, repo, tag), record);
    if (this.namedRepos.has(dir)) return tagWrite;
    // The directory name is a hash: this file says what it is, for listRepositories. Not
    // `.json`, so listTags never takes it for a tag. Written beside the tag, not after it.
    await Promise.all([tagWrite, this.write(join(this.dir, 'tags', dir, 'repository'), { registry, repo })]);
    this.namedRepos.add(dir);
  }

  async deleteTag(registry: string, repo: string, tag: string): Promise<void> {
    await rm(this.tagPath(registry, repo, tag), { force: true });
  }

  async listRepositories(): Promise<Array<{ registry: string; repo: string }>> {
    let dirs: string[];
    try {
      dirs = await readdir(join(this.dir, 'tags'));
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return [];
      throw err;
    }
    const out: Array<{ registry: string; repo: string }> = [];
    for (const d of dirs) {
      const r = await this.readJson<{ registry?: unknown; repo?: unknown }>(join(this.dir, 'tags', d, 'repository'));
      // Directories written before this file existed are unnamed until their next tag write.
      if (r && typeof r.registry === 'string' && typeof r.repo === 'string') out.push({ registry: r.registry, repo: r.repo });
    }
    return out;
  }

  async listTags(registry: string, repo: string): Promise<string[]> {
    try {
      const names = await readdir(join(this.dir, 'tags', this.repoDir(registry, repo)));
      return names.filter((n) => n.endsWith('.json')).map((n) => n.slice(0, -5)).sort();
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return [];
      throw err;
    }
  }

  private tagListPath(registry: string, repo: string): string {
    return join(this.dir, 'tag-lists', `${this.repoDir(registry, repo)}.json`);
  }

  async getTagList(registry: string, repo: string): Promise<TagListRecord | null> {
    const r = await this.readJson<TagListRecord>(this.tagListPath(registry, repo));
    // Foreign or torn content is absent, as for every other record.
    return r && Array.isArray(r.tags) && typeof r.fetchedAt === 'number' ? r : null;
  }

  async putTagList(registry: string, repo: string, record: TagListRecord): Promise<void> {
    await this.write(this.tagListPath(registry, repo), { tags: record.tags, fetchedAt: record.fetchedAt });
  }

  /** One directory per manifest, one file per artifactType filter (hashed: any string is a safe name). */
  private referrersDir(registry: string, repo: string, digest: string): string {
    return join(this.dir, 'referrers', this.repoDir(registry, repo), digest.replace(':', '-'));
  }

  private static filterFile(artifactType: string | undefined): string {
    // '' cannot collide with a filter: the HTTP layer passes no empty artifactType.
    return `${createHash('sha256').update(artifactType ?? '').digest('hex').slice(0, 40)}.json`;
  }

  async getReferrers(registry: string, repo: string, digest: string, artifactType: string | undefined): Promise<ReferrersRecord | null> {
    const r = await this.readJson<StoredReferrers>(join(this.referrersDir(registry, repo, digest), FileMetadataStore.filterFile(artifactType)));
    return r ? referrersFromJson(r, artifactType) : null;
  }

  async putReferrers(registry: string, repo: string, digest: string, artifactType: string | undefined, record: ReferrersRecord): Promise<void> {
    const dir = this.referrersDir(registry, repo, digest);
    const file = join(dir, FileMetadataStore.filterFile(artifactType));
    if (record.supported && record.body.length > MAX_REFERRERS_RECORD_BYTES) {
      await rm(file, { force: true });
      return;
    }
    await this.write(file, referrersToJson(record, artifactType));
    // Bounded: past MAX_REFERRERS_FILTERS, drop the records fetched longest ago (never this one).
    // Only reached when clients ask for many filters of one manifest, so reading them is rare.
    const mine = FileMetadataStore.filterFile(artifactType);
    const others = (await readdir(dir)).filter((n) => n.endsWith('.json') && n !== mine);
    if (others.length < MAX_REFERRERS_FILTERS) return;
    const aged = await Promise.all(
      others.map(async (n) => ({ n, at: (await this.readJson<StoredReferrers>(join(dir, n)))?.fetchedAt ?? -Infinity })),
    );
    aged.sort((a, b) => a.at - b.at || (a.n < b.n ? -1 : 1));
    for (const { n } of aged.slice(0, others.length - MAX_REFERRERS_FILTERS + 1)) await rm(join(dir, n), { force: true });
  }

  private manifestPath(digest: string): string {
    const [alg, hex] = digest.split(':') as [string, string];
    return join(this.dir, 'manifests', alg, `${hex}.json`);
  }

  async getManifest(digest: string): Promise<ManifestRecord | null> {
    const r = await this.readJson<{ mediaType: string; body: string }>(this.manifestPath(digest));
    return r && { mediaType: r.mediaType, body: Buffer.from(r.body, 'base64') };
  }

  async putManifest(digest: string, record: ManifestRecord): Promise<void> {
    await this.write(this.manifestPath(digest), { mediaType: record.mediaType, body: record.body.toString('base64') });
  }

  async deleteManifest(digest: string): Promise<void> {
    await rm(this.manifestPath(digest), { force: true });
  }

  async listManifests(): Promise<string[]> {
    const root = join(this.dir, 'manifests');
    const out: string[] = [];
    let algs: string[];
    try {
      algs = await readdir(root);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return [];
      throw err;
    }
    for (const alg of algs) {
      for (const name of await readdir(join(root, alg))) if (name.endsWith('.json')) out.push(`${alg}:${name.slice(0, -5)}`);
    }
    return out;
  }

  private pinPath(key: string): string {
    return join(this.dir, 'pins', `${createHash('sha256').update(key).digest('hex').slice(0, 40)}.json`);
  }

  async putPin(key: string, record: PinRecord): Promise<void> {
    await this.write(this.pinPath(key), { key, record });
  }

  async deletePin(key: string): Promise<boolean> {
    const had = (await this.readJson<unknown>(this.pinPath(key))) !== null;
    await rm(this.pinPath(key), { force: true });
    return had;
  }

  async listPins(): Promise<Map<string, PinRecord>> {
    const out = new Map<string, PinRecord>();
    let names: string[];
    try {
      names = await readdir(join(this.dir, 'pins'));
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return out;
      throw err;
    }
    for (const n of names) {
      if (!n.endsWith('.json')) continue;
      const r = await this.readJson<{ key?: unknown; record?: PinRecord }>(join(this.dir, 'pins', n));
      if (r && typeof r.key === 'string' && r.record) out.set(r.key, r.record);
    }
    return out;
  }

  private linkPath(registry: string, repo: string, digest: string): string {
    return join(this.dir, 'links', this.repoDir(registry, repo), digest.replace(':', '-'));
  }

  async isLinked(registry: string, repo: string, digest: string): Promise<boolean> {
    try {
      await stat(this.linkPath(registry, repo, digest));
      return true;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return false;
      throw err;
    }
  }

  async link(registry: string, repo: string, digest: string): Promise<void> {
    const p = this.linkPath(registry, repo, digest);
    await inParentDir(p, () => writeFile(p, ''));
  }

  private blobPath(digest: string): string {
    const [alg, hex] = digest.split(':') as [string, string];
    return join(this.dir, 'blobs', alg, `${hex}.json`);
  }

  private async loadBlobs(): Promise<void> {
    const root = join(this.dir, 'blobs');
    let algs: string[];
    try {
      algs = await readdir(root);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return;
      throw err;
    }
    for (const alg of algs) {
      for (const name of await readdir(join(root, alg))) {
        if (!name.endsWith('.json')) continue;
        const rec = await this.readJson<BlobRecord>(join(root, alg, name));
        if (rec) this.blobs.set(`${alg}:${name.slice(0, -5)}`, rec);
      }
    }
  }

  async getBlob(digest: string): Promise<BlobRecord | null> {
    return this.blobs.get(digest) ?? null;
  }

  async putBlob(digest: string, record: BlobRecord): Promise<void> {
    await this.write(this.blobPath(digest), record);
    this.blobs.set(digest, record);
    this.dirtyBlobs.delete(digest);
  }

  async touchBlob(digest: string, at: number): Promise<void> {
    const rec = this.blobs.get(digest);
    if (!rec || rec.lastAccess >= at) return;
    this.blobs.set(digest, { ...rec, lastAccess: at });
    this.dirtyBlobs.add(digest);
  }

  async deleteBlob(digest: string): Promise<void> {
    this.blobs.delete(digest);
    this.dirtyBlobs.delete(digest);
    await rm(this.blobPath(digest), { force: true });
  }

  async oldestBlobs(limit: number): Promise<Array<{ digest: string } & BlobRecord>> {
    return [...this.blobs.entries()]
      .sort((a, b) => a[1].lastAccess - b[1].lastAccess)
      .slice(0, limit)
      .map(([digest, r]) => ({ digest, ...r }));
  }

  async totalBlobSize(): Promise<number> {
    let total = 0;
    for (const r of this.blobs.values()) total += r.size;
    return total;
  }

  async tryLock(name: string, ttlMs: number): Promise<Lock | null> {
    const now = Date.now();
    const held = this.locks.get(name);
    if (held && held.expires > now) return null;
    const token = randomUUID();
    this.locks.set(name, { token, expires: now + ttlMs });
    const locks = this.locks;
    return {
      async extend(ms: number): Promise<boolean> {
        const cur = locks.get(name);
        if (!cur || cur.token !== token) return false;
        cur.expires = Date.now() + ms;
        return true;
      },
      async release(): Promise<void> {
        if (locks.get(name)?.token === token) locks.delete(name);
      },
    };
  }

  private async flush(): Promise<void> {
    const digests = [...this.dirtyBlobs];
    this.dirtyBlobs.clear();
    for (const d of digests) {
      const rec = this.blobs.get(d);
      if (rec) await this.write(this.blobPath(d), rec);
    }
  }

  async close(): Promise<void> {
    clearInterval(this.flushTimer);
    await this.flush();
  }
}
