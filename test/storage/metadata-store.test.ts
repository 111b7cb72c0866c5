/**
 * The MetadataStore contract against FileMetadataStore (a temp dir) and RedisMetadataStore (a real
 * redis-server; also a 3-node Redis Cluster), then what only Redis has: outages and Sentinel.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { FileMetadataStore } from '../../src/storage/file-metadata-store.js';
import { RedisMetadataStore, type RedisMetadataStoreOptions } from '../../src/storage/redis-metadata-store.js';
import { StorageUnavailableError } from '../../src/storage/errors.js';
import type { MetadataStore } from '../../src/storage/metadata-store.js';
import { freePort, tempDir } from '../helpers/process.js';
import { startRedis, startRedisCluster, startSentinel, type RedisHandle } from '../helpers/redis-server.js';
import { metadataStoreSuite, randomDigest } from './metadata-store.suite.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const prefix = (): string => `t-${randomUUID().slice(0, 8)}:`;

// ---- FileMetadataStore ---------------------------------------------------------------------------
{
  const dirs: Array<{ cleanup: () => Promise<void> }> = [];
  metadataStoreSuite('file', {
    async namespace() {
      const d = await tempDir('pullthrough-filemeta-');
      dirs.push(d);
      return { open: () => FileMetadataStore.open(d.path) };
    },
    shared: false,
    async teardown() {
      for (const d of dirs) await d.cleanup();
    },
  });
}

// ---- RedisMetadataStore on one redis-server ----------------------------------------------------
{
  let redis: RedisHandle | undefined;
  metadataStoreSuite('redis', {
    async namespace() {
      redis ??= await startRedis();
      const keyPrefix = prefix();
      return { open: () => RedisMetadataStore.open({ url: redis!.url, keyPrefix }) };
    },
    shared: true,
    async teardown() {
      await redis?.stop();
    },
  });
}

// ---- RedisMetadataStore on a Redis Cluster: the multi-key scripts must stay in one slot --------
{
  let cluster: { urls: string[]; stop(): Promise<void> } | undefined;
  metadataStoreSuite('redis cluster', {
    async namespace() {
      cluster ??= await startRedisCluster();
      const keyPrefix = prefix();
      return { open: () => RedisMetadataStore.open({ cluster: cluster!.urls, keyPrefix }) };
    },
    shared: true,
    async teardown() {
      await cluster?.stop();
    },
  });
}

/** Every MetadataStore call once, each settled at once (none left rejected and unhandled). */
function everyCall(s: MetadataStore): Array<[string, Promise<unknown>]> {
  const d = randomDigest();
  const settle = (p: Promise<unknown>): Promise<unknown> => p.then(() => null, (e: unknown) => e);
  return [
    ['getTag', settle(s.getTag('docker.io', 'library/a', 'latest'))],
    ['putTag', settle(s.putTag('docker.io', 'library/a', 'latest', { digest: d, mediaType: 'x', size: 1, checkedAt: 1 }))],
    ['listTags', settle(s.listTags('docker.io', 'library/a'))],
    ['getTagList', settle(s.getTagList('docker.io', 'library/a'))],
    ['putTagList', settle(s.putTagList('docker.io', 'library/a', { tags: ['a'], fetchedAt: 1 }))],
    ['getManifest', settle(s.getManifest(d))],
    ['putManifest', settle(s.putManifest(d, { mediaType: 'x', body: Buffer.from('{}') }))],
    ['deleteManifest', settle(s.deleteManifest(d))],
    ['isLinked', settle(s.isLinked('docker.io', 'library/a', d))],
    ['link', settle(s.link('docker.io', 'library/a', d))],
    ['getBlob', settle(s.getBlob(d))],
    ['putBlob', settle(s.putBlob(d, { size: 1, lastAccess: 1 }))],
    ['deleteBlob', settle(s.deleteBlob(d))],
    ['oldestBlobs', settle(s.oldestBlobs(10))],
    ['totalBlobSize', settle(s.totalBlobSize())],
    ['tryLock', settle(s.tryLock('x', 1000))],
  ];
}

async function assertAllUnavailable(s: MetadataStore, withinMs: number): Promise<void> {
  const t0 = Date.now();
  for (const [what, p] of everyCall(s)) {
    const e = await p;
    assert.ok(e instanceof StorageUnavailableError, `${what}: expected StorageUnavailableError, got ${String(e)}`);
    assert.ok(e.cause !== undefined || /closed/.test(e.message), `${what}: cause kept`);
  }
  const took = Date.now() - t0;
  assert.ok(took < withinMs, `all calls failed in ${took} ms (limit ${withinMs})`);
}

/** Waits until the store answers again (the client reconnects by itself). */
async function untilServing(s: MetadataStore, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await s.totalBlobSize();
      return;
    } catch (err) {
      if (!(err instanceof StorageUnavailableError) || Date.now() > deadline) throw err;
      await sleep(50);
    }
  }
}

