/**
 * The MetadataStore contract, as tests any implementation must pass. metadata-store.test.ts
 * registers it once per implementation, each against its real backend.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { MAX_REFERRERS_FILTERS, MAX_REFERRERS_RECORD_BYTES, type MetadataStore, type ReferrersRecord, type TagRecord } from '../../src/storage/metadata-store.js';

export interface MetadataStoreHarness {
  /**
   * A fresh, empty namespace (its own directory or key prefix). `open()` may be called again on
   * it: after close() to reopen, and, when `shared` is set, while another instance is open.
   */
  namespace(): Promise<{ open(): Promise<MetadataStore> }>;
  /** Whether several instances on one namespace share state (replicas); false for the file store. */
  shared: boolean;
  teardown?(): Promise<void>;
}

export const randomDigest = (): string => `sha256:${randomBytes(32).toString('hex')}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function metadataStoreSuite(name: string, h: MetadataStoreHarness): void {
  describe(`MetadataStore contract: ${name}`, () => {
    let ns: { open(): Promise<MetadataStore> };
    let store: MetadataStore;
    const open: MetadataStore[] = [];
    /** A store on a fresh namespace, closed after the suite. */
    const fresh = async (): Promise<{ ns: { open(): Promise<MetadataStore> }; store: MetadataStore }> => {
      const n = await h.namespace();
      const s = await n.open();
      open.push(s);
      return { ns: n, store: s };
    };

    before(async () => {
      ({ ns, store } = await fresh());
    });
    after(async () => {
      for (const s of open) await s.close().catch(() => {});
      await h.teardown?.();
    });

    it('answers absent for everything in an empty store', async () => {
      const { store: s } = await fresh();
      const d = randomDigest();
      assert.equal(await s.getTag('docker.io', 'library/none', 'latest'), null);
      assert.deepEqual(await s.listTags('docker.io', 'library/none'), []);
      assert.equal(await s.getManifest(d), null);
      assert.equal(await s.isLinked('docker.io', 'library/none', d), false);
      assert.equal(await s.getBlob(d), null);
      assert.deepEqual(await s.oldestBlobs(10), []);
      assert.equal(await s.totalBlobSize(), 0);
      await s.deleteManifest(d);
      await s.deleteBlob(d);
      await s.touchBlob(d, Date.now()); // touching an unknown blob does not create it
      assert.equal(await s.getBlob(d), null);
    });

    it('round-trips tags, overwrites them, lists them sorted, per registry and repository', async () => {
      const rec = (n: number): TagRecord => ({ digest: randomDigest(), mediaType: 'application/vnd.oci.image.index.v1+json', size: 1000 + n, checkedAt: 1_700_000_000_000 + n });
      const a = rec(1);
      await store.putTag('docker.io', 'library/alpine', 'latest', a);
      assert.deepEqual(await store.getTag('docker.io', 'library/alpine', 'latest'), a);
      const b = rec(2);
      await store.putTag('docker.io', 'library/alpine', 'latest', b);
      assert.deepEqual(await store.getTag('docker.io', 'library/alpine', 'latest'), b);
      for (const t of ['3.19', 'edge', '3.20.1', 'A-upper', '_under', 'z9']) await store.putTag('docker.io', 'library/alpine', t, rec(3));
      const want = ['3.19', '3.20.1', 'A-upper', '_under', 'edge', 'latest', 'z9'];
      assert.deepEqual(await store.listTags('docker.io', 'library/alpine'), want);
      // Same repository name, other registry; and a repository whose name extends this one.
      assert.deepEqual(await store.listTags('ghcr.io', 'library/alpine'), []);
      assert.equal(await store.getTag('ghcr.io', 'library/alpine', 'latest'), null);
      await store.putTag('registry.local:5000', 'library/alpine/sub', 'latest', a);
      assert.deepEqual(await store.listTags('registry.local:5000', 'library/alpine/sub'), ['latest']);
      assert.deepEqual(await store.listTags('docker.io', 'library/alpine'), want);
    });

    it('keeps one tag list per registry and repository, replaced whole, order and bytes kept', async () => {
      const { store: s } = await fresh();
      assert.equal(await s.getTagList('docker.io', 'library/list'), null);
      const first = { tags: ['1.0', 'A', '_x', 'latest', 'v1.2.3-rc.1'], fetchedAt: 1_700_000_000_123 };
      await s.putTagList('docker.io', 'library/list', first);
      assert.deepEqual(await s.getTagList('docker.io', 'library/list'), first);
      // Other registries and a repository whose name extends this one have none.
      assert.equal(await s.getTagList('ghcr.io', 'library/list'), null);
      assert.equal(await s.getTagList('docker.io', 'library/list/sub'), null);
      // A later list replaces the earlier one whole, even when shorter; an empty list is a list.
      const big = { tags: Array.from({ length: 20_000 }, (_, i) => `t${String(i).padStart(6, '0')}`), fetchedAt: 1_700_000_000_456 };
      await s.putTagList('docker.io', 'library/list', big);
      assert.deepEqual(await s.getTagList('docker.io', 'library/list'), big);
      const empty = { tags: [], fetchedAt: 1_700_000_000_789 };
      await s.putTagList('docker.io', 'library/list', empty);
      assert.deepEqual(await s.getTagList('docker.io', 'library/list'), empty);
      // Tag records and tag lists are separate records.
      assert.deepEqual(await s.listTags('docker.io', 'library/list'), []);
    });

    it('keeps manifests binary-exact and deletes them', async () => {
      const d = randomDigest();
      // Every byte value, invalid UTF-8, NULs, CR/LF: the store must not treat bodies as text.
      const body = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), Buffer.from([0xff, 0xfe, 0x00, 0xc3, 0x28, 0x0d, 0x0a]), randomBytes(1 << 20)]);
      await store.putManifest(d, { mediaType: 'application/vnd.docker.distribution.manifest.v2+json', body });
      const got = await store.getManifest(d);
      assert.ok(got);
      assert.equal(got.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
      assert.ok(Buffer.isBuffer(got.body));
      assert.ok(got.body.equals(body));
      const empty = randomDigest();
      await store.putManifest(empty, { mediaType: 'application/json', body: Buffer.alloc(0) });
      assert.equal((await store.getManifest(empty))?.body.length, 0);
      await store.deleteManifest(d);
      assert.equal(await store.getManifest(d), null);
    });

    it('keeps referrers records per registry, repository, digest and artifactType, bodies binary-exact', async () => {
      const { store: s } = await fresh();
      const d = randomDigest();
      const index = (n: number): Buffer =>
        Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ digest: randomDigest(), size: n, artifactType: 'application/vnd.example.sig' }] }));
      assert.equal(await s.getReferrers('docker.io', 'library/app', d, undefined), null);
      const all: ReferrersRecord = { supported: true, body: index(1), mediaType: 'application/vnd.oci.image.index.v1+json', fetchedAt: 1_700_000_000_001 };
      const sigs: ReferrersRecord = { supported: true, body: index(2), mediaType: 'application/vnd.oci.image.index.v1+json', filtersApplied: 'artifactType', fetchedAt: 1_700_000_000_002 };
      await s.putReferrers('docker.io', 'library/app', d, undefined, all);
      await s.putReferrers('docker.io', 'library/app', d, 'application/vnd.example.sig', sigs);
      assert.deepEqual(await s.getReferrers('docker.io', 'library/app', d, undefined), all);
      assert.deepEqual(await s.getReferrers('docker.io', 'library/app', d, 'application/vnd.example.sig'), sigs);
      // Another filter, digest, repository (also one extending this name) or registry has none.
      assert.equal(await s.getReferrers('docker.io', 'library/app', d, 'application/vnd.example.sbom'), null);
      assert.equal(await s.getReferrers('docker.io', 'library/app', randomDigest(), undefined), null);
      assert.equal(await s.getReferrers('docker.io', 'library/app/sub', d, undefined), null);
      assert.equal(await s.getReferrers('docker.io#acct', 'library/app', d, undefined), null);
      assert.equal(await s.getReferrers('ghcr.io', 'library/app', d, undefined), null);
      // Replaced whole; "no referrers API" is a record too; bodies are bytes, not text.
      const none: ReferrersRecord = { supported: false, fetchedAt: 1_700_000_000_003 };
      await s.putReferrers('docker.io', 'library/app', d, undefined, none);
      assert.deepEqual(await s.getReferrers('docker.io', 'library/app', d, undefined), none);
      const noneSaid: ReferrersRecord = { supported: false, upstreamCode: 'NAME_UNKNOWN', upstreamMessage: 'no such route', fetchedAt: 1_700_000_000_004 };
      await s.putReferrers('docker.io', 'library/app', d, undefined, noneSaid);
      assert.deepEqual(await s.getReferrers('docker.io', 'library/app', d, undefined), noneSaid);
      const bytes = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), randomBytes(64 << 10)]);
      await s.putReferrers('docker.io', 'library/app', d, 'x/y', { supported: true, body: bytes, mediaType: 'application/vnd.oci.image.index.v1+json', fetchedAt: 5 });
      const got = await s.getReferrers('docker.io', 'library/app', d, 'x/y');
      assert.ok(got?.supported && got.body.equals(bytes) && got.filtersApplied === undefined);
      // Tag records are separate: no referrers record shows up as a tag.
      assert.deepEqual(await s.listTags('docker.io', 'library/app'), []);
    });

    it('bounds referrers records: an oversized body is not kept, and at most MAX_REFERRERS_FILTERS per digest', async () => {
      const { store: s } = await fresh();
      const d = randomDigest();
      const rec = (at: number, size = 100): ReferrersRecord => ({ supported: true, body: randomBytes(size), mediaType: 'application/vnd.oci.image.index.v1+json', fetchedAt: at });
      await s.putReferrers('docker.io', 'library/big', d, undefined, rec(1));
      // Too large: not kept, and the older record for the same key is not served in its place.
      await s.putReferrers('docker.io', 'library/big', d, undefined, rec(2, MAX_REFERRERS_RECORD_BYTES + 1));
      assert.equal(await s.getReferrers('docker.io', 'library/big', d, undefined), null);
      // Exactly the bound is kept.
      const edge = rec(3, MAX_REFERRERS_RECORD_BYTES);
      await s.putReferrers('docker.io', 'library/big', d, undefined, edge);
      assert.deepEqual(await s.getReferrers('docker.io', 'library/big', d, undefined), edge);

      // Filters t0 … t(MAX): one more than the bound. Fetch times out of write order: t1 is the
      // oldest, so it goes when the bound is passed, whatever order they were written in.
      const e = randomDigest();
      const at = (i: number): number => (i === 1 ? 10 : 100 + i);
      for (let i = 0; i < MAX_REFERRERS_FILTERS; i++) await s.putReferrers('docker.io', 'library/big', e, `t${i}`, rec(at(i)));
      for (let i = 0; i < MAX_REFERRERS_FILTERS; i++) assert.ok(await s.getReferrers('docker.io', 'library/big', e, `t${i}`), `t${i} kept within the bound`);
      await s.putReferrers('docker.io', 'library/big', e, `t${MAX_REFERRERS_FILTERS}`, rec(at(MAX_REFERRERS_FILTERS)));
      assert.equal(await s.getReferrers('docker.io', 'library/big', e, 't1'), null, 'the record fetched longest ago went');
      for (let i = 0; i <= MAX_REFERRERS_FILTERS; i++) if (i !== 1) assert.ok(await s.getReferrers('docker.io', 'library/big', e, `t${i}`), `t${i} still kept`);
      // The record just written stays even when it is the oldest.
      await s.putReferrers('docker.io', 'library/big', e, 'old', rec(1));
      assert.ok(await s.getReferrers('docker.io', 'library/big', e, 'old'));
      assert.equal(await s.getReferrers('docker.io', 'library/big', e, 't0'), null, 't0 was the oldest of the others');
      // Another digest's records are untouched by all this.
      assert.deepEqual(await s.getReferrers('docker.io', 'library/big', d, undefined), edge);
    });

    it('lists repositories with tag records, deletes tags, lists manifests (admin API listings)', async () => {
      const { ns: n, store: s } = await fresh();
      assert.deepEqual(await s.listRepositories(), []);
      assert.deepEqual(await s.listManifests(), []);
      const rec: TagRecord = { digest: randomDigest(), mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 10, checkedAt: 1_700_000_000_000 };
      await s.putTag('docker.io', 'library/alpine', 'latest', rec);
      await s.putTag('docker.io', 'library/alpine', '3', rec);
      await s.putTag('docker.io#u0123456789ab', 'team/app', 'v1', rec);
      await s.putTag('registry.local:5000', 'a/b/c', 'v1', rec);
      const key = (r: { registry: string; repo: string }): string => `${r.registry} ${r.repo}`;
      assert.deepEqual((await s.listRepositories()).map(key).sort(), ['docker.io library/alpine', 'docker.io#u0123456789ab team/app', 'registry.local:5000 a/b/c']);
      await s.deleteTag('docker.io', 'library/alpine', 'latest');
      await s.deleteTag('docker.io', 'library/alpine', 'never-there');
      assert.equal(await s.getTag('docker.io', 'library/alpine', 'latest'), null);
      assert.deepEqual(await s.listTags('docker.io', 'library/alpine'), ['3']);
      const [m1, m2] = [randomDigest(), randomDigest()];
      await s.putManifest(m1, { mediaType: 'application/json', body: Buffer.from('{}') });
      await s.putManifest(m2, { mediaType: 'application/json', body: Buffer.from('[]') });
      assert.deepEqual((await s.listManifests()).sort(), [m1, m2].sort());
      await s.deleteManifest(m1);
      assert.deepEqual(await s.listManifests(), [m2]);
      // Kept across a reopen.
      await s.close();
      const again = await n.open();
      open.push(again);
      assert.deepEqual((await again.listRepositories()).map(key).sort(), ['docker.io library/alpine', 'docker.io#u0123456789ab team/app', 'registry.local:5000 a/b/c']);
      assert.deepEqual(await again.listManifests(), [m2]);
    });

    it('keeps pins by key, replaced whole, deleted once, across a reopen', async () => {
      const { ns: n, store: s } = await fresh();
      assert.equal((await s.listPins()).size, 0);
      const pin = { registry: 'docker.io', repo: 'library/alpine', reference: '3', platforms: ['linux/amd64'], pinnedAt: 1_700_000_000_000 };
      await s.putPin('docker.io/library/alpine:3', pin);
      await s.putPin('quay.io/org/app@sha256:x', { ...pin, registry: 'quay.io', repo: 'org/app', reference: 'sha256:x', platforms: null });
      await s.putPin('docker.io/library/alpine:3', { ...pin, platforms: null });
      const pins = await s.listPins();
      assert.equal(pins.size, 2);
      assert.deepEqual(pins.get('docker.io/library/alpine:3'), { ...pin, platforms: null });
      assert.equal(await s.deletePin('docker.io/library/alpine:3'), true);
      assert.equal(await s.deletePin('docker.io/library/alpine:3'), false);
      await s.close();
      const again = await n.open();
      open.push(again);
      assert.deepEqual([...(await again.listPins()).keys()], ['quay.io/org/app@sha256:x']);
    });

    it('links digests per registry and repository', async () => {
      const d = randomDigest();
      await store.link('docker.io', 'library/redis', d);
      await store.link('docker.io', 'library/redis', d); // idempotent
      assert.equal(await store.isLinked('docker.io', 'library/redis', d), true);
      assert.equal(await store.isLinked('docker.io', 'library/nginx', d), false);
      assert.equal(await store.isLinked('quay.io', 'library/redis', d), false);
      assert.equal(await store.isLinked('docker.io', 'library/redis', randomDigest()), false);
    });

    it('keeps blob records, touches (forward only), LRU order and the total size', async () => {
      const { store: s } = await fresh();
      const t0 = 1_700_000_000_000;
      const [a, b, c] = [randomDigest(), randomDigest(), randomDigest()];
      await s.putBlob(a, { size: 100, lastAccess: t0 + 10 });
      await s.putBlob(b, { size: 2000, lastAccess: t0 + 20 });
      await s.putBlob(c, { size: 30_000_000_000, lastAccess: t0 + 30 }); // > 2^32: sizes are not 32-bit
      assert.deepEqual(await s.getBlob(c), { size: 30_000_000_000, lastAccess: t0 + 30 });
      assert.equal(await s.totalBlobSize(), 100 + 2000 + 30_000_000_000);
      assert.deepEqual((await s.oldestBlobs(10)).map((r) => r.digest), [a, b, c]);
      assert.deepEqual(await s.oldestBlobs(2), [
        { digest: a, size: 100, lastAccess: t0 + 10 },
        { digest: b, size: 2000, lastAccess: t0 + 20 },
      ]);
      assert.deepEqual(await s.oldestBlobs(0), []);

      await s.touchBlob(a, t0 + 40);
      await s.touchBlob(b, t0 + 5); // older than what is recorded: no effect
      assert.equal((await s.getBlob(a))?.lastAccess, t0 + 40);
      assert.equal((await s.getBlob(b))?.lastAccess, t0 + 20);
      assert.deepEqual((await s.oldestBlobs(10)).map((r) => r.digest), [b, c, a]);

      // Re-putting replaces the size (the total follows) and the time.
      await s.putBlob(b, { size: 500, lastAccess: t0 + 50 });
      assert.equal(await s.totalBlobSize(), 100 + 500 + 30_000_000_000);
      assert.deepEqual((await s.oldestBlobs(10)).map((r) => r.digest), [c, a, b]);

      await s.deleteBlob(c);
      await s.deleteBlob(c);
      assert.equal(await s.getBlob(c), null);
      assert.equal(await s.totalBlobSize(), 600);
      await s.touchBlob(c, t0 + 99); // a touch after delete does not resurrect it
      assert.equal(await s.getBlob(c), null);
      assert.deepEqual((await s.oldestBlobs(10)).map((r) => r.digest), [a, b]);
    });

    it('keeps totalBlobSize equal to the sum of records under concurrent put/delete', async () => {
      const { ns: n, store: s1 } = await fresh();
      let s2 = s1;
      if (h.shared) {
        s2 = await n.open();
        open.push(s2);
      }
      const digests = Array.from({ length: 40 }, randomDigest);
      const ops: Array<Promise<void>> = [];
      for (let round = 0; round < 6; round++) {
        for (const [i, d] of digests.entries()) {
          const s = (i + round) % 2 ? s1 : s2;
          if ((i * 7 + round) % 3 === 0) ops.push(s.deleteBlob(d));
          else ops.push(s.putBlob(d, { size: 1 + ((i * 131 + round * 17) % 5000), lastAccess: 1_700_000_000_000 + i + round }));
          if (round % 2) ops.push(s.touchBlob(d, 1_800_000_000_000 + i));
        }
      }
      await Promise.all(ops);
      for (const s of new Set([s1, s2])) {
        const all = await s.oldestBlobs(Infinity);
        const sum = all.reduce((acc, r) => acc + r.size, 0);
        assert.equal(await s.totalBlobSize(), sum, 'total equals the sum of the records');
        for (const r of all) assert.deepEqual(await s.getBlob(r.digest), { size: r.size, lastAccess: r.lastAccess });
        // Sorted oldest first.
        for (let i = 1; i < all.length; i++) assert.ok(all[i - 1]!.lastAccess <= all[i]!.lastAccess);
      }
      for (const d of digests) await s1.deleteBlob(d);
      assert.equal(await s1.totalBlobSize(), 0);
      assert.deepEqual(await s2.oldestBlobs(100), []);
    });

    it('grants a lock to one holder at a time; extend and release work by token only', async () => {
      const l1 = await store.tryLock('evict', 5_000);
      assert.ok(l1);
      assert.equal(await store.tryLock('evict', 5_000), null, 'held');
      const other = await store.tryLock('fill:other', 5_000);
      assert.ok(other, 'names are independent');
      assert.equal(await l1.extend(5_000), true);
      await l1.release();
      const l2 = await store.tryLock('evict', 5_000);
      assert.ok(l2, 'free after release');
      await l1.release(); // a stale holder's release must not free l2's lease
      assert.equal(await store.tryLock('evict', 5_000), null);
      assert.equal(await l1.extend(5_000), false, 'a stale holder cannot extend');
      await l2.release();
      await other.release();
    });

    it('lets a lease expire, after which its old holder can neither extend nor release it', async () => {
      const l1 = await store.tryLock('expiring', 150);
      assert.ok(l1);
      // An extension keeps it past its first expiry.
      await sleep(80);
      assert.equal(await l1.extend(600), true);
      await sleep(120);
      assert.equal(await store.tryLock('expiring', 150), null, 'still held thanks to extend');
      await sleep(550);
      const l2 = await store.tryLock('expiring', 5_000);
      assert.ok(l2, 'expired, so free');
      assert.equal(await l1.extend(5_000), false);
      await l1.release();
      assert.equal(await store.tryLock('expiring', 5_000), null, 'l2 still holds it');
      await l2.release();
    });

    if (h.shared) {
      it('shares locks between instances (replicas)', async () => {
        const peer = await ns.open();
        open.push(peer);
        const l = await store.tryLock('shared', 5_000);
        assert.ok(l);
        assert.equal(await peer.tryLock('shared', 5_000), null);
        await l.release();
        const p = await peer.tryLock('shared', 5_000);
        assert.ok(p);
        await p.release();
      });
    }

    it('flushes batched touches on close(): a reopened store sees them', async () => {
      const n = await h.namespace();
      const s = await n.open();
      const t0 = 1_700_000_000_000;
      const [a, b] = [randomDigest(), randomDigest()];
      await s.putBlob(a, { size: 1, lastAccess: t0 });
      await s.putBlob(b, { size: 2, lastAccess: t0 + 1 });
      await s.touchBlob(a, t0 + 1000);
      await s.close();
      const again = await n.open();
      open.push(again);
      assert.deepEqual(await again.getBlob(a), { size: 1, lastAccess: t0 + 1000 });
      assert.deepEqual((await again.oldestBlobs(10)).map((r) => r.digest), [b, a]);
      assert.equal(await again.totalBlobSize(), 3);
    });
  });
}
