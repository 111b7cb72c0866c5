/**
 * Offline mode in the cache (issue 18), end to end: content is pulled through pullthrough from a
 * real docker-registry, then pullthrough restarts on the same data dir with the registry offline
 * and a listening canary socket as its upstream. Everything cached is served (skopeo pulls with
 * the same digests, tag list, referrers' 404), whatever its age, and nothing else: a miss is
 * 503 naming offline mode. The canary counts every connection: it must see none.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startUpstreamRegistry, type Upstream } from './helpers/upstream-registry.js';
import { startPullthrough, metricValue, type Pullthrough } from './helpers/pullthrough.js';
import { tempDir } from './helpers/process.js';
import { makeImage, pushImage, type PushResult } from './helpers/images.js';
import { readDirLayout, skopeoCopy } from './helpers/clients.js';
import { errorCode } from './helpers/http.js';
import { startCanary, type Canary } from './helpers/canary.js';


let up: Upstream;
let data: { path: string; cleanup: () => Promise<void> };
let canary: Canary;
let pt: Pullthrough;
let pushed: PushResult;
let other: PushResult;

before(async () => {
  up = await startUpstreamRegistry();
  data = await tempDir('pullthrough-offline-');
  canary = await startCanary();
  pushed = await pushImage(up, 'team/off', 'v1', await makeImage({ format: 'oci-index', seed: 'offline' }));
  other = await pushImage(up, 'team/off', 'v2', await makeImage({ format: 'oci', seed: 'offline-other' }));
  // Online: pull v1 (every platform), list the tags, ask for referrers (2.8 has no referrers API: 404).
  const online = await startPullthrough({ registries: { 'off.test': { upstream: up.url } }, defaultRegistry: 'off.test' }, { dataDir: data.path });
  try {
    const r = await skopeoCopy(`${online.host}/team/off:v1`, 'dir', { tlsVerify: false, all: true });
    assert.equal(r.code, 0, r.stderr);
    await r.cleanup();
    assert.equal((await fetch(`${online.url}/v2/team/off/tags/list`)).status, 200);
    assert.equal((await fetch(`${online.url}/v2/team/off/referrers/${pushed.manifestDigest}`)).status, 404);
  } finally {
    await online.stop();
  }
  pt = await startPullthrough({ registries: { 'off.test': { upstream: canary.url, offline: true } }, defaultRegistry: 'off.test' }, { dataDir: data.path });
});
after(async () => {
  await pt?.cleanup();
  await canary?.close();
  await up?.stop();
  await data?.cleanup();
});

test('offline: a cached image pulls with the same digests, every platform, and no connection upstream', async () => {
  const r = await skopeoCopy(`${pt.host}/team/off:v1`, 'dir', { tlsVerify: false, all: true });
  try {
    assert.equal(r.code, 0, r.stderr);
    const layout = await readDirLayout(r.path);
    assert.equal(layout.manifestDigest, pushed.manifestDigest);
    assert.deepEqual([...layout.instanceManifests].sort(), pushed.manifests.map((m) => m.digest).sort());
    assert.deepEqual(layout.blobs.map((b) => b.digest).sort(), pushed.blobs.map((b) => b.digest).sort());
  } finally {
    await r.cleanup();
  }
  const line = pt.requests().find((l) => l.path === '/v2/team/off/manifests/v1' && l.method === 'GET');
  assert.equal(line?.cache, 'stale');
  assert.equal(line?.stale, 'offline');
  assert.ok(metricValue(await pt.metrics(), 'pullthrough_stale_answers_total', { registry: 'off.test', reason: 'offline' }) >= 1);
  assert.equal(canary.connections(), 0);
});

test('offline: the tag list and the referrers answer are served from the cache; misses are 503 naming offline mode', async () => {
  const list = await fetch(`${pt.url}/v2/team/off/tags/list`);
  assert.equal(list.status, 200);
  assert.deepEqual(((await list.json()) as { tags: string[] }).tags, ['v1', 'v2']);
  assert.match(list.headers.get('warning') ?? '', /^110 /);
  // No referrers API upstream, kept as such: the 404 clients take as "use the tag schema".
  assert.equal((await fetch(`${pt.url}/v2/team/off/referrers/${pushed.manifestDigest}`)).status, 404);

  for (const path of [
    '/v2/team/off/manifests/v2', // listed, never pulled
    `/v2/team/off/manifests/${other.manifestDigest}`,
    `/v2/team/off/blobs/${other.configDigest}`,
    `/v2/team/off/blobs/${pushed.blobs[0]!.digest}`.replace('team/off', 'team/elsewhere'), // cached, never confirmed for that repository
    '/v2/team/none/tags/list',
  ]) {
    const res = await fetch(`${pt.url}${path}`);
    const body = Buffer.from(await res.arrayBuffer());
    assert.equal(res.status, 503, path);
    assert.equal(errorCode(body), 'UNAVAILABLE', path);
    assert.match(body.toString(), /offline mode/, path);
  }
  assert.equal(canary.connections(), 0, 'no connection for misses either');
});
