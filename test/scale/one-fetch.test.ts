/**
 * Three replicas sharing one Redis and one S3 bucket: nine concurrent cold skopeo pulls spread
 * over them cause exactly one upstream GET per blob and one of the manifest. The replica that
 * takes a blob's lease downloads it; the others wait for it to land in S3 and serve it from
 * there. Manifests likewise, by their own lease, against an upstream slow enough that every
 * replica misses at once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startUpstreamRegistry } from '../helpers/upstream-registry.js';
import { makeImage, pushImage } from '../helpers/images.js';
import { readDirLayout, skopeoCopy } from '../helpers/clients.js';
import { startRedis } from '../helpers/redis-server.js';
import { startS3rver } from '../helpers/s3-server.js';
import { metricValue } from '../helpers/pullthrough.js';
import { startFaultUpstream } from '../helpers/fault-upstream.js';
import { MediaType } from '../../src/oci/media-types.js';
import { corruptBlobs, openS3Store, redisMetadata, s3Storage, startReplicas, storedDigests } from '../helpers/replicas.js';

test('9 concurrent cold pulls over 3 replicas: one upstream GET per blob, every digest right', async (t) => {
  const [up, redis, s3] = await Promise.all([startUpstreamRegistry(), startRedis(), startS3rver()]);
  t.after(async () => {
    await Promise.all([up.stop(), redis.stop(), s3.stop()]);
  });
  // Layers of a few MB so downloads overlap with the other replicas' requests.
  const image = await makeImage({ format: 'oci', seed: 'scale-one-fetch', layers: 3, layerSize: [4 << 20, 3 << 20, 2 << 20] });
  const pushed = await pushImage(up, 'team/app', 'v1', image);
  up.resetLog();

  const replicas = await startReplicas(3, {
    registries: { 'up.test': { upstream: up.url } },
    defaultRegistry: 'up.test',
    storage: s3Storage(s3),
    metadata: redisMetadata(redis),
  });
  t.after(async () => {
    await Promise.all(replicas.map((r) => r.cleanup()));
  });

  const pulls = await Promise.all(
    Array.from({ length: 9 }, (_, i) => skopeoCopy(`${replicas[i % 3]!.host}/team/app:v1`, 'dir', { tlsVerify: false })),
  );
  try {
    for (const [i, p] of pulls.entries()) {
      assert.equal(p.code, 0, `pull ${i} via replica ${i % 3}: ${p.stderr.slice(-2000)}`);
      const layout = await readDirLayout(p.path);
      assert.equal(layout.manifestDigest, pushed.manifestDigest);
      assert.deepEqual(
        layout.blobs.map((b) => b.digest).sort(),
        pushed.blobs.map((b) => b.digest).sort(),
      );
    }
  } finally {
    await Promise.all(pulls.map((p) => p.cleanup()));
  }

  for (const b of pushed.blobs) {
    assert.equal(up.count({ kind: 'blob', method: 'GET', pathIncludes: b.digest }), 1, `one upstream GET of ${b.digest}`);
  }
  const figures = {
    blobGets: up.count({ kind: 'blob', method: 'GET' }),
    blobHeads: up.count({ kind: 'blob', method: 'HEAD' }),
    manifestGets: up.count({ kind: 'manifest', method: 'GET' }),
    manifestHeads: up.count({ kind: 'manifest', method: 'HEAD' }),
  };
  const texts = await Promise.all(replicas.map((r) => r.metrics()));
  const waits = texts.reduce((n, m) => n + metricValue(m, 'pullthrough_blob_fill_waits_total'), 0);
  t.diagnostic(`upstream: ${JSON.stringify(figures)}; requests that waited for another replica: ${waits}`);
  assert.equal(figures.blobGets, pushed.blobs.length);
  assert.equal(figures.manifestGets, 1, 'one upstream GET of the manifest between the replicas');
  assert.equal(metricValue(texts.join('\n'), 'pullthrough_blob_fill_waits_total', { outcome: 'gave_up' }), 0);

  // Every blob landed once in the shared bucket, intact.
  const store = openS3Store(s3);
  try {
    assert.deepEqual([...(await storedDigests(store))].sort(), pushed.blobs.map((b) => b.digest).sort());
    assert.deepEqual(await corruptBlobs(store), []);
  } finally {
    await store.close();
  }

  // A second round is served from the cache alone.
  up.resetLog();
  const again = await Promise.all(replicas.map((r) => skopeoCopy(`${r.host}/team/app:v1`, 'dir', { tlsVerify: false })));
  try {
    for (const p of again) assert.equal(p.code, 0, p.stderr.slice(-2000));
  } finally {
    await Promise.all(again.map((p) => p.cleanup()));
  }
  assert.equal(up.count({ kind: 'blob', method: 'GET' }), 0);
});

test('3 replicas miss one tag at once against a slow upstream: one manifest GET between them, every answer the same bytes', async (t) => {
  const [up, redis] = await Promise.all([startFaultUpstream(), startRedis()]);
  t.after(async () => {
    await Promise.all([up.close(), redis.stop()]);
  });
  const image = await makeImage({ format: 'oci', seed: 'scale-one-manifest', layerSize: [1000] });
  up.addManifest('team/app', 'v1', image.manifest, MediaType.OciManifest);
  // Each replica's HEAD is answered at once, the GET a second later: all three miss before any lands.
  up.manifestDelayMs = 1000;
  const replicas = await startReplicas(3, {
    registries: { 'up.test': { upstream: up.url } },
    defaultRegistry: 'up.test',
    metadata: redisMetadata(redis),
  });
  t.after(async () => {
    await Promise.all(replicas.map((r) => r.cleanup()));
  });
  const accept = { accept: MediaType.OciManifest };
  const answers = await Promise.all(replicas.map((r) => fetch(`${r.url}/v2/team/app/manifests/v1`, { headers: accept })));
  for (const res of answers) {
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('docker-content-digest'), image.manifestDigest);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), image.manifest);
  }
  assert.equal(up.count('HEAD /v2/team/app/manifests/v1'), 3, 'each replica revalidated the tag');
  assert.equal(up.count('GET /v2/team/app/manifests/v1'), 1, 'one GET between the three replicas');
  const texts = (await Promise.all(replicas.map((r) => r.metrics()))).join('\n');
  assert.equal(metricValue(texts, 'pullthrough_manifest_fetch_waits_total', { outcome: 'landed' }), 2, 'the two others waited for it to land');
  assert.equal(metricValue(texts, 'pullthrough_manifest_fetch_waits_total', { outcome: 'fetched' }), 0);
  // Every replica recorded the tag: the next pull on each is a HEAD only.
  for (const r of replicas) assert.equal((await fetch(`${r.url}/v2/team/app/manifests/v1`, { headers: accept })).status, 200);
  assert.equal(up.count('HEAD /v2/team/app/manifests/v1'), 6);
  assert.equal(up.count('GET /v2/team/app/manifests/v1'), 1);
  assert.equal(up.count(`GET /v2/team/app/manifests/${image.manifestDigest}`), 0);
});
