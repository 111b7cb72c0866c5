/**
 * The RemoteRepository contract (src/upstream/remote.ts), as tests every implementation must
 * pass: RegistryRemote in front of a real docker-registry (registry-remote.test.ts) and the
 * scripted in-process fake (fake-remote.test.ts). Images come from test/helpers/images.ts and are
 * pushed the way each implementation is fed (the registry API, or FakeRemote.addImage); every
 * answer is checked against the bytes and digests pushed.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Credentials, RemoteRegistry, RemoteRepository } from '../../src/upstream/remote.js';
import { UpstreamIntegrityError, UpstreamStatusError, UpstreamTooLargeError } from '../../src/upstream/errors.js';
import { makeImage, MT, sha256, type TestImage } from '../helpers/images.js';

/** A started implementation with content in it. */
export interface RemoteFixture {
  readonly remote: RemoteRegistry;
  /** The credentials the suite's repositories are read with (undefined: the configured ones). */
  readonly credentials?: Credentials | null;
  /** Puts `image` into `repo` under `tag`, as the upstream would hold it after a push. */
  push(repo: string, tag: string, image: TestImage): Promise<void>;
  /** Makes `descriptor` a referrer of `subject` in `repo` (only with `referrersApi`). */
  addReferrer?(repo: string, subject: string, descriptor: Record<string, unknown>): Promise<void>;
  /** Tag list pages the upstream answered since the last reset (only with `pagedTags`). */
  tagPages?(): number;
  resetTagPages?(): void;
  /** Makes the upstream's next-page Links point at `origin` (undefined: back to its own). */
  linkTagPagesTo?(origin: string | undefined): void;
  stop(): Promise<void>;
}

export interface RemoteHarness {
  start(): Promise<RemoteFixture>;
  /** Whether the upstream has the OCI 1.1 referrers API (distribution 2.8 has not). */
  readonly referrersApi: boolean;
  /** Whether the upstream pages tag lists with Link headers (two tags a page by default). */
  readonly pagedTags: boolean;
}

export async function readAll(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Asserts `p` rejects with an UpstreamStatusError of `status` (and `code` when given). */
async function rejectsWithStatus(p: Promise<unknown>, status: number, code?: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof UpstreamStatusError, `expected UpstreamStatusError, got ${String(err)}`);
    assert.equal(err.status, status);
    if (code !== undefined) assert.equal(err.upstreamCode, code);
    return true;
  });
}

const TAGS = ['1.0', '1.1', '2.0', '2.1', 'edge', 'latest', 'stable'];
const MISSING = 'sha256:' + '0'.repeat(64);

