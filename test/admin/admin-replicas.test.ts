/**
 * The admin API on two replicas sharing S3 and Redis: what one pulled, the other lists (no
 * upstream request); a pin made on one is seen by the other; a purge on one is what the other
 * serves (the next pull downloads again, and the bytes are gone from S3); a prefetch on one means
 * a pull through the other downloads nothing.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startUpstreamRegistry, type Upstream } from '../helpers/upstream-registry.js';
import { makeImage, pushImage, type PushResult } from '../helpers/images.js';
import { startRedis, type RedisHandle } from '../helpers/redis-server.js';
import { startS3rver, type S3rverHandle } from '../helpers/s3-server.js';
import type { Pullthrough } from '../helpers/pullthrough.js';
import { openS3Store, pull, redisMetadata, s3Storage, settled, startReplicas, until } from '../helpers/replicas.js';
import { blobKey } from '../../src/storage/keys.js';
import type { S3BlobStore } from '../../src/storage/s3-blob-store.js';

let up: Upstream;
let redis: RedisHandle;
let s3: S3rverHandle;
let replicas: Pullthrough[];
let store: S3BlobStore;
let app: PushResult;
let pre: PushResult;

before(async () => {
  [up, redis, s3] = await Promise.all([startUpstreamRegistry(), startRedis(), startS3rver()]);
  app = await pushImage(up, 'team/app', 'v1', await makeImage({ format: 'oci', seed: 'admin-replicas-app' }));
  pre = await pushImage(up, 'team/pre', 'v1', await makeImage({ format: 'oci', seed: 'admin-replicas-pre' }));
  replicas = await startReplicas(2, { registries: { 'up.test': { upstream: up.url } }, defaultRegistry: 'up.test', storage: s3Storage(s3), metadata: redisMetadata(redis) });
  store = openS3Store(s3);
});
after(async () => {
  await Promise.all((replicas ?? []).map((r) => r.cleanup()));
  await store?.close();
  await Promise.all([up?.stop(), redis?.stop(), s3?.stop()]);
});

async function call<T>(pt: Pullthrough, method: string, path: string, body?: unknown, status = 200): Promise<T> {
  const res = await fetch(`http://127.0.0.1:${pt.ports.admin}${path}`, { method, headers: body ? { 'content-type': 'application/json' } : {}, body: body ? JSON.stringify(body) : undefined });
  const json = (await res.json()) as T;
  assert.equal(res.status, status, JSON.stringify(json));
  return json;
}

test('list, pin and purge across replicas: shared records, S3 bytes deleted, the next pull downloads again', async () => {
  const [a, b] = replicas as [Pullthrough, Pullthrough];
  await pull(a, 'team/app', app);
  await settled(replicas);
  up.resetLog();
  const { images } = await call<{ images: Array<{ repo: string; digest: string; blobs: { present: number } }> }>(b, 'GET', '/api/v1/images');
  assert.deepEqual(images.map((i) => [i.repo, i.digest, i.blobs.present]), [['team/app', app.manifestDigest, app.blobs.length]]);
  assert.equal(up.count(), 0, 'listing asked nothing upstream');
  await call(b, 'POST', '/api/v1/pins', { ref: 'team/app:v1' }, 201);
  const { pins } = await call<{ pins: Array<{ ref: string }> }>(a, 'GET', '/api/v1/pins');
  assert.deepEqual(pins.map((p) => p.ref), ['up.test/team/app:v1']);
  await call(a, 'DELETE', '/api/v1/pins?ref=up.test/team/app:v1');
  const r = await call<{ blobs: string[] }>(b, 'POST', '/api/v1/purge', { ref: 'team/app:v1' });
  assert.deepEqual(r.blobs.sort(), app.blobs.map((x) => x.digest).sort());
  for (const x of app.blobs) assert.equal(await store.stat(blobKey(x.digest)), null, `${x.digest} gone from S3`);
  assert.deepEqual((await call<{ images: unknown[] }>(a, 'GET', '/api/v1/images')).images, []);
  up.resetLog();
  await pull(a, 'team/app', app);
  assert.equal(up.count({ kind: 'blob', method: 'GET' }), app.blobs.length, 'downloaded again');
  await settled(replicas);
  for (const x of app.blobs) assert.ok(await store.stat(blobKey(x.digest)), `${x.digest} back in S3`);
});

test('prefetch on one replica: a pull through the other downloads nothing', async () => {
  const [a, b] = replicas as [Pullthrough, Pullthrough];
  up.resetLog();
  const job = await call<{ id: string }>(b, 'POST', '/api/v1/prefetch', { refs: ['team/pre:v1'] }, 202);
  let state = '';
  await until('prefetch done', async () => {
    state = (await call<{ state: string }>(b, 'GET', `/api/v1/jobs/${job.id}`)).state;
    return state === 'done' || state === 'failed';
  });
  assert.equal(state, 'done');
  assert.equal(up.count({ kind: 'blob', method: 'GET' }), pre.blobs.length);
  // Jobs live in the process that runs them: the other replica says so clearly.
  const other = await fetch(`http://127.0.0.1:${a.ports.admin}/api/v1/jobs/${job.id}`);
  assert.equal(other.status, 404);
  assert.equal(((await other.json()) as { error: { code: string } }).error.code, 'UNKNOWN_JOB');
  up.resetLog();
  await pull(a, 'team/pre', pre);
  assert.equal(up.count({ kind: 'blob', method: 'GET' }), 0);
});
