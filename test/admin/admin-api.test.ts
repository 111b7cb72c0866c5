/**
 * The admin API against real pulls: skopeo pulls through pullthrough from a real docker-registry
 * (plain files: fs blobs, file metadata), then the API lists (no upstream request), reports one
 * reference's status, purges (the next pull downloads again: upstream counts), prefetches (the
 * next pull downloads nothing), pins (pinned content survives eviction under a small
 * cache.maxSize; unpinned is evicted), and refuses bad input and denied repositories clearly.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startUpstreamRegistry, type Upstream } from '../helpers/upstream-registry.js';
import { makeImage, pushImage, type PushResult } from '../helpers/images.js';
import { startPullthrough, metricValue, type Pullthrough } from '../helpers/pullthrough.js';
import { skopeoCopy, readDirLayout } from '../helpers/clients.js';
import { openFsStore, until } from '../helpers/replicas.js';
import { blobKey } from '../../src/storage/keys.js';
import type { BlobStore } from '../../src/storage/blob-store.js';

let up: Upstream;
let pt: Pullthrough;
let app: PushResult;
let other: PushResult;
let store: BlobStore;

const RULES = [
  { match: 'up.test/secret/**', pull: [], push: [] },
  { match: '**', pull: ['anonymous'], push: ['anonymous'] },
];

before(async () => {
  up = await startUpstreamRegistry();
  app = await pushImage(up, 'team/app', 'v1', await makeImage({ format: 'oci-index', seed: 'admin-api-app' }));
  other = await pushImage(up, 'team/other', 'v1', await makeImage({ format: 'oci', seed: 'admin-api-other' }));
  await pushImage(up, 'secret/thing', 'v1', await makeImage({ format: 'oci', seed: 'admin-api-secret' }));
  pt = await startPullthrough({ registries: { 'up.test': { upstream: up.url } }, defaultRegistry: 'up.test', rules: RULES });
  store = openFsStore(pt);
});
after(async () => {
  await pt?.cleanup();
  await up?.stop();
});

const api = (p: Pullthrough, path: string, init?: { method?: string; body?: unknown }): Promise<Response> =>
  fetch(`http://127.0.0.1:${p.ports.admin}${path}`, {
    method: init?.method ?? 'GET',
    headers: init?.body !== undefined ? { 'content-type': 'application/json' } : {},
    body: init?.body !== undefined ? JSON.stringify(init.body) : undefined,
  });
async function ok<T>(res: Response | Promise<Response>, status = 200): Promise<T> {
  const r = await res;
  const body = (await r.json()) as T;
  assert.equal(r.status, status, JSON.stringify(body));
  return body;
}
async function refused(res: Promise<Response>, status: number, code: string): Promise<string> {
  const r = await res;
  const body = (await r.json()) as { error: { code: string; message: string } };
  assert.equal(r.status, status, JSON.stringify(body));
  assert.equal(body.error.code, code);
  assert.ok(body.error.message.length > 10, body.error.message);
  return body.error.message;
}

async function pullAmd64(repo: string, want: PushResult): Promise<void> {
  const r = await skopeoCopy(`${pt.host}/${repo}:v1`, 'dir', { tlsVerify: false, os: 'linux', arch: 'amd64' });
  try {
    assert.equal(r.code, 0, r.stderr);
    const layout = await readDirLayout(r.path);
    const amd64 = want.manifests.find((m) => m.platform.architecture === 'amd64')!;
    assert.deepEqual(layout.blobs.map((b) => b.digest).sort(), [amd64.configDigest, ...amd64.layers.map((l) => l.digest)].sort());
  } finally {
    await r.cleanup();
  }
}

interface Image {
  registry: string;
  repo: string;
  tag: string;
  digest: string;
  platforms: string[];
  size: number;
  blobs: { present: number; total: number };
  lastPulled: string | null;
  pinned: boolean;
}

async function waitJob(id: string): Promise<{ state: string; error: string | null; layersDone: number; layersTotal: number; bytesDone: number; bytesTotal: number }> {
  let job!: { state: string; error: string | null; layersDone: number; layersTotal: number; bytesDone: number; bytesTotal: number };
  await until('prefetch job finished', async () => {
    job = await ok(api(pt, `/api/v1/jobs/${id}`));
    return job.state === 'done' || job.state === 'failed';
  });
  return job;
}

test('lists cached images with digest, platforms, size, blobs and last pull, without any upstream request', async () => {
  await pullAmd64('team/app', app);
  up.resetLog();
  const { images } = await ok<{ images: Image[] }>(api(pt, '/api/v1/images'));
  const img = images.find((i) => i.repo === 'team/app');
  assert.ok(img, JSON.stringify(images));
  assert.equal(img.registry, 'up.test');
  assert.equal(img.tag, 'v1');
  assert.equal(img.digest, app.manifestDigest);
  assert.deepEqual(img.platforms, ['linux/amd64', 'linux/arm64/v8']);
  const amd64 = app.manifests.find((m) => m.platform.architecture === 'amd64')!;
  const amd64Blobs = [amd64.configDigest, ...amd64.layers.map((l) => l.digest)];
  assert.equal(img.blobs.present, amd64Blobs.length, 'the pulled platform only');
  assert.ok(img.size >= amd64.layers.reduce((n, l) => n + l.size, 0), `size ${img.size}`);
  assert.ok(img.lastPulled && Date.now() - Date.parse(img.lastPulled) < 120_000, String(img.lastPulled));
  assert.equal(img.pinned, false);
  // A glob narrows the list; a glob for nothing lists nothing.
  assert.equal((await ok<{ images: Image[] }>(api(pt, '/api/v1/images?repo=team/*'))).images.length, images.filter((i) => i.repo.startsWith('team/')).length);
  assert.deepEqual((await ok<{ images: Image[] }>(api(pt, '/api/v1/images?repo=nothing/**'))).images, []);
  const usage = await ok<{ usedBytes: number; maxSize: number | null; blobs: number }>(api(pt, '/api/v1/usage'));
  assert.ok(usage.usedBytes >= amd64.layers.reduce((n, l) => n + l.size, 0));
  assert.equal(usage.maxSize, null);
  // Status of the cached reference and of one never pulled: nothing asked upstream either way.
  const s = await ok<{ digest: string; manifestCached: boolean; cached: boolean; missingManifests: string[]; blobs: Array<{ digest: string; present: boolean }> }>(api(pt, '/api/v1/status?ref=up.test/team/app:v1'));
  assert.equal(s.digest, app.manifestDigest);
  assert.equal(s.manifestCached, true);
  assert.equal(s.cached, false, 'arm64 was not pulled');
  assert.equal(s.missingManifests.length, 1);
  assert.deepEqual(s.blobs.filter((b) => b.present).map((b) => b.digest).sort(), amd64Blobs.sort());
  const none = await ok<{ digest: string | null; cached: boolean; manifestCached: boolean }>(api(pt, '/api/v1/status?ref=team/never:v1'));
  assert.deepEqual([none.digest, none.cached, none.manifestCached], [null, false, false]);
  assert.equal(up.count(), 0, `upstream requests: ${JSON.stringify(up.requests())}`);
});

test('bad input: a clear error with the right status, never a 500, nothing changed', async () => {
  await refused(api(pt, '/api/v1/status?ref=Team/App:v1'), 400, 'INVALID_REFERENCE');
  await refused(api(pt, '/api/v1/status?ref=team/app@sha256:nothex'), 400, 'INVALID_REFERENCE');
  await refused(api(pt, '/api/v1/status'), 400, 'INVALID_REFERENCE');
  await refused(api(pt, '/api/v1/status?ref=unknown.example/x:1'), 404, 'UNKNOWN_REGISTRY');
  await refused(api(pt, '/api/v1/images?repo=team/***'), 400, 'INVALID_GLOB');
  await refused(api(pt, '/api/v1/purge', { method: 'POST', body: { olderThan: 'soon' } }), 400, 'INVALID_DURATION');
  await refused(api(pt, '/api/v1/purge', { method: 'POST', body: { ref: 'team/app:v1', repo: 'team/app' } }), 400, 'INVALID_BODY');
  await refused(api(pt, '/api/v1/purge', { method: 'POST', body: { ref: 'team/never:v1' } }), 404, 'NOT_CACHED');
  await refused(api(pt, '/api/v1/pins', { method: 'POST', body: { ref: 'team/never:v1' } }), 404, 'NOT_CACHED');
  await refused(api(pt, '/api/v1/pins', { method: 'POST', body: { ref: 'team/app:v1', platforms: ['linux/s390x'] } }), 400, 'UNKNOWN_PLATFORM');
  await refused(api(pt, '/api/v1/pins', { method: 'POST', body: { ref: 'team/app:v1', platforms: ['not a platform'] } }), 400, 'INVALID_PLATFORM');
  await refused(api(pt, '/api/v1/pins?ref=team/app:v1', { method: 'DELETE' }), 404, 'NOT_PINNED');
  const r = await fetch(`http://127.0.0.1:${pt.ports.admin}/api/v1/purge`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{not json' });
  assert.equal(r.status, 400);
  await refused(api(pt, '/api/v1/registries/unknown.example/offline', { method: 'PUT', body: { offline: true } }), 404, 'UNKNOWN_REGISTRY');
  const { images } = await ok<{ images: Image[] }>(api(pt, '/api/v1/images'));
  assert.ok(images.some((i) => i.repo === 'team/app'), 'still cached');
  assert.ok(!pt.logs().some((l) => l.msg === 'admin request failed'), 'no 500');
});

test('prefetch goes through the pull path: progress to done, then a pull downloads no blob; a denied repository is refused', async () => {
  const msg = await refused(api(pt, '/api/v1/prefetch', { method: 'POST', body: { refs: ['team/other:v1', 'secret/thing:v1'] } }), 403, 'DENIED');
  assert.match(msg, /rules\[0\]/);
  up.resetLog();
  const job = await ok<{ id: string; state: string }>(api(pt, '/api/v1/prefetch', { method: 'POST', body: { refs: ['team/other:v1'] } }), 202);
  const done = await waitJob(job.id);
  assert.equal(done.state, 'done', String(done.error));
  assert.equal(done.layersDone, other.blobs.length);
  assert.equal(done.layersTotal, other.blobs.length);
  assert.equal(done.bytesDone, other.blobs.reduce((n, b) => n + b.size, 0));
  assert.equal(up.count({ kind: 'blob', method: 'GET' }), other.blobs.length);
  assert.equal(up.count({ repo: 'secret/thing' }), 0, 'nothing fetched for the denied repository');
  for (const b of other.blobs) assert.ok(await store.stat(blobKey(b.digest)), `${b.digest} stored`);
  up.resetLog();
  const r = await skopeoCopy(`${pt.host}/team/other:v1`, 'dir', { tlsVerify: false });
  assert.equal(r.code, 0, r.stderr);
  await r.cleanup();
  assert.equal(up.count({ kind: 'blob', method: 'GET' }), 0, 'every blob came from the cache');
  // One platform of an index: that platform's blobs only.
  const arm = app.manifests.find((m) => m.platform.architecture === 'arm64')!;
  const job2 = await ok<{ id: string }>(api(pt, '/api/v1/prefetch', { method: 'POST', body: { refs: ['team/app:v1'], platforms: ['linux/arm64'] } }), 202);
  const done2 = await waitJob(job2.id);
  assert.equal(done2.state, 'done', String(done2.error));
  for (const d of [arm.configDigest, ...arm.layers.map((l) => l.digest)]) assert.ok(await store.stat(blobKey(d)), `${d} stored`);
  const s = await ok<{ cached: boolean }>(api(pt, '/api/v1/status?ref=team/app:v1'));
  assert.equal(s.cached, true, 'both platforms now');
});

test('purge of a tag: gone from the listing, blobs no other image uses deleted, the next pull downloads again', async () => {
  await pullAmd64('team/app', app);
  const dry = await ok<{ dryRun: boolean; blobs: string[] }>(api(pt, '/api/v1/purge', { method: 'POST', body: { ref: 'team/app:v1', dryRun: true } }));
  assert.equal(dry.dryRun, true);
  assert.equal(dry.blobs.length, app.blobs.length);
  for (const b of app.blobs) assert.ok(await store.stat(blobKey(b.digest)), 'dry run removed nothing');
  const r = await ok<{ tags: string[]; manifests: string[]; blobs: string[]; bytes: number }>(api(pt, '/api/v1/purge', { method: 'POST', body: { ref: 'up.test/team/app:v1' } }));
  assert.deepEqual(r.tags, ['up.test/team/app:v1']);
  assert.equal(r.manifests.length, 3, 'the index and both platforms');
  assert.deepEqual(r.blobs.sort(), app.blobs.map((b) => b.digest).sort());
  for (const b of app.blobs) assert.equal(await store.stat(blobKey(b.digest)), null, `${b.digest} deleted`);
  for (const b of other.blobs) assert.ok(await store.stat(blobKey(b.digest)), 'the other image is untouched');
  const { images } = await ok<{ images: Image[] }>(api(pt, '/api/v1/images'));
  assert.ok(!images.some((i) => i.repo === 'team/app'));
  up.resetLog();
  await pullAmd64('team/app', app);
  const amd64 = app.manifests.find((m) => m.platform.architecture === 'amd64')!;
  assert.equal(up.count({ kind: 'blob', method: 'GET' }), amd64.layers.length + 1, 'every blob downloaded again');
  assert.equal(up.count({ kind: 'manifest', method: 'GET' }), 2, 'index and platform manifest fetched again');
});

test('purge by repository and by age; a pinned image is kept and said so', async () => {
  await ok(api(pt, '/api/v1/pins', { method: 'POST', body: { ref: 'team/other:v1' } }), 201);
  await refused(api(pt, '/api/v1/purge', { method: 'POST', body: { ref: 'team/other:v1' } }), 409, 'PINNED');
  const old = await ok<{ tags: string[]; skippedPinned: string[] }>(api(pt, '/api/v1/purge', { method: 'POST', body: { olderThan: '1ms', dryRun: true } }));
  assert.deepEqual(old.skippedPinned, ['up.test/team/other:v1']);
  assert.ok(old.tags.includes('up.test/team/app:v1'), JSON.stringify(old));
  const none = await ok<{ tags: string[] }>(api(pt, '/api/v1/purge', { method: 'POST', body: { olderThan: '30d', dryRun: true } }));
  assert.deepEqual(none.tags, [], 'everything was pulled within 30 days');
  const repo = await ok<{ tags: string[] }>(api(pt, '/api/v1/purge', { method: 'POST', body: { repo: 'team/app' } }));
  assert.deepEqual(repo.tags, ['up.test/team/app:v1']);
  await ok(api(pt, '/api/v1/pins?ref=team/other:v1', { method: 'DELETE' }));
  const { pins } = await ok<{ pins: unknown[] }>(api(pt, '/api/v1/pins'));
  assert.deepEqual(pins, []);
});

test('offline mode is switched at run time and listed', async () => {
  const r = await ok<{ registry: string; offline: boolean; changed: boolean }>(api(pt, '/api/v1/registries/up.test/offline', { method: 'PUT', body: { offline: true } }));
  assert.deepEqual([r.registry, r.offline, r.changed], ['up.test', true, true]);
  assert.deepEqual((await ok<{ offline: string[] }>(api(pt, '/api/v1/offline'))).offline, ['up.test']);
  const back = await ok<{ changed: boolean }>(api(pt, '/api/v1/registries/up.test/offline', { method: 'PUT', body: { offline: false } }));
  assert.equal(back.changed, true);
  assert.deepEqual((await ok<{ offline: string[] }>(api(pt, '/api/v1/offline'))).offline, []);
});

test('pins survive eviction under a small cache.maxSize; unpinned images are evicted; pinned content over maxSize is logged and counted', async (t) => {
  const imgs: PushResult[] = [];
  for (const name of ['a', 'b', 'c', 'd']) imgs.push(await pushImage(up, `evict/${name}`, 'v1', await makeImage({ format: 'oci', seed: `admin-pin-${name}`, layerSize: 512 << 10 })));
  const size = Math.max(...imgs.map((p) => p.blobs.reduce((n, b) => n + b.size, 0)));
  const graceMs = 3000;
  const small = await startPullthrough({ registries: { 'up.test': { upstream: up.url } }, defaultRegistry: 'up.test', cache: { maxSize: Math.floor(3.6 * size), evictionGrace: `${graceMs}ms` } });
  t.after(() => small.cleanup());
  const smallStore = openFsStore(small);
  const pull = async (name: string): Promise<void> => {
    const r = await skopeoCopy(`${small.host}/evict/${name}:v1`, 'dir', { tlsVerify: false });
    assert.equal(r.code, 0, r.stderr);
    await r.cleanup();
  };
  const present = async (p: PushResult): Promise<boolean[]> => Promise.all(p.manifests[0]!.layers.map(async (l) => (await smallStore.stat(blobKey(l.digest))) !== null));
  await pull('a');
  await ok(api(small, '/api/v1/pins', { method: 'POST', body: { ref: 'evict/a:v1' } }), 201);
  await pull('b');
  await pull('c');
  // a is the least recently used; once past the grace period it would be the first to go.
  await new Promise((r) => setTimeout(r, graceMs + 500));
  await pull('d');
  await until('an eviction pass', async () => metricValue(await small.metrics(), 'pullthrough_evictions_total') > 0);
  assert.deepEqual(await present(imgs[0]!), imgs[0]!.manifests[0]!.layers.map(() => true), 'pinned a kept');
  assert.ok((await present(imgs[1]!)).some((p) => !p), 'unpinned b (next least recently used) evicted');
  const listed = (await ok<{ images: Image[] }>(api(small, '/api/v1/images?repo=evict/a'))).images[0];
  assert.equal(listed?.pinned, true);
  // Pin everything: pinned content alone is over maxSize; the pass says so and evicts none of it.
  for (const n of ['b', 'c', 'd']) await ok(api(small, '/api/v1/pins', { method: 'POST', body: { ref: `evict/${n}:v1` } }), 201);
  for (const n of ['b', 'c', 'd']) await pull(n);
  await pushImage(up, 'evict/e', 'v1', await makeImage({ format: 'oci', seed: 'admin-pin-e', layerSize: 1024 }));
  await pull('e');
  await until('the pinned-over-maxSize warning', () => small.logs().some((l) => l.msg.startsWith('pinned content alone exceeds cache.maxSize')));
  assert.ok(metricValue(await small.metrics(), 'pullthrough_eviction_pinned_over_max_total') >= 1);
  for (const p of imgs) assert.deepEqual(await present(p), p.manifests[0]!.layers.map(() => true), 'every pinned layer kept');
  assert.ok(metricValue(await small.metrics(), 'pullthrough_cache_pinned_bytes') > Math.floor(3.6 * size));
});
