import { randomUUID } from 'node:crypto';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { MAX_REFERRERS_FILTERS, MAX_REFERRERS_RECORD_BYTES, type BlobRecord, type Lock, type ManifestRecord, type MetadataStore, type PinRecord, type ReferrersRecord, type TagListRecord, type TagRecord } from './metadata-store.js';
import { referrersFromJson, referrersToJson, type StoredReferrers } from './referrers-json.js';
import { StorageUnavailableError } from './errors.js';

/** Where connection warnings go; the app's Logger fits. */
export interface StoreLogger {
  warn(msg: string, fields?: Record<string, unknown>): void;
}

export interface RedisMetadataStoreOptions {
  /**
   * One Redis: `redis://[user:password@]host:port[/db]` (`rediss://` for TLS). With `sentinels`,
   * only its credentials, db and scheme are used.
   */
  url?: string;
  /** Prepended to every key, so several caches (or other apps) can share one Redis. */
  keyPrefix?: string;
  /** Redis Sentinel: `host:port` of each sentinel; `name` is the master group. */
  sentinels?: string[];
  name?: string;
  sentinelPassword?: string;
  /** Redis Cluster: URLs of some nodes; credentials and TLS come from the first. */
  cluster?: string[];
  /** Longest wait for one reply. Default 2 s. */
  commandTimeoutMs?: number;
  /** Longest wait for a TCP (+TLS) connection. Default 2 s. */
  connectTimeoutMs?: number;
  /** How often batched touchBlob() calls are written. Default 1 s. */
  touchFlushMs?: number;
  logger?: StoreLogger;
}

/** Most digests whose last access is kept in memory while Redis cannot take them. */
const MAX_PENDING_TOUCHES = 100_000;
/** Digest/time pairs per touch script call, so one call never blocks Redis for long. */
const TOUCH_BATCH = 500;

/*
 * Blob bookkeeping lives in three keys that share the hash tag `{blobs}`, so that in a Redis
 * Cluster they sit in one slot and the scripts below may touch all three atomically:
 *   {blobs}:size   hash   digest → size in bytes
 *   {blobs}:lru    zset   digest → lastAccess (ms), for oldestBlobs
 *   {blobs}:total  string sum of all sizes
 * A record exists exactly when its digest is in both `size` and `lru`; only these scripts write
 * them, so the total always equals the sum of the sizes, whatever runs concurrently.
 */
const K_SIZE = '{blobs}:size';
const K_LRU = '{blobs}:lru';
const K_TOTAL = '{blobs}:total';

const SCRIPTS = {
  ptPutBlob: {
    numberOfKeys: 3,
    lua: `
local old = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
if old then redis.call('DECRBY', KEYS[3], old) end
redis.call('INCRBY', KEYS[3], ARGV[2])
return 1`,
  },
  ptDeleteBlob: {
    numberOfKeys: 3,
    lua: `
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DECRBY', KEYS[3], old)
return 1`,
  },
  ptGetBlob: {
    numberOfKeys: 2,
    lua: `return {redis.call('HGET', KEYS[1], ARGV[1]), redis.call('ZSCORE', KEYS[2], ARGV[1])}`,
  },
  // Moves lastAccess forward only, and only for records that still exist (a touch batched before
  // a delete must not bring the record back).
  ptTouch: {
    numberOfKeys: 1,
    lua: `
local n = 0
for i = 1, #ARGV, 2 do
  local s = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if s and tonumber(s) < tonumber(ARGV[i + 1]) then
    redis.call('ZADD', KEYS[1], ARGV[i + 1], ARGV[i])
    n = n + 1
  end
end
return n`,
  },
  ptOldest: {
    numberOfKeys: 2,
    lua: `
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]), 'WITHSCORES')
local out = {}
for i = 1, #ids, 2 do
  out[#out + 1] = ids[i]
  out[#out + 1] = ids[i + 1]
  out[#out + 1] = redis.call('HGET', KEYS[2], ids[i]) or '0'
end
return out`,
  },
  // One referrers record per filter of a manifest: KEYS[1] hash filter → JSON, KEYS[2] zset
  // filter → fetchedAt. Past the bound (ARGV[4]) the oldest other filters go, atomically.
  ptPutReferrers: {
    numberOfKeys: 2,
    lua: `
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if over > 0 then
  local old = redis.call('ZRANGE', KEYS[2], 0, over)
  local n = 0
  for _, f in ipairs(old) do
    if f ~= ARGV[1] and n < over then
      redis.call('HDEL', KEYS[1], f)
      redis.call('ZREM', KEYS[2], f)
      n = n + 1
    end
  end
end
return 1`,
  },
  ptDropReferrers: {
    numberOfKeys: 2,
    lua: `redis.call('HDEL', KEYS[1], ARGV[1]) redis.call('ZREM', KEYS[2], ARGV[1]) return 1`,
  },
  ptExtendLock: {
    numberOfKeys: 1,
    lua: `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`,
  },
  ptReleaseLock: {
    numberOfKeys: 1,
    lua: `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`,
  },
} as const;

