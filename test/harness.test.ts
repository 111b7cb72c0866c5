/**
 * Proves the test harness on this machine: every upstream flavour starts, pushed images come
 * back byte-identical through real clients, and the access-log counter sees exactly what the
 * clients requested. If this file fails, no integration test built on the harness can be trusted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { startUpstreamRegistry, type Upstream } from './helpers/upstream-registry.js';
import { clearImageCache, makeImage, makeNextVersion, pushImage, RegistryClient, MT, type PushResult } from './helpers/images.js';
import {
  podmanPull,
  readDirLayout,
  skopeoCopy,
  skopeoDebugRequests,
  skopeoInspectRaw,
  startContainerd,
  startDockerd,
  writeHostsToml,
  type SkopeoOptions,
} from './helpers/clients.js';
import { tempDir } from './helpers/process.js';

/** What a skopeo dir: copy of a single-platform image must contain: exactly its config and layers. */
function expectedSingle(p: PushResult, index = 0): string[] {
  const m = p.manifests[index]!;
  return [m.configDigest, ...m.layers.map((l) => l.digest)].sort();
}

/**
 * Copies `ref` with skopeo into a dir: layout and checks the bytes against the push, and the
 * upstream's request counts against skopeo's own debug log of the requests it made.
 */
async function copyAndCheck(up: Upstream, repo: string, tag: string, pushed: PushResult, opts: SkopeoOptions): Promise<void> {
  up.resetLog();
  const r = await skopeoCopy(`${up.hostPort}/${repo}:${tag}`, 'dir', { ...opts, extraArgs: ['--debug', ...(opts.extraArgs ?? [])] });
  try {
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    const layout = await readDirLayout(r.path);
    const multi = pushed.mediaType === MT.OciIndex || pushed.mediaType === MT.DockerList;
    if (multi && opts.all) {
      assert.equal(layout.manifestDigest, pushed.manifestDigest);
      assert.deepEqual(layout.instanceManifests, pushed.manifests.map((m) => m.digest).sort());
      assert.deepEqual(layout.blobs.map((b) => b.digest), pushed.blobs.map((b) => b.digest).sort());
    } else {
      // Without --all skopeo picks this machine's platform, the first one (linux/amd64).
      assert.equal(layout.manifestDigest, pushed.manifests[0]!.digest);
      assert.deepEqual(layout.blobs.map((b) => b.digest), expectedSingle(pushed));
    }
    const sizes = new Map(pushed.blobs.map((b) => [b.digest, b.size]));
    for (const b of layout.blobs) assert.equal(b.size, sizes.get(b.digest));

    // skopeo's own account of what it asked for, against what the registry logged.
    const origin = up.url;
    const made = skopeoDebugRequests(r.stderr).filter((q) => q.url.startsWith(`${origin}/v2/`));
    const madeOf = (kind: 'blobs' | 'manifests', method: string): number => made.filter((q) => q.method === method && q.url.includes(`/${kind}/`)).length;
    const blobGets = up.count({ kind: 'blob', method: 'GET' });
    assert.equal(blobGets, madeOf('blobs', 'GET'));
    assert.equal(blobGets, layout.blobs.length, 'each blob fetched exactly once');
    assert.equal(up.count({ kind: 'manifest', method: 'GET' }), madeOf('manifests', 'GET'));
    assert.equal(up.count({ kind: 'manifest', method: 'HEAD' }), madeOf('manifests', 'HEAD'));
    assert.equal(up.count({ kind: 'blob', method: 'HEAD' }), madeOf('blobs', 'HEAD'));
    const manifestGets = multi ? (opts.all ? 1 + pushed.manifests.length : 2) : 1;
    assert.equal(up.count({ kind: 'manifest', method: 'GET' }), manifestGets);
  } finally {
    await r.cleanup();
  }
}

