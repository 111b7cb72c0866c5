/**
 * Tag lists and referrers in-process (cache-fixture.ts): one listTags for concurrent requests,
 * sorted and paged here; the last good list served stale when upstream fails, within staleIfError;
 * referrers passed through, and an upstream without the referrers API is the client's 404.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { UpstreamStatusError, UpstreamUnavailableError } from '../../src/upstream/errors.js';
import { makeImage, sha256 } from '../helpers/images.js';
import { cacheFixture, settle } from './cache-fixture.js';

describe('tag lists', () => {
  it('one listTags for concurrent requests; sorted, paged by n/last; stale when upstream fails; never listed → the error', async () => {
    const f = await cacheFixture();
    try {
      const img = await makeImage({ format: 'oci', seed: 'tag-lists', layerSize: [100] });
      f.fake.addImage('lib/app', 't3', img);
      for (const x of ['t1', 't4', 't2']) f.fake.tag('lib/app', x, img.manifestDigest);
      const t = f.target('lib/app');
      const release = f.hold('listTags');
      const pending = Promise.all(Array.from({ length: 5 }, () => f.cache.tags(t, { n: 2 }, 'lib/app')));
      await settle();
      release();
      for (const r of await pending) {
        assert.deepEqual(JSON.parse(r.body.toString()).tags, ['t1', 't2']);
        assert.deepEqual(r.next, { n: 2, last: 't2' });
        assert.equal(r.cache, 'pass');
      }
      assert.equal(f.fake.count('listTags'), 1);

      f.fake.script('listTags', { kind: 'status', status: 503 });
      const stale = await f.cache.tags(t, { n: 2, last: 't2' }, 'lib/app');
      assert.equal(stale.cache, 'stale');
      assert.equal(stale.staleReason, 'upstream answered 503');
      assert.deepEqual(JSON.parse(stale.body.toString()).tags, ['t3', 't4']);
      await assert.rejects(f.cache.tags(f.target('lib/never'), {}, 'lib/never'), (err: unknown) => err instanceof UpstreamStatusError && err.status === 503);

      // Past the default staleIfError (30 days), the failure stands.
      const rec = (await f.meta.getTagList('fake.test', 'lib/app'))!;
      await f.meta.putTagList('fake.test', 'lib/app', { ...rec, fetchedAt: Date.now() - 31 * 86_400_000 });
      f.fake.clearFaults();
      f.fake.script('listTags', { kind: 'unavailable' });
      await assert.rejects(f.cache.tags(t, {}, 'lib/app'), UpstreamUnavailableError);
    } finally {
      await f.close();
    }
  });
});

describe('referrers', () => {
  it('passed through; an upstream without the referrers API is a 404 for the client', async () => {
    const f = await cacheFixture();
    try {
      const img = await makeImage({ format: 'oci', seed: 'referrers', layerSize: [100] });
      f.fake.addImage('lib/app', 'v1', img);
      const sig = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256('sig'), size: 3, artifactType: 'application/example.sig' };
      f.fake.addReferrer('lib/app', img.manifestDigest, sig);
      const r = await f.cache.referrers(f.target('lib/app'), img.manifestDigest, undefined);
      assert.equal(r.headers['content-type'], 'application/vnd.oci.image.index.v1+json');
      assert.deepEqual(JSON.parse(r.body.toString()).manifests, [sig]);
      const filtered = await f.cache.referrers(f.target('lib/app'), img.manifestDigest, 'application/other');
      assert.equal(filtered.headers['oci-filters-applied'], 'artifactType');
      assert.deepEqual(JSON.parse(filtered.body.toString()).manifests, []);

      f.fake.referrersApi = false;
      await assert.rejects(f.cache.referrers(f.target('lib/app'), img.manifestDigest, undefined), (err: unknown) => err instanceof UpstreamStatusError && err.status === 404);
      assert.equal(f.fake.count('listReferrers'), 3);
      await settle(0);
    } finally {
      await f.close();
    }
  });
});
