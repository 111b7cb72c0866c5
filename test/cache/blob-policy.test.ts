/**
 * The blob policy in-process, against FakeRemote and real local stores (cache-fixture.ts):
 * single-flight downloads, confirmation across repositories and accounts, HEAD of a miss from an
 * upstream stat, failure mid-stream (nothing visible, the next request fetches again), a corrupt
 * body, a record whose bytes are gone. Bytes, digests and upstream call counts are asserted.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { UpstreamStatusError, UpstreamUnavailableError } from '../../src/upstream/errors.js';
import { blobKey } from '../../src/storage/keys.js';
import { seededBytes, sha256 } from '../helpers/images.js';
import { cacheFixture, readAll, settle } from './cache-fixture.js';

describe('blobs', () => {
  it('N concurrent requests for a missing blob: one openBlob upstream; every client gets every byte; then a hit', async () => {
    const f = await cacheFixture();
    try {
      const data = seededBytes('single-flight-blob', 3 << 20);
      const digest = f.fake.addBlob('lib/app', data);
      const t = f.target('lib/app');
      const release = f.hold('openBlob');
      const handles = Array.from({ length: 8 }, () => f.cache.blob(t, digest, false));
      await settle();
      assert.deepEqual(
        f.downloads.list().map((x) => [x.digest, x.repo, x.uncached]),
        [[digest, 'lib/app', false]],
        'one download listed for all eight',
      );
      release();
      const bodies = await Promise.all(handles.map(async (h) => readAll(await (await h).open())));
      for (const b of bodies) assert.ok(b.equals(data), 'every client gets the verified bytes');
      assert.equal(f.fake.count('openBlob'), 1, 'one download');
      for (const h of handles) assert.equal((await h).cache, 'miss');
      await f.cache.drain();
      assert.deepEqual(f.downloads.list(), [], 'the finished download is off the list');
      assert.deepEqual(await f.blobs.stat(blobKey(digest)), { size: data.length });
      assert.equal((await f.meta.getBlob(digest))?.size, data.length);
      // A range of the stored blob, and no further upstream call.
      f.fake.resetCalls();
      const hit = await f.cache.blob(t, digest, false);
      assert.equal(hit.cache, 'hit');
      assert.ok((await readAll(await hit.open({ start: 100, end: 199 }))).equals(data.subarray(100, 200)));
      assert.equal(f.fake.calls.length, 0);
    } finally {
      await f.close();
    }
  });

  it('HEAD of a miss is one statBlob, never a download; a 404 is a 404', async () => {
    const f = await cacheFixture();
    try {
      const data = seededBytes('head-miss', 10_000);
      const digest = f.fake.addBlob('lib/app', data);
      const h = await f.cache.blob(f.target('lib/app'), digest, true);
      assert.equal(h.size, data.length);
      assert.equal(h.cache, 'pass');
      await assert.rejects(f.cache.blob(f.target('lib/app'), sha256('absent'), true), (err: unknown) => err instanceof UpstreamStatusError && err.status === 404);
      assert.equal(f.fake.count('statBlob'), 2);
      assert.equal(f.fake.count('openBlob'), 0);
    } finally {
      await f.close();
    }
  });

  it('a blob cached for repository A is served to B only after B\'s statBlob, and to another account only after its own; B\'s 404 is a 404', async () => {
    const f = await cacheFixture();
    try {
      const data = seededBytes('confirm-blob', 50_000);
      const digest = f.fake.addBlob('team/a', data);
      f.fake.addBlob('team/b', data);
      await readAll(await (await f.cache.blob(f.target('team/a'), digest, false)).open());
      await f.cache.drain();
      f.fake.resetCalls();

      const b = await f.cache.blob(f.target('team/b'), digest, false);
      assert.equal(b.cache, 'hit');
      assert.ok((await readAll(await b.open())).equals(data));
      assert.deepEqual(f.fake.calls.map((c) => `${c.method} ${c.repo}`), ['statBlob team/b'], 'confirmed with a stat, not downloaded');
      await f.cache.blob(f.target('team/b'), digest, false);
      assert.equal(f.fake.calls.length, 1, 'confirmed once');

      // The same repository with a client's own credentials: another account, asked again.
      await f.cache.blob(f.target('team/b', { username: 'alice', password: 'x' }), digest, false);
      assert.equal(f.fake.count('statBlob'), 2);
      assert.notEqual(f.fake.calls[1]!.account, f.fake.calls[0]!.account);

      // C does not hold it: the 404 reaches the client, nothing is downloaded for C.
      await assert.rejects(f.cache.blob(f.target('team/c'), digest, false), (err: unknown) => err instanceof UpstreamStatusError && err.status === 404);
      assert.equal(f.fake.count('openBlob'), 0);
      assert.equal(await f.meta.isLinked('fake.test', 'team/c', digest), false);
    } finally {
      await f.close();
    }
  });

  it('a body that breaks off mid-stream: the client\'s read fails, no blob is visible, the next request fetches it whole', async () => {
    const f = await cacheFixture();
    try {
      const data = seededBytes('midstream', 2 << 20);
      const digest = f.fake.addBlob('lib/app', data);
      const t = f.target('lib/app');
      f.fake.script('openBlob', { kind: 'midstream', after: 100_000 }, { times: 1 });
      const broken = await f.cache.blob(t, digest, false);
      await assert.rejects(readAll(await broken.open()));
      await f.cache.drain();
      assert.equal(await f.blobs.stat(blobKey(digest)), null, 'no blob in storage');
      assert.equal(await f.meta.getBlob(digest), null, 'no record');
      assert.equal(f.cache.inFlight, 0);

      const again = await f.cache.blob(t, digest, false);
      assert.ok((await readAll(await again.open())).equals(data));
      assert.equal(f.fake.count('openBlob'), 2);
      await f.cache.drain();
      assert.deepEqual(await f.blobs.stat(blobKey(digest)), { size: data.length });
    } finally {
      await f.close();
    }
  });

  it('bytes that do not hash to the digest are never committed; unreachable upstream is UpstreamUnavailableError', async () => {
    const f = await cacheFixture();
    try {
      const data = seededBytes('corrupt', 200_000);
      const digest = f.fake.addBlob('lib/app', data);
      const t = f.target('lib/app');
      f.fake.script('openBlob', { kind: 'corrupt' }, { times: 1 });
      const h = await f.cache.blob(t, digest, false);
      await assert.rejects(readAll(await h.open()));
      await f.cache.drain();
      const integrity = (await f.metrics.fillFailures.get()).values.find((x) => x.labels.reason === 'integrity');
      assert.equal(integrity?.value, 1, 'counted as an integrity failure');
      assert.equal(await f.blobs.stat(blobKey(digest)), null);
      f.fake.script('openBlob', { kind: 'unavailable' }, { times: 1 });
      await assert.rejects(f.cache.blob(t, digest, false), UpstreamUnavailableError);
    } finally {
      await f.close();
    }
  });

  it('a record whose bytes are gone is forgotten and the blob fetched again', async () => {
    const f = await cacheFixture();
    try {
      const data = seededBytes('lost-bytes', 30_000);
      const digest = f.fake.addBlob('lib/app', data);
      const t = f.target('lib/app');
      await readAll(await (await f.cache.blob(t, digest, false)).open());
      await f.cache.drain();
      await f.blobs.delete(blobKey(digest));
      const h = await f.cache.blob(t, digest, false);
      assert.equal(h.cache, 'hit', 'the record still says so');
      assert.ok((await readAll(await h.open())).equals(data));
      assert.equal(f.fake.count('openBlob'), 2);
    } finally {
      await f.close();
    }
  });
});
