/**
 * Eviction under `cache.maxSize` with real skopeo pulls, on the filesystem (one replica, file
 * metadata) and on S3 (two replicas sharing Redis): the least recently used blobs go, everything
 * else keeps pulling from the cache, evicted blobs are fetched again, and a blob being streamed
 * slowly survives a pass (on another replica too).
 *
 * Blobs read within `cache.evictionGrace` are never evicted, so the test waits that long (a few
 * seconds here) where it needs blobs to have become evictable.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { get } from 'node:http';
import type { IncomingMessage } from 'node:http';
import { startUpstreamRegistry, type Upstream } from '../helpers/upstream-registry.js';
import { makeImage, pushImage, type PushResult } from '../helpers/images.js';
import { startRedis } from '../helpers/redis-server.js';
import { startS3rver } from '../helpers/s3-server.js';
import { metricValue, startPullthrough, type Pullthrough } from '../helpers/pullthrough.js';
import { corruptBlobs, explain, openFsStore, openS3Store, pull, redisMetadata, s3Storage, settled, startReplicas, until } from '../helpers/replicas.js';
import type { BlobStore } from '../../src/storage/blob-store.js';
import { blobKey } from '../../src/storage/keys.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const total = (p: PushResult): number => p.blobs.reduce((n, b) => n + b.size, 0);
const layers = (p: PushResult): string[] => p.manifests[0]!.layers.map((l) => l.digest);

interface Setup {
  up: Upstream;
  /** Replicas; pulls go round-robin over them. */
  replicas: Pullthrough[];
  store: BlobStore;
  graceMs: number;
}

/** Starts fs (one replica, file metadata) or s3 (two replicas, Redis) pullthrough with `cache`. */
async function setup(t: TestContext, driver: 'fs' | 's3', up: Upstream, cache: Record<string, unknown>): Promise<Setup> {
  const graceMs = driver === 'fs' ? 3000 : 6000;
  const base = { registries: { 'up.test': { upstream: up.url } }, defaultRegistry: 'up.test', cache: { ...cache, evictionGrace: `${graceMs}ms` } };
  if (driver === 'fs') {
    const pt = await startPullthrough(base);
    t.after(() => pt.cleanup());
    const store = openFsStore(pt);
    return { up, replicas: [pt], store, graceMs };
  }
  const [redis, s3] = await Promise.all([startRedis(), startS3rver()]);
  t.after(async () => {
    await Promise.all([redis.stop(), s3.stop()]);
  });
  const replicas = await startReplicas(2, { ...base, storage: s3Storage(s3), metadata: redisMetadata(redis) });
  t.after(async () => {
    await Promise.all(replicas.map((r) => r.cleanup()));
  });
  const store = openS3Store(s3);
  t.after(() => store.close());
  return { up, replicas, store, graceMs };
}

async function present(store: BlobStore, digests: string[]): Promise<boolean[]> {
  return Promise.all(digests.map(async (d) => (await store.stat(blobKey(d))) !== null));
}

async function metric(replicas: Pullthrough[], name: string): Promise<number> {
  let n = 0;
  for (const r of replicas) n += metricValue(await r.metrics(), name);
  return n;
}