test('harness: test images are deterministic', async () => {
  const a = await makeImage({ format: 'oci', seed: 'determinism', layerSize: 1000 });
  clearImageCache();
  const b = await makeImage({ format: 'oci', seed: 'determinism', layerSize: 1000 });
  assert.notEqual(a, b);
  assert.equal(a.manifestDigest, b.manifestDigest);
  assert.deepEqual(a.blobs.map((x) => x.digest), b.blobs.map((x) => x.digest));
  // The uncompressed tars are built here, so their digests are fixed forever (gzip output
  // could in theory change with node's zlib, tars cannot).
  const cfg = JSON.parse(a.platforms[0]!.config.data.toString()) as { rootfs: { diff_ids: string[] } };
  assert.deepEqual(cfg.rootfs.diff_ids, [
    'sha256:dea682dc7111213422959e22169b4e7cd04ad5658b0e415c895a7b7ac01d0ecc',
    'sha256:5a2b197d32a8eb471083025d90b8a6ad532516f77d7ed35dbb44326c29626ee2',
  ]);
  // A second version shares the base layer and nothing else.
  const v2 = await makeNextVersion(a);
  assert.notEqual(v2.manifestDigest, a.manifestDigest);
  assert.equal(v2.platforms[0]!.layers[0]!.digest, a.platforms[0]!.layers[0]!.digest);
  assert.notEqual(v2.platforms[0]!.layers[1]!.digest, a.platforms[0]!.layers[1]!.digest);
  assert.notEqual(v2.platforms[0]!.config.digest, a.platforms[0]!.config.digest);
  // Multi-arch: two platforms, amd64 first.
  const idx = await makeImage({ format: 'docker-list' });
  assert.equal(idx.mediaType, MT.DockerList);
  assert.deepEqual(idx.platforms.map((p) => p.platform.architecture), ['amd64', 'arm64']);
  assert.ok(idx.platforms.every((p) => p.mediaType === MT.DockerManifest));
});