type Arg = string | number | Buffer;
type Client = (Redis | Cluster) & {
  ptPutBlob(size: string, lru: string, total: string, digest: string, bytes: number, at: number): Promise<number>;
  ptDeleteBlob(size: string, lru: string, total: string, digest: string): Promise<number>;
  ptGetBlob(size: string, lru: string, digest: string): Promise<[string | null, string | null]>;
  ptTouch(lru: string, ...pairs: Arg[]): Promise<number>;
  ptOldest(lru: string, size: string, stop: number): Promise<string[]>;
  ptPutReferrers(records: string, times: string, filter: string, json: string, fetchedAt: number, max: number): Promise<number>;
  ptDropReferrers(records: string, times: string, filter: string): Promise<number>;
  ptExtendLock(key: string, token: string, ttlMs: number): Promise<number>;
  ptReleaseLock(key: string, token: string): Promise<number>;
};

/** Reply errors that mean "this Redis cannot serve right now" rather than a bug in the call. */
const TRANSIENT_REPLY = /^(LOADING|READONLY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|BUSY|NOREPLICAS|MISCONF|MOVED|ASK)\b/;

const silent: StoreLogger = { warn() {} };

/**
 * Metadata in Redis, shared by every replica pointing at the same Redis and key prefix.
 *
 * Layout (after `keyPrefix`): `tags:<registry>/<repo>` hash tag → JSON TagRecord;
 * `manifest:<digest>` hash {mediaType, body (raw bytes)}; `links:<registry>/<repo>` set of
 * digests; `referrers:{<registry>/<repo>@<digest>}` hash filter → JSON ReferrersRecord, with
 * `referrers-at:{…}` zset filter → fetchedAt for its bound; `lock:<name>` string token with a PX
 * expiry; blob records as described at K_SIZE; `repos` set of `<registry>/<repo>` with tag records
 * and `manifests` set of manifest digests (indexes for the admin API's listings); `pins` hash key →
 * JSON PinRecord.
 * Requires Redis ≥ 5 (Lua scripts; no module).
 *
 * ## While Redis is unreachable
 * - Every method except `touchBlob` rejects with {@link StorageUnavailableError}, at once when the
 *   connection is known to be down (no offline queue), and within `commandTimeoutMs` when Redis
 *   stops answering on an open connection. Nothing is queued to be replayed later.
 * - A write that was in flight when the connection broke may or may not have been applied. Every
 *   write is idempotent (a set, a hash field, an atomic script), so retrying it is safe; the blob
 *   scripts apply whole or not at all, so `totalBlobSize` never drifts.
 * - `touchBlob` never fails: touches are kept in memory (the latest time per digest, at most
 *   100 000 digests) and written once Redis is back. `close()` tries a last flush and rejects
 *   with StorageUnavailableError if that fails, after releasing the connection.
 * - Locks cannot be taken or extended: `tryLock` and `extend` reject, so a holder must treat its
 *   lease as lost. Leases still expire in Redis by their TTL.
 * - The client reconnects by itself (backoff up to 1 s) and the same instance serves again once
 *   Redis answers. If Redis came back without its data (no persistence), the store is simply
 *   empty: tags and manifests are refetched, and blob records must be rebuilt from the BlobStore.
 */