describe('RedisMetadataStore: outages, reconnects, Sentinel', () => {
  let redis: RedisHandle;
  let dir: { path: string; cleanup: () => Promise<void> };
  const opts = (extra: Partial<RedisMetadataStoreOptions> = {}): RedisMetadataStoreOptions => ({ url: redis.url, keyPrefix: prefix(), ...extra });
  before(async () => {
    dir = await tempDir('pullthrough-redis-aof-');
    // Append-only with fsync on every write, so a kill -9 and restart keeps the data: that lets
    // the test see touches made during the outage land after the reconnect.
    redis = await startRedis(['--appendonly', 'yes', '--appendfsync', 'always']);
  });
  after(async () => {
    await redis?.stop();
    await dir?.cleanup();
  });

  it('fails fast with StorageUnavailableError while Redis is down, then the same instance works again', async () => {
    const o = opts();
    const store = await RedisMetadataStore.open(o);
    try {
      const d = randomDigest();
      await store.putBlob(d, { size: 10, lastAccess: 1_000 });
      await store.putTag('docker.io', 'library/a', 'v1', { digest: d, mediaType: 'x', size: 10, checkedAt: 5 });
      await redis.kill9();
      await sleep(50); // let the client see the connection drop
      await assertAllUnavailable(store, 1_000);
      // touchBlob never fails: it is kept for later.
      await store.touchBlob(d, 9_000);
      // Still failing fast after several reconnect attempts.
      await sleep(600);
      await assertAllUnavailable(store, 1_000);
      await redis.restart();
      await untilServing(store);
      assert.equal((await store.getTag('docker.io', 'library/a', 'v1'))?.digest, d, 'data kept by the AOF');
      // The touch made during the outage reaches Redis once it is back (flushed by the timer).
      const fresh = await RedisMetadataStore.open(o);
      try {
        const deadline = Date.now() + 5_000;
        while ((await fresh.getBlob(d))?.lastAccess !== 9_000) {
          assert.ok(Date.now() < deadline, 'the queued touch never arrived');
          await sleep(100);
        }
      } finally {
        await fresh.close();
      }
      await store.putManifest(d, { mediaType: 'x', body: Buffer.from([0, 1, 2]) });
      assert.deepEqual((await store.getManifest(d))?.body, Buffer.from([0, 1, 2]));
    } finally {
      await store.close();
    }
  });

  it('fails within the command timeout when Redis hangs (SIGSTOP), and recovers on SIGCONT', async () => {
    const store = await RedisMetadataStore.open(opts({ commandTimeoutMs: 300 }));
    try {
      process.kill(redis.pid(), 'SIGSTOP');
      try {
        const t0 = Date.now();
        await assert.rejects(store.getTag('docker.io', 'library/a', 'x'), StorageUnavailableError);
        const took = Date.now() - t0;
        assert.ok(took >= 250 && took < 1_500, `took ${took} ms`);
      } finally {
        process.kill(redis.pid(), 'SIGCONT');
      }
      await untilServing(store);
      await store.link('docker.io', 'library/a', 'sha256:00');
      assert.equal(await store.isLinked('docker.io', 'library/a', 'sha256:00'), true);
    } finally {
      await store.close();
    }
  });

  it('refuses to open, quickly, when nothing answers', async () => {
    const port = await freePort();
    const t0 = Date.now();
    await assert.rejects(RedisMetadataStore.open({ url: `redis://127.0.0.1:${port}` }), StorageUnavailableError);
    assert.ok(Date.now() - t0 < 3_000);
  });

  it('close() while Redis is down releases the connection and reports the lost touches', async () => {
    const store = await RedisMetadataStore.open(opts());
    const d = randomDigest();
    await store.putBlob(d, { size: 1, lastAccess: 1 });
    await redis.kill9();
    try {
      await store.touchBlob(d, 2);
      const t0 = Date.now();
      await assert.rejects(store.close(), StorageUnavailableError);
      assert.ok(Date.now() - t0 < 1_000);
      await assert.rejects(store.getTag('a', 'b', 'c'), StorageUnavailableError);
    } finally {
      await redis.restart();
    }
  });

  it('finds the master through Sentinel', async () => {
    const sentinel = await startSentinel(redis.port, 'pt-master');
    try {
      const store = await RedisMetadataStore.open({ sentinels: [`127.0.0.1:${sentinel.port}`], name: 'pt-master', keyPrefix: prefix() });
      try {
        await store.putTag('docker.io', 'library/s', 'latest', { digest: 'sha256:aa', mediaType: 'x', size: 1, checkedAt: 1 });
        assert.deepEqual(await store.listTags('docker.io', 'library/s'), ['latest']);
        const l = await store.tryLock('s', 1000);
        assert.ok(l);
        await l.release();
      } finally {
        await store.close();
      }
    } finally {
      await sentinel.stop();
    }
  });
});
