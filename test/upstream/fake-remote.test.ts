/**
 * The scripted FakeRemote: first the same contract suite RegistryRemote passes against a real
 * registry, so tests built on the fake rest on the real client's behaviour; then its scripting
 * (faults per method, call counts, access rules), which the cache policy tests will use.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { UpstreamIntegrityError, UpstreamStatusError, UpstreamUnavailableError } from '../../src/upstream/errors.js';
import { FakeRemote } from '../helpers/fake-remote.js';
import { makeImage, sha256 } from '../helpers/images.js';
import { readAll, remoteSuite } from './remote.suite.js';

remoteSuite('FakeRemote', {
  referrersApi: true,
  pagedTags: false,
  async start() {
    const fake = new FakeRemote('fake.test');
    return {
      remote: fake,
      push: async (repo, tag, image) => fake.addImage(repo, tag, image),
      addReferrer: async (repo, subject, d) => fake.addReferrer(repo, subject, d),
      stop: async () => {},
    };
  },
});

describe('FakeRemote scripting', () => {
  const setup = async (): Promise<{ fake: FakeRemote; digest: string; data: Buffer }> => {
    const fake = new FakeRemote();
    const image = await makeImage({ format: 'oci', seed: 'fake-scripting', layerSize: [50_000] });
    fake.addImage('lib/app', 'v1', image);
    const layer = image.platforms[0]!.layers[0]!;
    return { fake, digest: layer.digest, data: layer.data };
  };

  it('unavailable for a number of calls, then answers; every call counted', async () => {
    const { fake, digest } = await setup();
    fake.script('statBlob', { kind: 'unavailable' }, { times: 2 });
    const repo = fake.repository('lib/app');
    await assert.rejects(repo.statBlob(digest), UpstreamUnavailableError);
    await assert.rejects(repo.statBlob(digest), UpstreamUnavailableError);
    assert.equal((await repo.statBlob(digest))?.digest, digest);
    assert.equal(fake.count('statBlob'), 3);
    assert.equal(fake.count('openBlob'), 0);
  });

  it('a status fault carries the upstream code, message and Retry-After; a 404 on a HEAD is null', async () => {
    const { fake, digest } = await setup();
    fake.script('getManifest', { kind: 'status', status: 429, code: 'TOOMANYREQUESTS', message: 'slow down', retryAfter: '30' });
    await assert.rejects(fake.repository('lib/app').getManifest('v1', []), (err: unknown) => {
      assert.ok(err instanceof UpstreamStatusError);
      assert.deepEqual([err.status, err.upstreamCode, err.upstreamMessage, err.retryAfter, err.transient], [429, 'TOOMANYREQUESTS', 'slow down', '30', true]);
      return true;
    });
    fake.script('statBlob', { kind: 'status', status: 404, code: 'BLOB_UNKNOWN' }, { ref: digest });
    assert.equal(await fake.repository('lib/app').statBlob(digest), null);
  });

  it('faults apply only to the repository and reference they name', async () => {
    const { fake, digest } = await setup();
    fake.addBlob('other/app', Buffer.from('x'));
    fake.script('statBlob', { kind: 'unavailable' }, { repo: 'lib/app', ref: digest });
    assert.equal(await fake.repository('other/app').statBlob(sha256(Buffer.from('x'))).then((s) => s?.size), 1);
    await assert.rejects(fake.repository('lib/app').statBlob(digest), UpstreamUnavailableError);
    fake.clearFaults();
    assert.ok(await fake.repository('lib/app').statBlob(digest));
  });

  it('hang: no answer until the call is aborted, then the abort reason', async () => {
    const { fake } = await setup();
    fake.script('headManifest', { kind: 'hang' });
    const ac = new AbortController();
    const call = fake.repository('lib/app').headManifest('v1', [], { signal: ac.signal });
    let settled = false;
    void call.then(
      () => (settled = true),
      () => (settled = true),
    );
    await new Promise((r) => setImmediate(r));
    assert.equal(settled, false);
    ac.abort(new Error('client went away'));
    await assert.rejects(call, /client went away/);
  });

  it('midstream: the body sends N bytes, then fails with UpstreamUnavailableError', async () => {
    const { fake, digest, data } = await setup();
    fake.script('openBlob', { kind: 'midstream', after: 1234 });
    const b = await fake.repository('lib/app').openBlob(digest);
    assert.equal(b.size, data.length);
    const got: Buffer[] = [];
    await assert.rejects(
      (async () => {
        for await (const c of b.body) got.push(c as Buffer);
      })(),
      UpstreamUnavailableError,
    );
    assert.deepEqual(Buffer.concat(got), data.subarray(0, 1234));
  });

  it('corrupt: blob bytes that do not hash to the digest; a manifest fetch that fails its check', async () => {
    const { fake, digest, data } = await setup();
    fake.script('openBlob', { kind: 'corrupt' }, { times: 1 });
    const bad = await readAll((await fake.repository('lib/app').openBlob(digest)).body);
    assert.equal(bad.length, data.length);
    assert.notEqual(sha256(bad), digest);
    assert.equal(sha256(await readAll((await fake.repository('lib/app').openBlob(digest)).body)), digest);
    fake.script('getManifest', { kind: 'corrupt' });
    await assert.rejects(fake.repository('lib/app').getManifest('v1', []), UpstreamIntegrityError);
  });

  it('access rules: 401 and 403 as status errors, by credentials; calls recorded with their account', async () => {
    const { fake, digest } = await setup();
    fake.access = (_repo, creds) => (creds === undefined ? 'allow' : creds === null ? 401 : creds.username === 'bob' ? 403 : 'allow');
    await assert.rejects(fake.repository('lib/app', null).statBlob(digest), (e: unknown) => e instanceof UpstreamStatusError && e.status === 401);
    await assert.rejects(fake.repository('lib/app', { username: 'bob', password: 'x' }).getManifest('v1', []), (e: unknown) => e instanceof UpstreamStatusError && e.status === 403);
    assert.ok(await fake.repository('lib/app', { username: 'alice', password: 'x' }).statBlob(digest));
    assert.deepEqual(
      fake.calls.map((c) => c.account === fake.repository('lib/app', null).account),
      [true, false, false],
    );
  });

  it('without a referrers API: { supported: false }', async () => {
    const { fake } = await setup();
    fake.referrersApi = false;
    assert.deepEqual(await fake.repository('lib/app').listReferrers(sha256(Buffer.from('m'))), { supported: false });
  });
});