export function remoteSuite(name: string, harness: RemoteHarness): void {
  describe(`RemoteRepository contract: ${name}`, () => {
    let fx: RemoteFixture;
    let index: TestImage;
    let list: TestImage;
    let big: TestImage;
    let repo: (n: string) => RemoteRepository;

    before(async () => {
      fx = await harness.start();
      index = await makeImage({ format: 'oci-index', seed: 'remote-suite-index' });
      list = await makeImage({ format: 'docker-list', seed: 'remote-suite-list' });
      // One layer big enough that ranges inside it mean something.
      big = await makeImage({ format: 'oci', seed: 'remote-suite-big', layerSize: [300_000, 1000] });
      await fx.push('suite/index', 'v1', index);
      await fx.push('suite/list', 'v1', list);
      await fx.push('suite/big', 'v1', big);
      for (const t of TAGS) await fx.push('suite/tags', t, big);
      repo = (n) => fx.remote.repository(n, fx.credentials);
    });
    after(() => fx?.stop());

    it('statBlob: the size of a blob the repository holds; null for one it does not', async () => {
      for (const b of big.blobs) assert.deepEqual(await repo('suite/big').statBlob(b.digest), { digest: b.digest, size: b.size });
      assert.equal(await repo('suite/big').statBlob(MISSING), null);
      // A blob of another repository is not this one's to confirm.
      assert.equal(await repo('suite/index').statBlob(big.blobs[0]!.digest), null);
    });

    it('openBlob: the whole blob, hashing to its digest', async () => {
      const layer = big.platforms[0]!.layers[0]!;
      const b = await repo('suite/big').openBlob(layer.digest);
      assert.equal(b.size, layer.size);
      assert.equal(b.range, null);
      const bytes = await readAll(b.body);
      assert.equal(sha256(bytes), layer.digest);
      assert.equal(bytes.length, layer.size);
    });

    it('openBlob with a range: exactly those bytes, with the range and the whole size', async () => {
      const layer = big.platforms[0]!.layers[0]!;
      for (const range of [{ start: 1000, end: 1999 }, { start: 0, end: 0 }, { start: layer.size - 10, end: layer.size - 1 }]) {
        const b = await repo('suite/big').openBlob(layer.digest, { range });
        assert.deepEqual(b.range, range);
        assert.equal(b.size, layer.size);
        assert.deepEqual(await readAll(b.body), layer.data.subarray(range.start, range.end + 1));
      }
    });

    it('openBlob of a blob the repository lacks: UpstreamStatusError 404 BLOB_UNKNOWN', async () => {
      await rejectsWithStatus(repo('suite/big').openBlob(MISSING), 404, 'BLOB_UNKNOWN');
    });

    it('headManifest by tag and by digest: digest, media type and size as pushed; null when unknown', async () => {
      assert.deepEqual(await repo('suite/index').headManifest('v1', []), { digest: index.manifestDigest, mediaType: MT.OciIndex, size: index.manifest.length });
      const child = index.platforms[1]!;
      assert.deepEqual(await repo('suite/index').headManifest(child.digest, []), { digest: child.digest, mediaType: MT.OciManifest, size: child.size });
      assert.equal(await repo('suite/index').headManifest('nope', []), null);
      assert.equal(await repo('suite/index').headManifest(MISSING, []), null);
    });

    it('getManifest by tag and by digest: the bytes pushed, their digest computed and announced', async () => {
      const m = await repo('suite/index').getManifest('v1', []);
      assert.deepEqual(m.body, index.manifest);
      assert.equal(m.digest, index.manifestDigest);
      assert.equal(m.claimedDigest, index.manifestDigest);
      assert.equal(m.mediaType, MT.OciIndex);
      const child = index.platforms[0]!;
      const c = await repo('suite/index').getManifest(child.digest, [MT.OciManifest]);
      assert.deepEqual(c.body, child.data);
      assert.equal(c.digest, child.digest);
      assert.equal(c.mediaType, MT.OciManifest);
    });

    it('getManifest of an unknown tag or digest: UpstreamStatusError 404 MANIFEST_UNKNOWN', async () => {
      await rejectsWithStatus(repo('suite/index').getManifest('nope', []), 404, 'MANIFEST_UNKNOWN');
      await rejectsWithStatus(repo('suite/index').getManifest(MISSING, []), 404, 'MANIFEST_UNKNOWN');
    });

    it('Accept is negotiated upstream: no OCI index for a client that takes none; a Docker list by tag becomes its linux/amd64 manifest', async () => {
      const single = [MT.OciManifest, MT.DockerManifest];
      assert.equal(await repo('suite/index').headManifest('v1', single), null);
      await rejectsWithStatus(repo('suite/index').getManifest('v1', single), 404, 'MANIFEST_UNKNOWN');
      const amd64 = list.platforms.find((p) => p.platform.architecture === 'amd64')!;
      const m = await repo('suite/list').getManifest('v1', single);
      assert.equal(m.digest, amd64.digest);
      assert.equal(m.mediaType, MT.DockerManifest);
      assert.deepEqual(m.body, amd64.data);
      const h = await repo('suite/list').headManifest('v1', single);
      assert.equal(h?.digest, amd64.digest);
      // Taking lists, the list itself.
      assert.equal((await repo('suite/list').getManifest('v1', [MT.DockerList, ...single])).digest, list.manifestDigest);
    });

    it('listTags: every tag of the repository, once', async () => {
      fx.resetTagPages?.();
      const tags = await repo('suite/tags').listTags();
      assert.deepEqual([...tags].sort(), [...TAGS].sort());
      if (harness.pagedTags) assert.equal(fx.tagPages!(), Math.ceil(TAGS.length / 2), 'every page of two was fetched');
    });

    it('listTags with a page size: the same whole list', async () => {
      fx.resetTagPages?.();
      assert.deepEqual((await repo('suite/tags').listTags({ pageSize: 3 })).sort(), [...TAGS].sort());
      if (harness.pagedTags) assert.equal(fx.tagPages!(), Math.ceil(TAGS.length / 3));
    });

    it('listTags past maxTags: UpstreamTooLargeError, not a list cut short', async () => {
      await assert.rejects(repo('suite/tags').listTags({ maxTags: TAGS.length - 1 }), (err: unknown) => err instanceof UpstreamTooLargeError && err.limit === TAGS.length - 1);
      assert.equal((await repo('suite/tags').listTags({ maxTags: TAGS.length })).length, TAGS.length);
    });

    it('listTags of a repository the upstream does not know: UpstreamStatusError 404', async () => {
      await rejectsWithStatus(repo('suite/none').listTags(), 404, 'NAME_UNKNOWN');
    });

    it('listTags: a next page on another origin is refused (UpstreamIntegrityError), not fetched', { skip: !harness.pagedTags }, async () => {
      fx.linkTagPagesTo!('http://127.0.0.2:9');
      try {
        fx.resetTagPages!();
        await assert.rejects(repo('suite/tags').listTags(), (err: unknown) => err instanceof UpstreamIntegrityError && /another origin/.test(err.message));
        assert.equal(fx.tagPages!(), 1);
      } finally {
        fx.linkTagPagesTo!(undefined);
      }
    });

    it('listReferrers: the referrers index, filtered by artifact type', { skip: !harness.referrersApi }, async () => {
      const subject = big.manifestDigest;
      const sig = { mediaType: MT.OciManifest, digest: 'sha256:' + createHash('sha256').update('sig').digest('hex'), size: 3, artifactType: 'application/vnd.example.sig' };
      const sbom = { mediaType: MT.OciManifest, digest: 'sha256:' + createHash('sha256').update('sbom').digest('hex'), size: 4, artifactType: 'application/vnd.example.sbom' };
      await fx.addReferrer!('suite/big', subject, sig);
      await fx.addReferrer!('suite/big', subject, sbom);
      const all = await repo('suite/big').listReferrers(subject);
      assert.ok(all.supported);
      assert.equal(all.mediaType, MT.OciIndex);
      const doc = JSON.parse(all.body.toString('utf8')) as { manifests: Array<{ digest: string }> };
      assert.deepEqual(doc.manifests.map((d) => d.digest).sort(), [sig.digest, sbom.digest].sort());
      const some = await repo('suite/big').listReferrers(subject, { artifactType: sbom.artifactType });
      assert.ok(some.supported);
      assert.deepEqual((JSON.parse(some.body.toString('utf8')) as { manifests: Array<{ digest: string }> }).manifests.map((d) => d.digest), [sbom.digest]);
      assert.equal(some.filtersApplied, 'artifactType');
    });

    it('listReferrers without a referrers API upstream: { supported: false }', { skip: harness.referrersApi }, async () => {
      assert.deepEqual(await repo('suite/big').listReferrers(big.manifestDigest), { supported: false });
    });

    it('an aborted signal rejects the call with an abort, not an upstream answer', async () => {
      const ac = new AbortController();
      ac.abort();
      await assert.rejects(repo('suite/index').getManifest('v1', [], { signal: ac.signal }), (err: unknown) => {
        assert.ok(!(err instanceof UpstreamStatusError));
        assert.equal((err as Error).name, 'AbortError');
        return true;
      });
    });

    it('account: one id per upstream account; anonymous and the configured default differ', () => {
      const anon = fx.remote.repository('suite/big', null);
      const def = fx.remote.repository('suite/big');
      const alice = fx.remote.repository('suite/big', { username: 'alice', password: 'a' });
      const alice2 = fx.remote.repository('suite/other', { username: 'alice', password: 'changed' });
      assert.equal(def.account, '');
      assert.equal(anon.account, 'anonymous');
      assert.equal(alice.account, alice2.account);
      assert.notEqual(alice.account, anon.account);
      assert.ok(!alice.account.includes('alice'), 'no user name in an id that may be logged');
      assert.equal(alice.registry, fx.remote.name);
      assert.equal(alice.name, 'suite/big');
    });
  });
}
