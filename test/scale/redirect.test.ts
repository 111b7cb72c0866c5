/**
 * `storage.redirect: true` with S3: cached blobs are answered with a 307 to a presigned URL, and
 * real clients follow it to the object store (s3rver) and get the right bytes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startUpstreamRegistry } from '../helpers/upstream-registry.js';
import { startS3rver } from '../helpers/s3-server.js';
import { makeImage, pushImage } from '../helpers/images.js';
import { skopeoCopy, readDirLayout } from '../helpers/clients.js';
import { startPullthrough } from '../helpers/pullthrough.js';
import { s3Storage, settled, until } from '../helpers/replicas.js';

test('cached blobs redirect to presigned S3 URLs that skopeo follows', async () => {
  const [up, s3] = await Promise.all([startUpstreamRegistry(), startS3rver()]);
  const pt = await startPullthrough({ registries: { 'docker.io': { upstream: up.url } }, storage: { ...s3Storage(s3), redirect: true } });
  try {
    const pushed = await pushImage(up, 'library/app', 'v1', await makeImage({ format: 'oci', seed: 'redirect', layerSize: 300_000 }));
    const cold = await skopeoCopy(`${pt.host}/library/app:v1`, 'dir', { tlsVerify: false });
    assert.equal(cold.code, 0, cold.stderr);
    await cold.cleanup();
    // skopeo has a blob's last byte before its upload to S3 is committed; until then the blob is
    // a download in progress (served as a miss, not redirected). Wait for the commits.
    await settled([pt]);
    up.resetLog();
    const blobLines = () => pt.requests().filter((l) => l.kind === 'blob');
    const before = blobLines().length;
    const warm = await skopeoCopy(`${pt.host}/library/app:v1`, 'dir', { tlsVerify: false });
    assert.equal(warm.code, 0, warm.stderr);
    assert.deepEqual((await readDirLayout(warm.path)).blobs.map((b) => b.digest).sort(), pushed.blobs.map((b) => b.digest).sort());
    await warm.cleanup();
    // Request lines are written off the request path: wait for the warm pull's to arrive.
    await until('the warm pull logged', () => blobLines().length >= before + pushed.blobs.length);
    const warmLines = blobLines().slice(before);
    const shown = warmLines.map((l) => `${l.status} ${l.cache} ${l.path}`).join('\n');
    assert.equal(warmLines.filter((l) => l.status === 307).length, pushed.blobs.length, `every cached blob was redirected:\n${shown}`);
    assert.equal(up.count({ method: 'GET', kind: 'blob' }), 0);
    const r = await fetch(`${pt.url}/v2/app/blobs/${pushed.configDigest}`, { redirect: 'manual' });
    assert.equal(r.status, 307);
    assert.match(r.headers.get('location') ?? '', new RegExp(`^${s3.endpoint}/.*X-Amz-Signature=`));
  } finally {
    await pt.cleanup();
    await Promise.all([up.stop(), s3.stop()]);
  }
});
