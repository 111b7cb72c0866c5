/**
 * The manifest and tag policy in-process, against FakeRemote and real local stores
 * (test/cache/cache-fixture.ts): revalidation with HEAD, GET only when the digest changed,
 * stale-if-error within (and not past) staleIfError, single-flight, confirmation of manifests by
 * digest per repository. Upstream call counts and digests are what is asserted.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { UpstreamStatusError, UpstreamUnavailableError } from '../../src/upstream/errors.js';
import { MediaType } from '../../src/oci/media-types.js';
import { makeImage } from '../helpers/images.js';
import { cacheFixture, settle } from './cache-fixture.js';

const tag = (t: string) => ({ kind: 'tag' as const, tag: t });
const byDigest = (d: string) => ({ kind: 'digest' as const, digest: d });

describe('manifests by tag: revalidation', () => {
  it('a cached tag costs one HEAD per pull and no GET while the digest is unchanged; a new digest is one HEAD and one GET', async () => {
    const f = await cacheFixture();
    try {
      const v1 = await makeImage({ format: 'oci', seed: 'reval-1', layerSize: [1000] });
      f.fake.addImage('lib/app', 'latest', v1);
      const t = f.target('lib/app');
      const first = await f.cache.manifest(t, tag('latest'), null, false);
      assert.equal(first.cache, 'miss');
      assert.equal(first.digest, v1.manifestDigest);
      assert.deepEqual(first.body, v1.manifest);
      assert.equal(f.fake.count('headManifest'), 1);
      assert.equal(f.fake.count('getManifest'), 1);

      for (let i = 0; i < 3; i++) {
        const again = await f.cache.manifest(t, tag('latest'), null, false);
        assert.equal(again.cache, 'revalidated');
        assert.equal(again.digest, v1.manifestDigest);
        assert.deepEqual(again.body, v1.manifest);
      }
      assert.equal(f.fake.count('headManifest'), 4, 'one HEAD per pull');
      assert.equal(f.fake.count('getManifest'), 1, 'no GET while the digest is unchanged');

      // The tag moves upstream: HEAD sees the new digest, one GET fetches it.
      const v2 = await makeImage({ format: 'oci', seed: 'reval-2', layerSize: [1000] });
      f.fake.addImage('lib/app', 'latest', v2);
      const moved = await f.cache.manifest(t, tag('latest'), null, false);
      assert.equal(moved.cache, 'miss');
      assert.equal(moved.digest, v2.manifestDigest);
      assert.deepEqual(moved.body, v2.manifest);
      assert.equal(f.fake.count('headManifest'), 5);
      assert.equal(f.fake.count('getManifest'), 2);
      // Kept: by digest now a hit without asking upstream (linked for this repository).
      f.fake.resetCalls();
      const hit = await f.cache.manifest(t, byDigest(v2.manifestDigest), null, false);
      assert.equal(hit.cache, 'hit');
      assert.deepEqual(hit.body, v2.manifest);
      assert.equal(f.fake.calls.length, 0);
    } finally {
      await f.close();
    }
  });

  it('a client HEAD on an uncached tag is answered from an upstream HEAD, never a GET', async () => {
    const f = await cacheFixture();
    try {
      const img = await makeImage({ format: 'oci', seed: 'head-only', layerSize: [500] });
      f.fake.addImage('lib/app', 'v1', img);
      const h = await f.cache.manifest(f.target('lib/app'), tag('v1'), null, true);
      assert.equal(h.cache, 'pass');
      assert.equal(h.digest, img.manifestDigest);
      assert.equal(h.size, img.manifest.length);
      assert.equal(h.body, undefined);
      assert.equal(f.fake.count('headManifest'), 1);
      assert.equal(f.fake.count('getManifest'), 0);
    } finally {
      await f.close();
    }
  });

  it('a HEAD that fails (404) is followed by a GET, so the client gets the upstream\'s own error', async () => {
    const f = await cacheFixture();
    try {
      f.fake.addManifest('lib/app', Buffer.from('{}'), MediaType.OciManifest, []);
      await assert.rejects(f.cache.manifest(f.target('lib/app'), tag('gone'), null, false), (err: unknown) => {
        assert.ok(err instanceof UpstreamStatusError);
        assert.equal(err.status, 404);
        assert.equal(err.upstreamCode, 'MANIFEST_UNKNOWN');
        return true;
      });
      assert.equal(f.fake.count('headManifest'), 1);
      assert.equal(f.fake.count('getManifest'), 1);
    } finally {
      await f.close();
    }
  });

  it('tag records are kept per Accept class: a client that takes no index does not flip the record of one that does', async () => {
    const f = await cacheFixture();
    try {
      const multi = await makeImage({ format: 'docker-list', seed: 'accept-class', layerSize: [300] });
      f.fake.addImage('lib/multi', 'v1', multi);
      const t = f.target('lib/multi');
      const all = await f.cache.manifest(t, tag('v1'), null, false);
      assert.equal(all.digest, multi.manifestDigest, 'any Accept: the list');
      const single = await f.cache.manifest(t, tag('v1'), new Set([MediaType.DockerManifest]), false);
      const amd64 = multi.platforms.find((p) => p.platform.architecture === 'amd64')!;
      assert.equal(single.digest, amd64.digest, 'no list in Accept: the linux/amd64 manifest');
      assert.deepEqual((await f.meta.getTag('fake.test', 'lib/multi', 'v1'))?.digest, multi.manifestDigest);
      assert.deepEqual((await f.meta.getTag('fake.test', 'lib/multi', 'v1~single'))?.digest, amd64.digest);
      const again = await f.cache.manifest(t, tag('v1'), null, false);
      assert.equal(again.cache, 'revalidated');
      assert.equal(again.digest, multi.manifestDigest);
    } finally {
      await f.close();
    }
  });
});

describe('manifests by tag: stale-if-error', () => {
  it('429/5xx on the HEAD with a usable record: served stale without a GET; unreachable too; a 404 is not papered over', async () => {
    const f = await cacheFixture();
    try {
      const img = await makeImage({ format: 'oci', seed: 'stale', layerSize: [400] });
      f.fake.addImage('lib/app', 'v1', img);
      const t = f.target('lib/app');
      await f.cache.manifest(t, tag('v1'), null, false);
      f.fake.resetCalls();

      f.fake.script('headManifest', { kind: 'status', status: 503 }, { times: 1 });
      const s503 = await f.cache.manifest(t, tag('v1'), null, false);
      assert.equal(s503.cache, 'stale');
      assert.equal(s503.staleReason, 'upstream answered 503');
      assert.equal(s503.digest, img.manifestDigest);
      assert.deepEqual(s503.body, img.manifest);
      assert.equal(f.fake.count('headManifest'), 1);
      assert.equal(f.fake.count('getManifest'), 0, 'a failing upstream is not asked again with a GET');

      f.fake.script('headManifest', { kind: 'status', status: 429, retryAfter: '30' }, { times: 1 });
      assert.equal((await f.cache.manifest(t, tag('v1'), null, false)).cache, 'stale');
      f.fake.script('headManifest', { kind: 'unavailable' }, { times: 1 });
      const down = await f.cache.manifest(t, tag('v1'), null, false);
      assert.equal(down.cache, 'stale');
      assert.match(down.staleReason ?? '', /unavailable/);
      assert.equal(f.fake.count('getManifest'), 0);

      // The tag deleted upstream: the 404 stands (fetched with a GET for its message).
      f.fake.tag('lib/app', 'v1', undefined);
      await assert.rejects(f.cache.manifest(t, tag('v1'), null, false), (err: unknown) => err instanceof UpstreamStatusError && err.status === 404);
      assert.equal(f.fake.count('getManifest'), 1);
    } finally {
      await f.close();
    }
  });

  it('not past staleIfError: an older record is not served; the upstream failure reaches the client', async () => {
    const f = await cacheFixture({ cache: { tags: [{ match: 'short-.*', revalidate: '0s', staleIfError: '1m' }] } });
    try {
      const img = await makeImage({ format: 'oci', seed: 'stale-limit', layerSize: [400] });
      f.fake.addImage('lib/app', 'short-1', img);
      const t = f.target('lib/app');
      await f.cache.manifest(t, tag('short-1'), null, false);
      f.fake.script('headManifest', { kind: 'status', status: 503 });
      f.fake.script('getManifest', { kind: 'status', status: 503 });
      // Within a minute: stale.
      assert.equal((await f.cache.manifest(t, tag('short-1'), null, false)).cache, 'stale');
      // The record checked two minutes ago: past revalidate + staleIfError.
      const rec = (await f.meta.getTag('fake.test', 'lib/app', 'short-1'))!;
      await f.meta.putTag('fake.test', 'lib/app', 'short-1', { ...rec, checkedAt: Date.now() - 120_000 });
      f.fake.resetCalls();
      await assert.rejects(f.cache.manifest(t, tag('short-1'), null, false), (err: unknown) => err instanceof UpstreamStatusError && err.status === 503);
      assert.equal(f.fake.count('headManifest'), 1);
      assert.equal(f.fake.count('getManifest'), 1, 'without a usable record the GET is made (for the upstream\'s message)');
      f.fake.clearFaults();
      f.fake.script('headManifest', { kind: 'unavailable' });
      f.fake.script('getManifest', { kind: 'unavailable' });
      await assert.rejects(f.cache.manifest(t, tag('short-1'), null, false), UpstreamUnavailableError);
    } finally {
      await f.close();
    }
  });
});

describe('manifests: single-flight and confirmation', () => {
  it('N concurrent pulls of an uncached tag: one HEAD, one GET upstream, the same bytes for all', async () => {
    const f = await cacheFixture();
    try {
      const img = await makeImage({ format: 'oci', seed: 'flight', layerSize: [400] });
      f.fake.addImage('lib/app', 'v1', img);
      const release = f.hold('headManifest');
      const t = f.target('lib/app');
      const pending = Promise.all(Array.from({ length: 8 }, () => f.cache.manifest(t, tag('v1'), null, false)));
      await settle();
      release();
      const all = await pending;
      for (const m of all) assert.deepEqual(m.body, img.manifest);
      assert.equal(f.fake.count('headManifest'), 1);
      assert.equal(f.fake.count('getManifest'), 1);
    } finally {
      await f.close();
    }
  });

  it('pulls of one tag with different Accept sets at once (no shared flight): one GET between them, by the manifest lease', async () => {
    const f = await cacheFixture();
    try {
      const img = await makeImage({ format: 'oci', seed: 'lease-accept', layerSize: [400] });
      f.fake.addImage('lib/app', 'v1', img);
      const release = f.hold('getManifest');
      const t = f.target('lib/app');
      const accepts = [null, new Set([MediaType.OciManifest]), new Set([MediaType.OciManifest, MediaType.DockerManifest])];
      const pending = Promise.all(accepts.map((a) => f.cache.manifest(t, tag('v1'), a, false)));
      await settle();
      release();
      const all = await pending;
      for (const m of all) {
        assert.equal(m.digest, img.manifestDigest);
        assert.deepEqual(m.body, img.manifest);
      }
      assert.equal(f.fake.count('headManifest'), 3, 'each Accept class revalidates');
      assert.equal(f.fake.count('getManifest'), 1, 'one GET: the others found it in the store');
      for (const key of ['v1', 'v1~single']) assert.equal((await f.meta.getTag('fake.test', 'lib/app', key))?.digest, img.manifestDigest, `tag record ${key}`);
    } finally {
      await f.close();
    }
  });

  it('a manifest cached by digest for repository A is served to B only after B\'s upstream HEAD; B\'s 404 is a 404', async () => {
    const f = await cacheFixture();
    try {
      const img = await makeImage({ format: 'oci', seed: 'confirm-m', layerSize: [400] });
      f.fake.addImage('team/a', 'v1', img);
      f.fake.addImage('team/b', 'v1', img);
      f.fake.addManifest('team/c', Buffer.from('{}'), MediaType.OciManifest);
      const d = img.manifestDigest;
      assert.equal((await f.cache.manifest(f.target('team/a'), byDigest(d), null, false)).cache, 'miss');
      f.fake.resetCalls();
      const b = await f.cache.manifest(f.target('team/b'), byDigest(d), null, false);
      assert.equal(b.cache, 'hit');
      assert.deepEqual(b.body, img.manifest);
      assert.deepEqual(f.fake.calls.map((c) => `${c.method} ${c.repo}`), ['headManifest team/b']);
      // Confirmed once: not asked again.
      await f.cache.manifest(f.target('team/b'), byDigest(d), null, false);
      assert.equal(f.fake.calls.length, 1);
      await assert.rejects(f.cache.manifest(f.target('team/c'), byDigest(d), null, false), (err: unknown) => err instanceof UpstreamStatusError && err.status === 404);
      assert.equal(f.fake.count('getManifest'), 0, 'nothing fetched for C');
    } finally {
      await f.close();
    }
  });
});