export class RedisMetadataStore implements MetadataStore {
  readonly kind = 'redis';
  private pending = new Map<string, number>();
  private flushing: Promise<void> | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  private down = false;
  private closed = false;

  private constructor(private readonly redis: Client) {}

  /**
   * Connects and waits until Redis answers.
   * @throws StorageUnavailableError when it cannot within the connect timeout.
   */
  static async open(opts: RedisMetadataStoreOptions): Promise<RedisMetadataStore> {
    const log = opts.logger ?? silent;
    const redis = RedisMetadataStore.client(opts);
    for (const [name, def] of Object.entries(SCRIPTS)) redis.defineCommand(name, def);
    const store = new RedisMetadataStore(redis);
    redis.on('error', (err: Error) => {
      // ioredis emits an error per failed reconnect attempt: log the outage once, not each retry.
      if (!store.down && !store.closed) log.warn('redis: connection lost', { error: err.message });
      store.down = true;
    });
    redis.on('ready', () => {
      if (store.down) log.warn('redis: connection restored');
      store.down = false;
    });
    try {
      await redis.connect();
    } catch (err) {
      redis.disconnect();
      throw new StorageUnavailableError('redis', `cannot connect: ${(err as Error).message}`, { cause: err });
    }
    const every = opts.touchFlushMs ?? 1_000;
    store.flushTimer = setInterval(() => void store.flush().catch(() => {}), every);
    store.flushTimer.unref();
    return store;
  }

  private static client(opts: RedisMetadataStoreOptions): Client {
    const common = {
      keyPrefix: opts.keyPrefix ?? 'pullthrough:',
      lazyConnect: true,
      // Fail fast: while disconnected, commands are rejected instead of queued (the caller gets
      // StorageUnavailableError and can serve from elsewhere or answer 503), and commands in
      // flight when the connection drops are rejected rather than resent after reconnecting.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: opts.commandTimeoutMs ?? 2_000,
      connectTimeout: opts.connectTimeoutMs ?? 2_000,
      // Reconnect forever (a number, never null), backing off to once a second.
      retryStrategy: (times: number) => Math.min(50 * times, 1_000),
      // After a Sentinel/Cluster failover the old master answers READONLY: reconnect (finding the
      // new master) instead of failing every write until restart.
      reconnectOnError: (err: Error) => (err.message.startsWith('READONLY') ? 1 : false),
    } satisfies RedisOptions;
    if (opts.cluster?.length) {
      const first = new URL(opts.cluster[0]!);
      const nodes = opts.cluster.map((u) => {
        const p = new URL(u);
        return { host: p.hostname.replace(/^\[|\]$/g, ''), port: Number(p.port || 6379) };
      });
      const { keyPrefix, ...nodeOptions } = common;
      const clusterOptions: ClusterOptions = {
        keyPrefix,
        lazyConnect: true,
        enableOfflineQueue: false,
        clusterRetryStrategy: common.retryStrategy,
        redisOptions: {
          ...nodeOptions,
          username: first.username ? decodeURIComponent(first.username) : undefined,
          password: first.password ? decodeURIComponent(first.password) : undefined,
          tls: first.protocol === 'rediss:' ? {} : undefined,
        },
      };
      return new Cluster(nodes, clusterOptions) as Client;
    }
    if (opts.sentinels?.length) {
      const sentinels = opts.sentinels.map((hp) => {
        const i = hp.lastIndexOf(':');
        return { host: hp.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(hp.slice(i + 1)) };
      });
      const extra: RedisOptions = { ...common, sentinels, name: opts.name, sentinelPassword: opts.sentinelPassword, sentinelRetryStrategy: common.retryStrategy };
      return (opts.url ? new Redis(opts.url, extra) : new Redis(extra)) as Client;
    }
    if (!opts.url) throw new Error('RedisMetadataStore: url, sentinels or cluster is required');
    return new Redis(opts.url, common) as Client;
  }

