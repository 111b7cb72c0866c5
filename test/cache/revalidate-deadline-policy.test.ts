/**
 * cache.revalidateDeadline in the policies, in-process (cache-fixture.ts: FakeRemote and real
 * local stores; `hold(method)` keeps upstream calls open, as an upstream that hangs and later
 * answers): a cached tag, tag list or referrers index is served stale at the deadline while the
 * revalidation goes on and then updates the record; requests share one revalidation; nothing
 * cached means waiting; referrers are kept and served stale on failure. The deadline is 200 ms
 * here; answers are held to 200 ms plus 1.5 s of slack for a loaded machine.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { UpstreamStatusError } from '../../src/upstream/errors.js';
import { makeImage, sha256 } from '../helpers/images.js';
import { cacheFixture, settle, type CacheFixture } from './cache-fixture.js';

const DEADLINE = { cache: { revalidateDeadline: '200ms' } };
const BOUND_MS = 1700;
const tag = (t: string) => ({ kind: 'tag' as const, tag: t });

async function timed<T>(p: Promise<T>): Promise<{ value: T; ms: number }> {
  const t0 = Date.now();
  const value = await p;
  return { value, ms: Date.now() - t0 };
}

/** Polls until `cond` holds (the background revalidation writes after its request was answered). */
async function until(what: string, cond: () => Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await settle(20);
  }
}