test('harness: plain-HTTP upstream with skopeo, podman, ctr and dockerd', async (t) => {
  const up = await startUpstreamRegistry();
  t.after(() => up.stop());
  assert.match(up.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  const pushed = new Map<string, PushResult>();
  for (const format of ['oci', 'docker', 'oci-index', 'docker-list'] as const) {
    const img = await makeImage({ format });
    const p = await pushImage(up, `test/${format}`, 'v1', img);
    assert.equal(p.manifestDigest, img.manifestDigest);
    // Idempotent: a second push uploads nothing and leaves the digest unchanged.
    up.resetLog();
    const again = await pushImage(up, `test/${format}`, 'v1', img);
    assert.equal(again.manifestDigest, p.manifestDigest);
    assert.equal(up.count({ kind: 'upload' }), 0);
    assert.equal(up.count({ kind: 'blob', method: 'HEAD', status: 200 }), img.blobs.length);
    pushed.set(format, p);
  }

  await t.test('skopeo copies each format with identical digests; counts match skopeo\'s requests', async () => {
    for (const [format, p] of pushed) {
      await copyAndCheck(up, `test/${format}`, 'v1', p, { tlsVerify: false });
      const raw = await skopeoInspectRaw(`${up.hostPort}/test/${format}:v1`, { tlsVerify: false });
      assert.equal(raw.digest, p.manifestDigest);
    }
    await copyAndCheck(up, 'test/oci-index', 'v1', pushed.get('oci-index')!, { tlsVerify: false, all: true });
    await copyAndCheck(up, 'test/docker-list', 'v1', pushed.get('docker-list')!, { tlsVerify: false, all: true });
  });

  await t.test('podman pulls from the plain-HTTP upstream', async () => {
    for (const format of ['oci', 'docker-list'] as const) {
      const p = pushed.get(format)!;
      const r = await podmanPull(`${up.hostPort}/test/${format}:v1`, { tlsVerify: false });
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.imageId);
      assert.equal(r.digest, p.manifestDigest);
    }
  });

  await t.test('ctr pulls directly and through a docker.io mirror hosts.toml (HEAD counted)', async () => {
    const ctd = await startContainerd();
    const hosts = await tempDir('pullthrough-hosts-');
    try {
      const p = pushed.get('oci-index')!;
      up.resetLog();
      const r = await ctd.pull(`${up.hostPort}/test/oci-index:v1`);
      assert.equal(r.code, 0, r.stderr);
      const imgs = await ctd.images();
      assert.equal(imgs.find((i) => i.ref === `${up.hostPort}/test/oci-index:v1`)?.digest, p.manifestDigest);
      // containerd resolves with one HEAD, then GETs the index and its platform's manifest by digest.
      assert.equal(up.count({ kind: 'manifest', method: 'HEAD' }), 1);
      assert.equal(up.count({ kind: 'manifest', method: 'GET' }), 2);
      assert.equal(up.count({ kind: 'blob', method: 'GET' }), expectedSingle(p).length);

      await writeHostsToml(hosts.path, 'docker.io', up.url);
      up.resetLog();
      const d = pushed.get('docker')!;
      const m = await ctd.pull('docker.io/test/docker:v1', { hostsDir: hosts.path });
      assert.equal(m.code, 0, m.stderr);
      assert.equal(up.count({ kind: 'manifest', method: 'HEAD', pathIncludes: '?ns=docker.io' }), 1);
      assert.equal(up.count({ kind: 'blob', method: 'GET', pathIncludes: '?ns=docker.io' }), expectedSingle(d).length);
      assert.ok((await ctd.contentDigests()).includes(d.manifestDigest));
    } finally {
      await ctd.stop();
      await hosts.cleanup();
    }
  });

  await t.test('dockerd pulls by name and through registry-mirrors', async () => {
    const p = pushed.get('docker-list')!;
    const dk = await startDockerd({ registryMirrors: [up.url], insecureRegistries: [up.hostPort] });
    try {
      const r = await dk.pull(`${up.hostPort}/test/docker-list:v1`);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await dk.repoDigests(`${up.hostPort}/test/docker-list:v1`), [`${up.hostPort}/test/docker-list@${p.manifestDigest}`]);
      up.resetLog();
      // docker.io/test/docker:v1 resolves through the mirror, which is this upstream.
      const m = await dk.pull('test/docker:v1');
      assert.equal(m.code, 0, m.stderr);
      assert.equal(up.count({ kind: 'manifest', pathIncludes: '/v2/test/docker/manifests/v1' }) >= 1, true);
      assert.equal(up.count({ kind: 'blob', method: 'GET' }), expectedSingle(pushed.get('docker')!).length);
    } finally {
      await dk.stop();
    }
  });

  await t.test('the access log has one line per request: HEADs, 404s, tags and non-API paths too', async () => {
    const c = new RegistryClient({ url: up.url });
    try {
      up.resetLog();
      const missing = 'sha256:' + '0'.repeat(64);
      assert.equal((await c.request('HEAD', '/v2/test/oci/manifests/nope')).status, 404);
      assert.equal((await c.request('GET', `/v2/test/oci/blobs/${missing}`)).status, 404);
      assert.equal((await c.request('HEAD', `/v2/test/oci/blobs/${pushed.get('oci')!.configDigest}`)).status, 200);
      assert.equal((await c.request('GET', '/v2/test/oci/tags/list')).status, 200);
      assert.equal((await c.request('GET', '/not-an-api-path')).status, 404);
      assert.equal(up.requests().length, 5);
      assert.equal(up.count({ kind: 'manifest', method: 'HEAD', status: 404 }), 1);
      assert.equal(up.count({ kind: 'blob', method: 'GET', status: 404 }), 1);
      assert.equal(up.count({ kind: 'blob', method: 'HEAD', status: 200 }), 1);
      assert.equal(up.count({ kind: 'tags', repo: 'test/oci' }), 1);
      assert.equal(up.count({ kind: 'other', pathIncludes: '/not-an-api-path' }), 1);
    } finally {
      await c.close();
    }
  });

  await t.test('restart and down/up keep port and storage', async () => {
    const p = pushed.get('oci')!;
    await up.down();
    const failed = await skopeoInspectRaw(`${up.hostPort}/test/oci:v1`, { tlsVerify: false });
    assert.notEqual(failed.code, 0);
    await up.up();
    assert.equal((await skopeoInspectRaw(`${up.hostPort}/test/oci:v1`, { tlsVerify: false })).digest, p.manifestDigest);
    await up.restart();
    up.resetLog();
    assert.equal((await skopeoInspectRaw(`${up.hostPort}/test/oci:v1`, { tlsVerify: false })).digest, p.manifestDigest);
    assert.equal(up.count({ kind: 'manifest', method: 'GET' }), 1);
  });
});