  /** Runs one call, turning connection trouble into StorageUnavailableError. */
  private async run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw new StorageUnavailableError('redis', `${what}: store is closed`);
    try {
      return await fn();
    } catch (err) {
      const e = err as Error;
      // A reply error such as WRONGTYPE is a bug or foreign data in our keys: let it through as is.
      if (e?.name === 'ReplyError' && !TRANSIENT_REPLY.test(e.message)) throw err;
      throw new StorageUnavailableError('redis', `${what}: ${e?.message ?? String(err)}`, { cause: err });
    }
  }

  private static repoKey(registry: string, repo: string): string {
    return `${registry}/${repo}`;
  }

  async getTag(registry: string, repo: string, tag: string): Promise<TagRecord | null> {
    const raw = await this.run('getTag', () => this.redis.hget(`tags:${RedisMetadataStore.repoKey(registry, repo)}`, tag));
    if (raw === null) return null;
    try {
      return JSON.parse(raw) as TagRecord;
    } catch {
      // Torn or foreign value: treated as absent, rewritten on the next fill (as the file store does).
      return null;
    }
  }

  async putTag(registry: string, repo: string, tag: string, record: TagRecord): Promise<void> {
    const key = RedisMetadataStore.repoKey(registry, repo);
    await this.run('putTag', () => this.redis.hset(`tags:${key}`, tag, JSON.stringify(record)));
    // After the record: the index may name a repository without tags, never miss one that has some.
    await this.run('putTag', () => this.redis.sadd('repos', key));
  }

  async deleteTag(registry: string, repo: string, tag: string): Promise<void> {
    // The repository stays in the index (a concurrent putTag's SADD could otherwise be undone).
    await this.run('deleteTag', () => this.redis.hdel(`tags:${RedisMetadataStore.repoKey(registry, repo)}`, tag));
  }

  async listRepositories(): Promise<Array<{ registry: string; repo: string }>> {
    const keys = await this.run('listRepositories', () => this.redis.smembers('repos'));
    return keys.map((k) => {
      // Registry names (and `name#account`) contain no '/'.
      const i = k.indexOf('/');
      return { registry: k.slice(0, i), repo: k.slice(i + 1) };
    });
  }

  async listTags(registry: string, repo: string): Promise<string[]> {
    const tags = await this.run('listTags', () => this.redis.hkeys(`tags:${RedisMetadataStore.repoKey(registry, repo)}`));
    // Code-unit order, as the file store's Array.prototype.sort gives.
    return tags.sort();
  }

  async getTagList(registry: string, repo: string): Promise<TagListRecord | null> {
    const raw = await this.run('getTagList', () => this.redis.get(`taglist:${RedisMetadataStore.repoKey(registry, repo)}`));
    if (raw === null) return null;
    try {
      const r = JSON.parse(raw) as TagListRecord;
      return Array.isArray(r.tags) && typeof r.fetchedAt === 'number' ? r : null;
    } catch {
      return null;
    }
  }

  async putTagList(registry: string, repo: string, record: TagListRecord): Promise<void> {
    await this.run('putTagList', () => this.redis.set(`taglist:${RedisMetadataStore.repoKey(registry, repo)}`, JSON.stringify({ tags: record.tags, fetchedAt: record.fetchedAt })));
  }

  /** Both keys of a manifest's referrers records, in one Cluster slot (the `{…}` hash tag). */
  private static referrersKeys(registry: string, repo: string, digest: string): [string, string] {
    const id = `{${RedisMetadataStore.repoKey(registry, repo)}@${digest}}`;
    return [`referrers:${id}`, `referrers-at:${id}`];
  }

  /** The hash field of a filter: '' for none (the HTTP layer passes no empty artifactType). */
  private static filterField(artifactType: string | undefined): string {
    return artifactType === undefined ? '' : `t:${artifactType}`;
  }

  async getReferrers(registry: string, repo: string, digest: string, artifactType: string | undefined): Promise<ReferrersRecord | null> {
    const [records] = RedisMetadataStore.referrersKeys(registry, repo, digest);
    const raw = await this.run('getReferrers', () => this.redis.hget(records, RedisMetadataStore.filterField(artifactType)));
    if (raw === null) return null;
    try {
      return referrersFromJson(JSON.parse(raw) as StoredReferrers, artifactType);
    } catch {
      return null;
    }
  }

  async putReferrers(registry: string, repo: string, digest: string, artifactType: string | undefined, record: ReferrersRecord): Promise<void> {
    const [records, times] = RedisMetadataStore.referrersKeys(registry, repo, digest);
    const field = RedisMetadataStore.filterField(artifactType);
    if (record.supported && record.body.length > MAX_REFERRERS_RECORD_BYTES) {
      await this.run('putReferrers', () => this.redis.ptDropReferrers(records, times, field));
      return;
    }
    const json = JSON.stringify(referrersToJson(record, artifactType));
    await this.run('putReferrers', () => this.redis.ptPutReferrers(records, times, field, json, Math.trunc(record.fetchedAt), MAX_REFERRERS_FILTERS));
  }

  async getManifest(digest: string): Promise<ManifestRecord | null> {
    const [mediaType, body] = await this.run('getManifest', () => this.redis.hmgetBuffer(`manifest:${digest}`, 'mediaType', 'body'));
    if (!mediaType || !body) return null;
    return { mediaType: mediaType.toString('utf8'), body };
  }

  async putManifest(digest: string, record: ManifestRecord): Promise<void> {
    // One HSET, so readers see both fields or neither.
    await this.run('putManifest', () => this.redis.hset(`manifest:${digest}`, 'mediaType', record.mediaType, 'body', record.body));
    await this.run('putManifest', () => this.redis.sadd('manifests', digest));
  }

  async deleteManifest(digest: string): Promise<void> {
    await this.run('deleteManifest', () => this.redis.del(`manifest:${digest}`));
    await this.run('deleteManifest', () => this.redis.srem('manifests', digest));
  }

  async listManifests(): Promise<string[]> {
    return this.run('listManifests', () => this.redis.smembers('manifests'));
  }

  async putPin(key: string, record: PinRecord): Promise<void> {
    await this.run('putPin', () => this.redis.hset('pins', key, JSON.stringify(record)));
  }

  async deletePin(key: string): Promise<boolean> {
    return (await this.run('deletePin', () => this.redis.hdel('pins', key))) === 1;
  }

  async listPins(): Promise<Map<string, PinRecord>> {
    const all = await this.run('listPins', () => this.redis.hgetall('pins'));
    const out = new Map<string, PinRecord>();
    for (const [k, v] of Object.entries(all)) {
      try {
        out.set(k, JSON.parse(v) as PinRecord);
      } catch {
        // Torn or foreign value: no pin.
      }
    }
    return out;
  }

  async isLinked(registry: string, repo: string, digest: string): Promise<boolean> {
    const n = await this.run('isLinked', () => this.redis.sismember(`links:${RedisMetadataStore.repoKey(registry, repo)}`, digest));
    return n === 1;
  }

  async link(registry: string, repo: string, digest: string): Promise<void> {
    await this.run('link', () => this.redis.sadd(`links:${RedisMetadataStore.repoKey(registry, repo)}`, digest));
  }

  async getBlob(digest: string): Promise<BlobRecord | null> {
    const [size, at] = await this.run('getBlob', () => this.redis.ptGetBlob(K_SIZE, K_LRU, digest));
    if (size === null || at === null) return null;
    const rec = { size: Number(size), lastAccess: Number(at) };
    // A touch not yet flushed is newer than what Redis has.
    const p = this.pending.get(digest);
    return p !== undefined && p > rec.lastAccess ? { ...rec, lastAccess: p } : rec;
  }

  async putBlob(digest: string, record: BlobRecord): Promise<void> {
    this.pending.delete(digest);
    await this.run('putBlob', () => this.redis.ptPutBlob(K_SIZE, K_LRU, K_TOTAL, digest, Math.trunc(record.size), Math.trunc(record.lastAccess)));
  }

  async touchBlob(digest: string, at: number): Promise<void> {
    const prev = this.pending.get(digest);
    if (prev !== undefined && prev >= at) return;
    if (prev === undefined && this.pending.size >= MAX_PENDING_TOUCHES) {
      // Redis has been away for long: forget the oldest-queued touch rather than grow without bound.
      const first = this.pending.keys().next().value;
      if (first !== undefined) this.pending.delete(first);
    }
    this.pending.set(digest, Math.trunc(at));
  }

  async deleteBlob(digest: string): Promise<void> {
    this.pending.delete(digest);
    await this.run('deleteBlob', () => this.redis.ptDeleteBlob(K_SIZE, K_LRU, K_TOTAL, digest));
  }

  async oldestBlobs(limit: number): Promise<Array<{ digest: string } & BlobRecord>> {
    if (!(limit > 0)) return [];
    // Our own touches first, so a blob this replica just served is not offered for eviction.
    await this.flush();
    const stop = Number.isFinite(limit) ? Math.trunc(limit) - 1 : -1;
    const flat = await this.run('oldestBlobs', () => this.redis.ptOldest(K_LRU, K_SIZE, stop));
    const out: Array<{ digest: string } & BlobRecord> = [];
    for (let i = 0; i + 2 < flat.length; i += 3) {
      out.push({ digest: flat[i]!, lastAccess: Number(flat[i + 1]), size: Number(flat[i + 2]) });
    }
    return out;
  }

  async totalBlobSize(): Promise<number> {
    const v = await this.run('totalBlobSize', () => this.redis.get(K_TOTAL));
    return v === null ? 0 : Number(v);
  }

  async tryLock(name: string, ttlMs: number): Promise<Lock | null> {
    const key = `lock:${name}`;
    const token = randomUUID();
    const ms = (t: number): number => Math.max(1, Math.ceil(t));
    const ok = await this.run('tryLock', () => this.redis.set(key, token, 'PX', ms(ttlMs), 'NX'));
    if (ok !== 'OK') return null;
    return {
      // Both compare the token inside Redis: a lease that expired and was taken by another
      // replica is neither extended nor released by its old holder.
      extend: async (t: number) => (await this.run('lock extend', () => this.redis.ptExtendLock(key, token, ms(t)))) === 1,
      release: async () => {
        await this.run('lock release', () => this.redis.ptReleaseLock(key, token));
      },
    };
  }

  /** Writes batched touches; on failure they stay queued for the next try. */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing.catch(() => {});
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    this.flushing = (async () => {
      const entries = [...batch];
      try {
        for (let i = 0; i < entries.length; i += TOUCH_BATCH) {
          const args = entries.slice(i, i + TOUCH_BATCH).flat();
          await this.run('touchBlob flush', () => this.redis.ptTouch(K_LRU, ...args));
          for (const [d] of entries.slice(i, i + TOUCH_BATCH)) batch.delete(d);
        }
      } catch (err) {
        // Put back what was not written, unless a newer touch came meanwhile. Re-adding one for a
        // blob deleted or re-put since is harmless: the script only moves existing records forward.
        for (const [d, at] of batch) if (!this.pending.has(d)) this.pending.set(d, at);
        throw err;
      } finally {
        this.flushing = undefined;
      }
    })();
    await this.flushing;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    clearInterval(this.flushTimer);
    let flushError: unknown;
    try {
      await this.flush();
    } catch (err) {
      flushError = err;
    }
    this.closed = true;
    try {
      if (this.redis.status === 'ready') await this.redis.quit();
      else this.redis.disconnect();
    } catch {
      this.redis.disconnect();
    }
    if (flushError) throw flushError;
  }
}
