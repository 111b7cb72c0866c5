/**
 * RegistryRemote against real registries: the contract suite in front of docker-registry 2.8.2
 * with Docker-Hub-like token auth (behind a pager, since 2.8 does not page tag lists itself),
 * then what only the real client shows: the upstream's requests and token fetches, private
 * repositories, an unreachable upstream, a registry that sends its whole tag list at once, and
 * the metrics kinds.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Metrics } from '../../src/observability/metrics.js';
import { silentLogger } from '../../src/observability/logger.js';
import { RegistryUpstream } from '../../src/upstream/registry-upstream.js';
import { RegistryRemote } from '../../src/upstream/registry-remote.js';
import { UpstreamIntegrityError, UpstreamStatusError, UpstreamUnavailableError } from '../../src/upstream/errors.js';
import { testConfig } from '../helpers/config.js';
import { freePort, tempDir } from '../helpers/process.js';
import { startUpstreamRegistry, type Upstream } from '../helpers/upstream-registry.js';
import { makeImage, pushImage } from '../helpers/images.js';
import { startTagPager, type TagPager } from '../helpers/tag-pager.js';
import { ALICE, startTokenRegistryFixture } from './token-registry-fixture.js';
import { randomBlob, startFaultUpstream } from '../helpers/fault-upstream.js';
import { readAll, remoteSuite } from './remote.suite.js';


/** A RegistryRemote (and its client, metrics, temp dir) for `upstreamUrl`. */
async function remoteFor(upstreamUrl: string, registry = 'remote.test'): Promise<{ remote: RegistryRemote; up: RegistryUpstream; metrics: Metrics; close(): Promise<void> }> {
  const dir = await tempDir('pullthrough-remote-');
  const config = testConfig(dir.path, { registries: { [registry]: { upstream: upstreamUrl } }, upstream: { connectTimeout: '2s', headersTimeout: '5s' } });
  const metrics = new Metrics();
  const up = new RegistryUpstream(config.registries[registry]!, config, metrics, silentLogger);
  return {
    remote: new RegistryRemote(up),
    up,
    metrics,
    close: async () => {
      await up.close();
      await dir.cleanup();
    },
  };
}

remoteSuite('RegistryRemote, docker-registry 2.8.2 with token auth', {
  referrersApi: false,
  pagedTags: true,
  start: () => startTokenRegistryFixture(remoteFor),
});

describe('RegistryRemote: what the upstream sees', () => {
  let registry: Upstream;
  let pager: TagPager;
  let r: Awaited<ReturnType<typeof remoteFor>>;
  before(async () => {
    registry = await startUpstreamRegistry({
      auth: 'token',
      users: { alice: ALICE.password },
      // private/* is alice's alone; the rest anyone may pull.
      tokenAccess: (user, repo) => (repo.startsWith('private/') && user !== 'alice' ? [] : user === undefined ? ['pull'] : ['pull', 'push']),
    });
    pager = await startTagPager(registry.url);
    r = await remoteFor(pager.url);
    await pushImage(registry, 'private/app', 'v1', await makeImage({ format: 'oci', seed: 'remote-private' }));
    await pushImage(registry, 'public/app', 'v1', await makeImage({ format: 'oci', seed: 'remote-public' }));
  });
  after(async () => {
    await r?.close();
    await pager?.close();
    await registry?.stop();
  });

  it('one upstream request per call: statBlob is a HEAD, getManifest one GET, no blob fetched to answer either', async () => {
    const image = await makeImage({ format: 'oci', seed: 'remote-public' });
    const repo = r.remote.repository('public/app', ALICE);
    await repo.statBlob(image.blobs[0]!.digest); // token fetched and cached
    registry.resetLog();
    assert.ok(await repo.statBlob(image.blobs[1]!.digest));
    assert.equal((await repo.getManifest('v1', [])).digest, image.manifestDigest);
    assert.equal(registry.count({ kind: 'blob', method: 'HEAD', status: 200 }), 1);
    assert.equal(registry.count({ kind: 'blob', method: 'GET' }), 0);
    assert.equal(registry.count({ kind: 'manifest', method: 'GET', status: 200 }), 1);
    assert.equal(registry.count({ kind: 'token' }), 0, 'the token for the scope was reused');
  });

  it("a private repository: the owner's credentials read it; anonymous gets UpstreamStatusError 401 (not null, not 404)", async () => {
    const image = await makeImage({ format: 'oci', seed: 'remote-private' });
    const digest = image.blobs[0]!.digest;
    const own = r.remote.repository('private/app', ALICE);
    assert.deepEqual(await own.statBlob(digest), { digest, size: image.blobs[0]!.size });
    const anon = r.remote.repository('private/app', null);
    await assert.rejects(anon.statBlob(digest), (err: unknown) => err instanceof UpstreamStatusError && err.status === 401);
    await assert.rejects(anon.headManifest('v1', []), (err: unknown) => err instanceof UpstreamStatusError && err.status === 401);
    await assert.rejects(anon.getManifest('v1', []), (err: unknown) => err instanceof UpstreamStatusError && err.status === 401 && err.upstreamCode === 'UNAUTHORIZED');
    const tokens = registry.tokenServer!.requests();
    assert.ok(tokens.some((t) => t.user === 'alice' && t.scopes.includes('repository:private/app:pull')), 'alice asked for a pull token');
    assert.ok(tokens.some((t) => t.user === undefined && t.granted.length === 0), 'anonymous got a token granting nothing');
  });

  it('metrics keep their kinds: blob, manifest, tags, referrers', async () => {
    const repo = r.remote.repository('public/app', ALICE);
    await repo.listTags();
    await repo.listReferrers((await makeImage({ format: 'oci', seed: 'remote-public' })).manifestDigest);
    const text = await r.metrics.registry.getSingleMetricAsString('pullthrough_upstream_requests_total');
    for (const kind of ['blob', 'manifest', 'tags', 'referrers']) assert.match(text, new RegExp(`kind="${kind}"`), kind);
  });

  it('a tag list Link given as an absolute URL of the same registry is followed', async () => {
    pager.linkStyle = 'absolute';
    try {
      for (const t of ['a', 'b', 'c', 'd', 'e']) await pushImage(registry, 'public/many', t, await makeImage({ format: 'oci', seed: 'remote-public' }));
      pager.pages.length = 0;
      assert.deepEqual((await r.remote.repository('public/many').listTags()).sort(), ['a', 'b', 'c', 'd', 'e']);
      assert.equal(pager.pages.length, 3);
    } finally {
      pager.linkStyle = 'path';
    }
  });

  it('straight to docker-registry (no paging): the whole list from one answer', async () => {
    const direct = await remoteFor(registry.url);
    try {
      registry.resetLog();
      assert.deepEqual((await direct.remote.repository('public/many').listTags({ pageSize: 2 })).sort(), ['a', 'b', 'c', 'd', 'e']);
      assert.equal(registry.count({ kind: 'tags', method: 'GET', status: 200 }), 1);
    } finally {
      await direct.close();
    }
  });
});