const staleAnswers = async (f: CacheFixture, reason: string): Promise<number> =>
  (await f.metrics.registry.getSingleMetric('pullthrough_stale_answers_total')!.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;

describe('revalidation deadline: tags', () => {
  it('a hung revalidation: the cached tag at the deadline, stale; the record is updated once the upstream answers', async () => {
    const f = await cacheFixture(DEADLINE);
    try {
      const v1 = await makeImage({ format: 'oci', seed: 'dl-1', layerSize: [100] });
      const v2 = await makeImage({ format: 'oci', seed: 'dl-1', version: 2, layerSize: [100] });
      f.fake.addImage('lib/app', 'latest', v1);
      const t = f.target('lib/app');
      assert.equal((await f.cache.manifest(t, tag('latest'), null, false)).digest, v1.manifestDigest);

      f.fake.addImage('lib/app', 'latest', v2); // the tag moves upstream
      f.fake.resetCalls();
      const release = f.hold('headManifest');
      const { value: r, ms } = await timed(f.cache.manifest(t, tag('latest'), null, false));
      assert.equal(r.cache, 'stale');
      assert.equal(r.staleReason, 'revalidation exceeded 200 ms');
      assert.equal(r.digest, v1.manifestDigest);
      assert.deepEqual(r.body, v1.manifest);
      assert.ok(ms >= 190 && ms < BOUND_MS, `answered after ${ms} ms`);
      assert.equal(await staleAnswers(f, 'deadline'), 1);
      assert.equal((await f.meta.getTag('fake.test', 'lib/app', 'latest'))?.digest, v1.manifestDigest, 'nothing changed yet');

      release();
      await until('the record to move to v2', async () => (await f.meta.getTag('fake.test', 'lib/app', 'latest'))?.digest === v2.manifestDigest);
      assert.equal(f.fake.count('headManifest'), 1);
      assert.equal(f.fake.count('getManifest'), 1, 'the new manifest was fetched in the background');
      // The next pull: v2, already cached, so the HEAD confirms it.
      const next = await f.cache.manifest(t, tag('latest'), null, false);
      assert.equal(next.cache, 'revalidated');
      assert.equal(next.digest, v2.manifestDigest);
      assert.deepEqual(next.body, v2.manifest);
    } finally {
      await f.close();
    }
  });

  it('requests during a hang share one revalidation; a late failure leaves the record as it was', async () => {
    const f = await cacheFixture(DEADLINE);
    try {
      const v1 = await makeImage({ format: 'oci', seed: 'dl-share', layerSize: [100] });
      f.fake.addImage('lib/app', 'v1', v1);
      const t = f.target('lib/app');
      await f.cache.manifest(t, tag('v1'), null, false);
      const before = await f.meta.getTag('fake.test', 'lib/app', 'v1');
      f.fake.resetCalls();
      const release = f.hold('headManifest');
      const all = await Promise.all(Array.from({ length: 6 }, () => timed(f.cache.manifest(t, tag('v1'), null, false))));
      for (const { value, ms } of all) {
        assert.equal(value.cache, 'stale');
        assert.equal(value.digest, v1.manifestDigest);
        assert.ok(ms < BOUND_MS, `answered after ${ms} ms`);
      }
      // The upstream then fails the revalidation they all waited on: reported, not unhandled
      // (node:test fails the file on an unhandled rejection), and the record stays.
      f.fake.script('headManifest', { kind: 'status', status: 503 });
      release();
      await until('the held HEAD', async () => f.fake.count('headManifest') === 1);
      await settle(100);
      assert.equal(f.fake.count('headManifest'), 1, 'one revalidation for six requests');
      assert.deepEqual(await f.meta.getTag('fake.test', 'lib/app', 'v1'), before);
    } finally {
      await f.close();
    }
  });

  it('nothing cached, or cached past staleIfError: the request waits for the upstream past the deadline', async () => {
    const f = await cacheFixture({ cache: { revalidateDeadline: '200ms', tags: [{ match: 'short', revalidate: '0s', staleIfError: '1m' }] } });
    try {
      const img = await makeImage({ format: 'oci', seed: 'dl-wait', layerSize: [100] });
      f.fake.addImage('lib/app', 'cold', img);
      f.fake.tag('lib/app', 'short', img.manifestDigest);
      const t = f.target('lib/app');

      let release = f.hold('headManifest');
      let done = false;
      const cold = f.cache.manifest(t, tag('cold'), null, false).finally(() => (done = true));
      await settle(500);
      assert.equal(done, false, 'no cached answer: still waiting past the deadline');
      release();
      assert.equal((await cold).cache, 'miss');

      await f.cache.manifest(t, tag('short'), null, false);
      const rec = (await f.meta.getTag('fake.test', 'lib/app', 'short'))!;
      await f.meta.putTag('fake.test', 'lib/app', 'short', { ...rec, checkedAt: Date.now() - 2 * 60_000 });
      release = f.hold('headManifest');
      done = false;
      const old = f.cache.manifest(t, tag('short'), null, false).finally(() => (done = true));
      await settle(500);
      assert.equal(done, false, 'past staleIfError: not served merely because the upstream is slow');
      release();
      assert.equal((await old).cache, 'revalidated');
    } finally {
      await f.close();
    }
  });
});

describe('revalidation deadline: tag lists and referrers', () => {
  it('a hung tag list: the kept list at the deadline, stale; the fetch goes on and replaces it', async () => {
    const f = await cacheFixture(DEADLINE);
    try {
      const img = await makeImage({ format: 'oci', seed: 'dl-tags', layerSize: [100] });
      f.fake.addImage('lib/app', 'b', img);
      f.fake.tag('lib/app', 'a', img.manifestDigest);
      const t = f.target('lib/app');
      assert.deepEqual(JSON.parse((await f.cache.tags(t, {}, 'lib/app')).body.toString()).tags, ['a', 'b']);
      f.fake.tag('lib/app', 'c', img.manifestDigest);
      const release = f.hold('listTags');
      const { value: r, ms } = await timed(f.cache.tags(t, {}, 'lib/app'));
      assert.equal(r.cache, 'stale');
      assert.equal(r.staleReason, 'revalidation exceeded 200 ms');
      assert.deepEqual(JSON.parse(r.body.toString()).tags, ['a', 'b']);
      assert.ok(ms < BOUND_MS, `answered after ${ms} ms`);
      release();
      await until('the new list to be kept', async () => (await f.meta.getTagList('fake.test', 'lib/app'))?.tags.length === 3);
      assert.deepEqual(JSON.parse((await f.cache.tags(t, {}, 'lib/app')).body.toString()).tags, ['a', 'b', 'c']);
    } finally {
      await f.close();
    }
  });

  it('referrers are kept per filter: stale on failure and at the deadline; no referrers API is a 404, kept too', async () => {
    const f = await cacheFixture(DEADLINE);
    try {
      const img = await makeImage({ format: 'oci', seed: 'dl-referrers', layerSize: [100] });
      f.fake.addImage('lib/app', 'v1', img);
      const sig = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256('sig'), size: 3, artifactType: 'application/example.sig' };
      f.fake.addReferrer('lib/app', img.manifestDigest, sig);
      const t = f.target('lib/app');
      const d = img.manifestDigest;

      const fresh = await f.cache.referrers(t, d, undefined);
      assert.equal(fresh.cache, 'pass');
      assert.deepEqual(JSON.parse(fresh.body.toString()).manifests, [sig]);
      const filtered = await f.cache.referrers(t, d, 'application/other');
      assert.deepEqual(JSON.parse(filtered.body.toString()).manifests, []);

      // The upstream fails: the kept index, stale, byte for byte; each filter its own.
      f.fake.script('listReferrers', { kind: 'status', status: 503 });
      const stale = await f.cache.referrers(t, d, undefined);
      assert.equal(stale.cache, 'stale');
      assert.equal(stale.staleReason, 'upstream answered 503');
      assert.deepEqual(stale.body, fresh.body);
      assert.equal(stale.headers['content-type'], 'application/vnd.oci.image.index.v1+json');
      const staleFiltered = await f.cache.referrers(t, d, 'application/other');
      assert.deepEqual(staleFiltered.body, filtered.body);
      assert.equal(staleFiltered.headers['oci-filters-applied'], 'artifactType');
      // Never fetched for this filter: the upstream's failure stands.
      await assert.rejects(f.cache.referrers(t, d, 'application/example.sbom'), (err: unknown) => err instanceof UpstreamStatusError && err.status === 503);
      f.fake.clearFaults();

      // The upstream hangs: the kept index at the deadline; then the new one is kept.
      const sbom = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256('sbom'), size: 4, artifactType: 'application/example.sbom' };
      f.fake.addReferrer('lib/app', d, sbom);
      const release = f.hold('listReferrers');
      const { value: late, ms } = await timed(f.cache.referrers(t, d, undefined));
      assert.equal(late.cache, 'stale');
      assert.equal(late.staleReason, 'revalidation exceeded 200 ms');
      assert.deepEqual(JSON.parse(late.body.toString()).manifests, [sig]);
      assert.ok(ms < BOUND_MS, `answered after ${ms} ms`);
      release();
      await until('the new index to be kept', async () => {
        const r = await f.meta.getReferrers('fake.test', 'lib/app', d, undefined);
        return r?.supported === true && JSON.parse(r.body.toString()).manifests.length === 2;
      });

      // An upstream without the referrers API: the client's 404 (tag-schema fallback), kept, so
      // it is the answer while the upstream fails too.
      f.fake.referrersApi = false;
      const is404 = (err: unknown): boolean => err instanceof UpstreamStatusError && err.status === 404;
      await assert.rejects(f.cache.referrers(t, d, undefined), is404);
      f.fake.script('listReferrers', { kind: 'unavailable' });
      await assert.rejects(f.cache.referrers(t, d, undefined), is404);
      assert.equal(await staleAnswers(f, 'upstream_error'), 3);
    } finally {
      await f.close();
    }
  });
});
