/**
 * Store outages in-process (cache-fixture.ts's outage switches over real local stores): with the
 * metadata store down, manifests and blobs come through the remote-only layer — confirmed
 * upstream, verified, nothing written — and a repository the upstream does not confirm gets its
 * 404; with the blob store down, a cached blob is relayed from upstream.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { UpstreamStatusError } from '../../src/upstream/errors.js';
import { blobKey } from '../../src/storage/keys.js';
import { makeImage, seededBytes } from '../helpers/images.js';
import { cacheFixture, readAll, settle } from './cache-fixture.js';

const WRITES = ['putTag', 'putTagList', 'putManifest', 'link', 'putBlob', 'deleteBlob', 'deleteManifest', 'putFile', 'tryLock'];

describe('metadata store down: the remote-only layer', () => {
  it('manifests by tag and digest come verified from upstream, uncached; nothing is written', async () => {
    const f = await cacheFixture();
    try {
      const img = await makeImage({ format: 'oci', seed: 'outage-m', layerSize: [500] });
      f.fake.addImage('lib/app', 'v1', img);
      const t = f.target('lib/app');
      f.metaOutage.down = true;
      const m = await f.cache.manifest(t, { kind: 'tag', tag: 'v1' }, null, false);
      assert.equal(m.cache, 'pass');
      assert.equal(m.digest, img.manifestDigest);
      assert.deepEqual(m.body, img.manifest);
      const h = await f.cache.manifest(t, { kind: 'tag', tag: 'v1' }, null, true);
      assert.equal(h.digest, img.manifestDigest);
      assert.equal(h.body, undefined);
      const d = await f.cache.manifest(t, { kind: 'digest', digest: img.manifestDigest }, null, false);
      assert.deepEqual(d.body, img.manifest);
      assert.equal(f.fake.count('getManifest'), 2);
      assert.equal(f.fake.count('headManifest'), 1, 'only the client HEAD: no revalidation without records');
      await assert.rejects(f.cache.manifest(t, { kind: 'tag', tag: 'nope' }, null, true), (err: unknown) => err instanceof UpstreamStatusError && err.status === 404);
      assert.deepEqual(f.metaOutage.calledWhileDown.filter((x) => WRITES.includes(x)), [], 'no write attempted');
      f.metaOutage.down = false;
      assert.equal(await f.meta.getManifest(img.manifestDigest), null, 'nothing kept');
      assert.equal(await f.meta.getTag('fake.test', 'lib/app', 'v1'), null);
      const degraded = (await f.metrics.degraded.get()).values.find((x) => x.labels.reason === 'metadata_unavailable');
      assert.equal(degraded?.value, 4);
    } finally {
      await f.close();
    }
  });

  it('blobs: confirmed with statBlob, streamed verified, one download for concurrent clients, nothing written; an unconfirmed repository gets 404', async () => {
    const f = await cacheFixture();
    try {
      const data = seededBytes('outage-blob', 1 << 20);
      const digest = f.fake.addBlob('lib/app', data);
      const t = f.target('lib/app');
      f.metaOutage.down = true;
      const release = f.hold('openBlob');
      const handles = Array.from({ length: 4 }, () => f.cache.blob(t, digest, false));
      await settle();
      assert.deepEqual(f.downloads.list().map((x) => [x.digest, x.uncached]), [[digest, true]], 'listed as an uncached download');
      release();
      for (const h of handles) {
        const got = await h;
        assert.equal(got.cache, 'pass');
        assert.ok((await readAll(await got.open())).equals(data));
      }
      assert.equal(f.fake.count('statBlob'), 4, 'each request confirmed (no links to remember it by)');
      assert.equal(f.fake.count('openBlob'), 1);
      await assert.rejects(f.cache.blob(f.target('lib/other'), digest, false), (err: unknown) => err instanceof UpstreamStatusError && err.status === 404);
      assert.equal(f.fake.count('openBlob'), 1);
      // Let the fill end (its commit discards the spool file).
      await settle();
      assert.equal(f.cache.inFlight, 0);
      assert.deepEqual(f.metaOutage.calledWhileDown.filter((x) => WRITES.includes(x)), []);
      assert.equal(await f.blobs.stat(blobKey(digest)), null, 'no blob written');
      f.metaOutage.down = false;
      assert.equal(await f.meta.getBlob(digest), null);
    } finally {
      await f.close();
    }
  });

  it('tag list: served (not kept) while the store is down; its upstream failure then stands', async () => {
    const f = await cacheFixture();
    try {
      const img = await makeImage({ format: 'oci', seed: 'outage-tags', layerSize: [100] });
      f.fake.addImage('lib/app', 'b', img);
      f.fake.tag('lib/app', 'a', img.manifestDigest);
      f.metaOutage.down = true;
      const r = await f.cache.tags(f.target('lib/app'), {}, 'lib/app');
      assert.deepEqual(JSON.parse(r.body.toString()), { name: 'lib/app', tags: ['a', 'b'] });
      f.fake.script('listTags', { kind: 'status', status: 503 });
      await assert.rejects(f.cache.tags(f.target('lib/app'), {}, 'lib/app'), (err: unknown) => err instanceof UpstreamStatusError && err.status === 503);
    } finally {
      await f.close();
    }
  });
});

describe('blob store down', () => {
  it('a cached blob is relayed from upstream (verified), its repository already confirmed', async () => {
    const f = await cacheFixture();
    try {
      const data = seededBytes('blob-store-down', 200_000);
      const digest = f.fake.addBlob('lib/app', data);
      const t = f.target('lib/app');
      await readAll(await (await f.cache.blob(t, digest, false)).open());
      await f.cache.drain();
      f.fake.resetCalls();
      f.blobOutage.down = true;
      const h = await f.cache.blob(t, digest, false);
      assert.equal(h.cache, 'hit');
      assert.ok((await readAll(await h.open())).equals(data));
      assert.deepEqual(f.fake.calls.map((c) => c.method), ['openBlob']);
      const degraded = (await f.metrics.degraded.get()).values.find((x) => x.labels.reason === 'blob_store_unavailable');
      assert.equal(degraded?.value, 1);
    } finally {
      await f.close();
    }
  });
});