it('an upstream nobody listens on: UpstreamUnavailableError from every call', async () => {
  const r = await remoteFor(`http://127.0.0.1:${await freePort()}`);
  try {
    const repo = r.remote.repository('library/app');
    const digest = 'sha256:' + 'a'.repeat(64);
    const calls = {
      statBlob: () => repo.statBlob(digest),
      openBlob: () => repo.openBlob(digest),
      headManifest: () => repo.headManifest('v1', []),
      getManifest: () => repo.getManifest('v1', []),
      listTags: () => repo.listTags(),
      listReferrers: () => repo.listReferrers(digest),
    };
    for (const [name, call] of Object.entries(calls)) {
      await assert.rejects(call(), (err: unknown) => {
        assert.ok(err instanceof UpstreamUnavailableError, `${name}: ${String(err)}`);
        assert.match(err.message, /ECONNREFUSED/, name);
        return true;
      });
    }
  } finally {
    await r.close();
  }
});

describe('RegistryRemote: blob answers docker-registry does not give (fault upstream on a socket)', () => {
  it('an upstream (or CDN) that ignores Range and sends the whole blob: the body still holds exactly the range', async () => {
    const registry = await startFaultUpstream('127.0.0.1');
    const cdn = await startFaultUpstream('127.0.0.2');
    const r = await remoteFor(registry.url);
    try {
      const data = randomBlob(200_000);
      const digest = registry.addBlob(data);
      cdn.addBlob(data);
      for (const redirect of [undefined, cdn.url]) {
        registry.redirectBlobsTo = redirect;
        const range = { start: 70_000, end: 70_099 };
        const b = await r.remote.repository('team/app').openBlob(digest, { range });
        assert.deepEqual(b.range, range);
        assert.equal(b.size, data.length);
        assert.deepEqual(await readAll(b.body), data.subarray(70_000, 70_100));
      }
      assert.equal(cdn.count('GET /cdn/'), 1, 'the redirect was followed');
    } finally {
      await r.close();
      await Promise.all([registry.close(), cdn.close()]);
    }
  });

  it('a blob body broken off midway: the body fails, after the bytes that came', async () => {
    const registry = await startFaultUpstream();
    const r = await remoteFor(registry.url);
    try {
      const data = randomBlob(300_000);
      const digest = registry.addBlob(data, { kind: 'truncate', after: 100_000 });
      const b = await r.remote.repository('team/app').openBlob(digest);
      assert.equal(b.size, data.length);
      let got = 0;
      await assert.rejects(
        (async () => {
          for await (const c of b.body) got += (c as Buffer).length;
        })(),
      );
      assert.ok(got <= 100_000, `${got} bytes before the break`);
    } finally {
      await r.close();
      await registry.close();
    }
  });

  it('a manifest fetched by digest whose bytes hash to another: UpstreamIntegrityError', async () => {
    const registry = await startFaultUpstream();
    const r = await remoteFor(registry.url);
    try {
      const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: {}, layers: [] }));
      const digest = registry.addManifest('team/app', 'v1', body, 'application/vnd.oci.image.manifest.v1+json');
      assert.equal((await r.remote.repository('team/app').getManifest('v1', [])).digest, digest);
      // The same bytes served for another digest: what a tampering mirror or a broken upstream sends.
      const other = 'sha256:' + 'b'.repeat(64);
      registry.addManifest('team/app', other, body, 'application/vnd.oci.image.manifest.v1+json');
      await assert.rejects(r.remote.repository('team/app').getManifest(other, []), (err: unknown) => err instanceof UpstreamIntegrityError && err.message.includes(`hashes to ${digest}`));
    } finally {
      await r.close();
      await registry.close();
    }
  });
});