test('harness: TLS upstream with a test CA', async (t) => {
  const up = await startUpstreamRegistry({ tls: true });
  t.after(() => up.stop());
  assert.match(up.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  assert.ok(up.caFile && up.caDir);
  const p = await pushImage(up, 'tls/oci', 'v1', await makeImage({ format: 'oci', seed: 'tls' }));
  await copyAndCheck(up, 'tls/oci', 'v1', p, { certDir: up.caDir });
  const untrusted = await skopeoInspectRaw(`${up.hostPort}/tls/oci:v1`, {});
  assert.notEqual(untrusted.code, 0);
  assert.match(untrusted.stderr, /x509|certificate/);
});

test('harness: htpasswd upstream', async (t) => {
  const up = await startUpstreamRegistry({ auth: 'htpasswd', users: { alice: 'wonderland' } });
  t.after(() => up.stop());
  const p = await pushImage(up, 'basic/docker', 'v1', await makeImage({ format: 'docker', seed: 'basic' }));
  await copyAndCheck(up, 'basic/docker', 'v1', p, { tlsVerify: false, creds: 'alice:wonderland' });
  up.resetLog();
  const anon = await skopeoInspectRaw(`${up.hostPort}/basic/docker:v1`, { tlsVerify: false });
  assert.notEqual(anon.code, 0);
  const wrong = await skopeoInspectRaw(`${up.hostPort}/basic/docker:v1`, { tlsVerify: false, creds: 'alice:nope' });
  assert.notEqual(wrong.code, 0);
  // 401s are in the access log (distribution's JSON log leaves them out).
  assert.ok(up.count({ status: 401 }) >= 2);
  assert.equal(up.count({ kind: 'manifest', status: 200 }), 0);

});

test('harness: token upstream (Bearer flow, TLS) records who asked', async (t) => {
  const up = await startUpstreamRegistry({
    tls: true,
    auth: 'token',
    users: { alice: 'a-pass', bob: 'b-pass' },
    tokenAccess: (user, repo) => (repo.startsWith('private/') ? (user === 'alice' ? ['pull'] : []) : ['pull']),
    tokenExpiresIn: 60,
  });
  t.after(() => up.stop());
  const ts = up.tokenServer!;
  assert.ok(ts);
  const pub = await pushImage(up, 'public/app', 'v1', await makeImage({ format: 'oci-index', seed: 'tok-pub' }));
  const priv = await pushImage(up, 'private/app', 'v1', await makeImage({ format: 'docker', seed: 'tok-priv' }));

  await copyAndCheck(up, 'private/app', 'v1', priv, { certDir: up.caDir, creds: 'alice:a-pass' });
  const tokens = ts.requests();
  assert.ok(tokens.length >= 1);
  assert.ok(tokens.every((r) => r.user === 'alice' && r.authOk && r.method === 'GET'));
  assert.deepEqual(tokens[0]!.scopes, ['repository:private/app:pull']);
  assert.deepEqual(tokens[0]!.granted, [{ type: 'repository', name: 'private/app', actions: ['pull'] }]);
  assert.equal(up.count({ kind: 'token' }), tokens.length);

  ts.reset();
  await copyAndCheck(up, 'public/app', 'v1', pub, { certDir: up.caDir });
  assert.ok(ts.requests().length >= 1 && ts.requests().every((r) => r.user === undefined));

  ts.reset();
  const bob = await skopeoInspectRaw(`${up.hostPort}/private/app:v1`, { certDir: up.caDir, creds: 'bob:b-pass' });
  assert.notEqual(bob.code, 0);
  assert.ok(ts.requests().some((r) => r.user === 'bob' && r.authOk && r.granted.length === 0));
  const badPass = await skopeoInspectRaw(`${up.hostPort}/private/app:v1`, { certDir: up.caDir, creds: 'alice:wrong' });
  assert.notEqual(badPass.code, 0);
  assert.ok(ts.requests().some((r) => r.user === 'alice' && !r.authOk && r.status === 401));

  await t.test('rotateTokenKey makes the registry refuse earlier tokens', async () => {
    const old = ts.issue(undefined, [{ type: 'repository', name: 'public/app', actions: ['pull'] }]);
    const ca = await readFile(up.caFile!, 'utf8');
    const probe = async (): Promise<number> => {
      const c = new RegistryClient({ url: up.url, caPem: ca });
      try {
        const r = await c.request('GET', '/v2/public/app/manifests/v1', { auth: false, headers: { authorization: `Bearer ${old}`, accept: MT.OciIndex } });
        return r.status;
      } finally {
        await c.close();
      }
    };
    assert.equal(await probe(), 200);
    await up.rotateTokenKey();
    assert.equal(await probe(), 401);
    await copyAndCheck(up, 'public/app', 'v1', pub, { certDir: up.caDir });
  });

  await t.test('docker-registry in proxy mode pulls a private repo with its credentials', async () => {
    // distribution 2.8 proxy credentials only work against Bearer-token upstreams, not Basic.
    const proxy = await startUpstreamRegistry({ proxyRemoteUrl: up.url, proxyUsername: 'alice', proxyPassword: 'a-pass', proxyCaFile: up.caFile });
    try {
      up.resetLog();
      const r = await skopeoCopy(`${proxy.hostPort}/private/app:v1`, 'dir', { tlsVerify: false });
      try {
        assert.equal(r.code, 0, r.stderr);
        const layout = await readDirLayout(r.path);
        assert.equal(layout.manifestDigest, priv.manifestDigest);
        assert.deepEqual(layout.blobs.map((b) => b.digest), expectedSingle(priv));
      } finally {
        await r.cleanup();
      }
      assert.ok(up.count({ kind: 'manifest', status: 200 }) >= 1);
      // distribution's proxy fetches every blob twice (once to stream, once to store) and HEADs it too.
      assert.ok(up.count({ kind: 'blob', method: 'GET', status: 200 }) >= expectedSingle(priv).length);
      assert.ok(ts.requests().some((q) => q.user === 'alice' && q.granted.length === 1));
    } finally {
      await proxy.stop();
    }
  });

  await t.test('dockerd: denied anonymously, pulls after docker login (refresh_token grant)', async () => {
    const dk = await startDockerd({ caFile: up.caFile });
    try {
      const anon = await dk.pull(`${up.hostPort}/private/app:v1`);
      assert.notEqual(anon.code, 0);
      const login = await dk.login(up.hostPort, { username: 'alice', password: 'a-pass' });
      assert.equal(login.code, 0, login.stderr);
      ts.reset();
      const r = await dk.pull(`${up.hostPort}/private/app:v1`);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await dk.repoDigests(`${up.hostPort}/private/app:v1`), [`${up.hostPort}/private/app@${priv.manifestDigest}`]);
      // docker login asked for an offline token; pulls then trade the refresh token by POST.
      assert.ok(ts.requests().length >= 1);
      assert.ok(ts.requests().every((q) => q.method === 'POST' && q.grantType === 'refresh_token' && q.user === 'alice'));
    } finally {
      await dk.stop();
    }
  });

  await t.test('ctr uses the OAuth2 password grant (POST /token)', async () => {
    const ctd = await startContainerd();
    const hosts = await tempDir('pullthrough-hosts-');
    try {
      await writeHostsToml(hosts.path, up.hostPort, up.url, { ca: up.caFile, server: up.url });
      ts.reset();
      const r = await ctd.pull(`${up.hostPort}/private/app:v1`, { hostsDir: hosts.path, user: 'alice:a-pass' });
      assert.equal(r.code, 0, r.stderr);
      const reqs = ts.requests();
      assert.ok(reqs.length >= 1);
      assert.ok(reqs.every((q) => q.method === 'POST' && q.grantType === 'password' && q.user === 'alice'));
    } finally {
      await ctd.stop();
      await hosts.cleanup();
    }
  });
});

test('harness: a 50 MB layer round-trips', async (t) => {
  const up = await startUpstreamRegistry();
  t.after(() => up.stop());
  const img = await makeImage({ format: 'oci', seed: 'big', layers: 1, layerSize: 50 * 1024 * 1024 });
  const big = img.platforms[0]!.layers[0]!;
  assert.ok(big.size >= 50 * 1024 * 1024);
  const p = await pushImage(up, 'big/one', 'v1', img);
  await copyAndCheck(up, 'big/one', 'v1', p, { tlsVerify: false });
  assert.equal(createHash('sha256').update(big.data).digest('hex'), big.digest.slice(7));
  clearImageCache();
});
