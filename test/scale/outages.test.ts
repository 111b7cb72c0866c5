/**
 * Redis (metadata) or S3 (blobs) goes away while skopeo pulls through two replicas, and comes back.
 * pullthrough keeps serving what it can confirm and verify, says not-ready, writes nothing it
 * could not finish, and caches again once the store is back, without a restart.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startUpstreamRegistry, type Upstream } from '../helpers/upstream-registry.js';
import { makeImage, pushImage } from '../helpers/images.js';
import { startRedis } from '../helpers/redis-server.js';
import { startS3rver } from '../helpers/s3-server.js';
import { metricValue, type Pullthrough } from '../helpers/pullthrough.js';
import { corruptBlobs, explain, openS3Store, pull, redisMetadata, s3Storage, settled, startReplicas, until } from '../helpers/replicas.js';

async function readyz(pt: Pullthrough): Promise<{ status: number; body: string }> {
  const r = await fetch(`${pt.url}/readyz`);
  return { status: r.status, body: await r.text() };
}

function blobCounts(up: Upstream): { get: number; head: number } {
  return { get: up.count({ kind: 'blob', method: 'GET' }), head: up.count({ kind: 'blob', method: 'HEAD' }) };
}

async function setup(t: import('node:test').TestContext) {
  const [up, redis, s3] = await Promise.all([startUpstreamRegistry(), startRedis(), startS3rver()]);
  t.after(async () => {
    await Promise.all([up.stop(), redis.stop(), s3.stop()]);
  });
  const x = await pushImage(up, 'team/x', 'v1', await makeImage({ format: 'oci', seed: 'outage-x', layerSize: 1 << 20 }));
  const y = await pushImage(up, 'team/y', 'v1', await makeImage({ format: 'docker', seed: 'outage-y', layerSize: 1 << 20 }));
  const z = await pushImage(up, 'team/z', 'v1', await makeImage({ format: 'oci', seed: 'outage-z', layerSize: 1 << 20 }));
  const replicas = (await startReplicas(2, {
    registries: { 'up.test': { upstream: up.url } },
    defaultRegistry: 'up.test',
    storage: s3Storage(s3),
    metadata: redisMetadata(redis),
  })) as [Pullthrough, Pullthrough];
  t.after(async () => {
    await Promise.all(replicas.map((r) => r.cleanup()));
  });
  return { up, redis, s3, x, y, z, replicas };
}

test('Redis down and back while skopeo pulls: served without the cache, not ready, cached again after', async (t) => {
  const { up, redis, s3, x, y, z, replicas } = await setup(t);
  const [a, b] = replicas;
  await pull(a, 'team/x', x);
  await settled(replicas);

  // Redis dies while four pulls are under way.
  const during = Promise.all([pull(a, 'team/x', x), pull(b, 'team/x', x), pull(a, 'team/y', y), pull(b, 'team/y', y)]);
  await redis.kill9();
  await during;
  await settled(replicas);

  for (const r of replicas) {
    const z = await readyz(r);
    assert.equal(z.status, 503);
    assert.match(z.body, /metadata \(redis\)/);
  }
  // A cached image: confirmed with upstream HEADs, bytes from S3, no upstream GET.
  up.resetLog();
  await pull(a, 'team/x', x);
  const cachedFigures = blobCounts(up);
  assert.deepEqual(cachedFigures, { get: 0, head: x.blobs.length });
  // A cold image: streamed verified from upstream, and not kept (nothing can be recorded).
  up.resetLog();
  await pull(b, 'team/z', z);
  await pull(a, 'team/z', z);
  const coldFigures = blobCounts(up);
  assert.deepEqual(coldFigures, { get: 2 * z.blobs.length, head: 2 * z.blobs.length });
  const degraded = metricValue((await a.metrics()) + (await b.metrics()), 'pullthrough_degraded_requests_total', { reason: 'metadata_unavailable' });
  assert.ok(degraded > 0);
  assert.ok(a.logs().some((l) => l.msg === 'serving without the cache' && l.reason === 'metadata_unavailable'));

  // Redis comes back (empty: no persistence) while pulls are under way.
  const back = Promise.all([pull(a, 'team/x', x), pull(b, 'team/y', y)]);
  await redis.restart();
  await back;
  for (const r of replicas) await until('ready again', async () => (await readyz(r)).status === 200);

  // Recorded again: the first round may fetch what the empty Redis forgot; the second is cached.
  await pull(a, 'team/x', x);
  await pull(b, 'team/y', y);
  await settled(replicas);
  up.resetLog();
  await pull(b, 'team/x', x);
  await pull(a, 'team/y', y);
  assert.deepEqual(blobCounts(up), { get: 0, head: 0 }, `upstream saw ${explain(up, replicas)}`);
  assert.equal(up.count({ kind: 'manifest', method: 'GET' }), 0);
  t.diagnostic(`while Redis was down: cached image ${JSON.stringify(cachedFigures)}, cold image pulled twice ${JSON.stringify(coldFigures)}; degraded requests ${degraded}`);

  const store = openS3Store(s3);
  try {
    assert.deepEqual(await corruptBlobs(store), []);
  } finally {
    await store.close();
  }
});

test('S3 killed and restarted: cached blobs relayed from upstream, cold ones served and not kept, cached again after', async (t) => {
  const { up, s3, x, y, replicas } = await setup(t);
  const [a, b] = replicas;
  await pull(a, 'team/x', x);
  await settled(replicas);

  await s3.kill9();
  for (const r of replicas) {
    const z = await readyz(r);
    assert.equal(z.status, 503);
    assert.match(z.body, /blobs \(s3\)/);
  }
  up.resetLog();
  // X is recorded but its bytes are unreachable: relayed (verified) from upstream.
  await pull(b, 'team/x', x);
  const cachedFigures = blobCounts(up);
  assert.equal(cachedFigures.get, x.blobs.length);
  // Y is cold: downloaded and served; storing it fails, so nothing is recorded.
  up.resetLog();
  await pull(a, 'team/y', y);
  const coldFigures = blobCounts(up);
  assert.equal(coldFigures.get, y.blobs.length);
  await until('store failure logged', () =>
    a.logs().some((l) => l.msg === 'blob download failed' && l.reason === 'storage_unavailable' && /s3 unavailable/.test(String(l.error))),
  );
  const relayed = metricValue(await b.metrics(), 'pullthrough_degraded_requests_total', { reason: 'blob_store_unavailable' });
  assert.ok(relayed > 0);

  await settled(replicas); // the failed commits are over: nothing lands after S3 is back
  await s3.restart();
  for (const r of replicas) await until('ready again', async () => (await readyz(r)).status === 200);
  await pull(b, 'team/y', y); // fetched once more, stored this time
  await settled(replicas);
  up.resetLog();
  await pull(a, 'team/y', y);
  await pull(b, 'team/x', x);
  assert.deepEqual(blobCounts(up), { get: 0, head: 0 }, `both images served from the cache; upstream saw ${explain(up, replicas)}`);
  t.diagnostic(`while S3 was down: cached image ${JSON.stringify(cachedFigures)}, cold image ${JSON.stringify(coldFigures)}; relayed requests ${relayed}`);

  const store = openS3Store(s3);
  try {
    assert.deepEqual(await corruptBlobs(store), []);
  } finally {
    await store.close();
  }
});