async function lruScenario(t: TestContext, driver: 'fs' | 's3'): Promise<void> {
  const up = await startUpstreamRegistry();
  t.after(() => up.stop());
  const images: PushResult[] = [];
  for (const name of ['a', 'b', 'c', 'd']) {
    images.push(await pushImage(up, `team/${name}`, 'v1', await makeImage({ format: 'oci', seed: `evict-${driver}-${name}`, layerSize: 512 << 10 })));
  }
  const [a, b, c, d] = images as [PushResult, PushResult, PushResult, PushResult];
  const size = Math.max(...images.map(total));
  // Three images fit; a fourth goes over; evicting one image's layers gets under 90 %.
  const maxSize = Math.floor(3.6 * size);
  const s = await setup(t, driver, up, { maxSize });
  const via = (i: number): Pullthrough => s.replicas[i % s.replicas.length]!;

  for (const [i, img] of [a, b, c].entries()) {
    await pull(via(i), `team/${'abc'[i]}`, img);
    await settled(s.replicas); // committed in this order: a is the least recently used
  }
  assert.equal(up.count({ kind: 'blob', method: 'GET' }), 9);
  assert.equal(await metric(s.replicas, 'pullthrough_evictions_total'), 0);

  await sleep(s.graceMs + 500);
  await pull(via(1), 'team/d', d);
  await settled(s.replicas);
  // Evicting a's two layers is what gets the cache under 90 %; its tiny config goes too if it
  // comes first in LRU order. Once both layers are gone, the pass has done all it will.
  await until("a's layers evicted", async () => (await present(s.store, layers(a))).every((p) => !p));
  const evictedFirst = (await present(s.store, a.blobs.map((x) => x.digest))).filter((p) => !p).length;
  await until('evictions counted', async () => (await metric(s.replicas, 'pullthrough_evictions_total')) === evictedFirst);
  for (const img of [b, c, d]) assert.deepEqual(await present(s.store, img.blobs.map((x) => x.digest)), img.blobs.map(() => true));

  // The rest still pull from the cache…
  up.resetLog();
  await pull(via(0), 'team/c', c);
  await pull(via(1), 'team/d', d);
  assert.equal(up.count({ kind: 'blob', method: 'GET' }), 0);
  // …and the evicted ones are fetched again, pushing out the next least recently used (b).
  await pull(via(0), 'team/a', a);
  await settled(s.replicas);
  const refetched = up.count({ kind: 'blob', method: 'GET' });
  assert.equal(refetched, evictedFirst, `exactly the evicted blobs are fetched again; a: ${a.blobs.map((x) => x.digest).join(' ')}\n${explain(up, s.replicas)}`);
  await until('b evicted', async () => (await present(s.store, layers(b))).every((p) => !p));
  for (const img of [a, c, d]) assert.deepEqual(await present(s.store, img.blobs.map((x) => x.digest)), img.blobs.map(() => true));

  const texts = await Promise.all(s.replicas.map((r) => r.metrics()));
  const cacheSize = metricValue(texts[texts.length - 1]!, 'pullthrough_cache_size_bytes');
  assert.ok(cacheSize <= maxSize, `cache size ${cacheSize} <= ${maxSize}`);
  assert.deepEqual(await corruptBlobs(s.store), []);
  t.diagnostic(
    `${driver}: maxSize ${maxSize}, image ${size} B; evictions ${await metric(s.replicas, 'pullthrough_evictions_total')}, ` +
      `evicted bytes ${await metric(s.replicas, 'pullthrough_evicted_bytes_total')}, re-fetched ${refetched} blobs, cache size ${cacheSize}`,
  );
}

/** A GET that reads one chunk and then stops reading, until `finish()` reads the rest. */
async function slowRead(pt: Pullthrough, path: string): Promise<{ finish(): Promise<Buffer> }> {
  const res = await new Promise<IncomingMessage>((resolve, reject) => get(`${pt.url}${path}`, resolve).on('error', reject));
  assert.equal(res.statusCode, 200);
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve) => {
    res.once('data', (c: Buffer) => {
      chunks.push(c);
      res.pause();
      resolve();
    });
  });
  return {
    finish: () =>
      new Promise<Buffer>((resolve, reject) => {
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(Buffer.concat(chunks)));
        res.on('error', reject);
        res.resume();
      }),
  };
}

async function inUseScenario(t: TestContext, driver: 'fs' | 's3'): Promise<void> {
  const up = await startUpstreamRegistry();
  t.after(() => up.stop());
  // Big enough that sockets and stream buffers cannot swallow it: the server stays mid-stream.
  const big = await pushImage(up, 'team/big', 'v1', await makeImage({ format: 'oci', seed: `evict-${driver}-big`, layers: 1, layerSize: 16 << 20 }));
  const next = await pushImage(up, 'team/next', 'v1', await makeImage({ format: 'oci', seed: `evict-${driver}-next`, layers: 1, layerSize: 4 << 20 }));
  const maxSize = Math.floor(total(big) + total(next) / 2);
  const s = await setup(t, driver, up, { maxSize });
  const reader = s.replicas[0]!;
  const evicting = s.replicas[s.replicas.length - 1]!;
  const bigLayer = layers(big)[0]!;

  await pull(reader, 'team/big', big);
  await settled(s.replicas);
  const slow = await slowRead(reader, `/v2/team/big/blobs/${bigLayer}`);
  await sleep(s.graceMs + 500);
  await pull(evicting, 'team/next', next);
  await until('a pass ran and stopped at what is in use', () => evicting.logs().some((l) => l.msg === 'cache over maxSize: everything left is in use'));
  assert.ok(!reader.requests().some((l) => l.path === `/v2/team/big/blobs/${bigLayer}` && l.cache === 'hit'), 'the slow read is still going');
  assert.deepEqual(await present(s.store, [big.configDigest, bigLayer]), [false, true], 'the idle config went, the blob being read stayed');

  const body = await slow.finish();
  assert.equal(`sha256:${createHash('sha256').update(body).digest('hex')}`, bigLayer);
  assert.deepEqual(await corruptBlobs(s.store), []);
}

test('fs: LRU eviction under maxSize with real pulls; evicted blobs re-fetched', (t) => lruScenario(t, 'fs'));
test('fs: a blob being streamed slowly survives an eviction pass', (t) => inUseScenario(t, 'fs'));
test('s3 + redis, two replicas: LRU eviction under maxSize with real pulls; evicted blobs re-fetched', (t) => lruScenario(t, 's3'));
test('s3 + redis: a blob streamed slowly on one replica survives a pass run on another', (t) => inUseScenario(t, 's3'));
