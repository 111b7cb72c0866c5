/**
 * The pull-through core against real parts: Debian's docker-registry as upstream (plain HTTP,
 * TLS with token auth, htpasswd Basic), skopeo as the client, request counts from the upstream's
 * own access log.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startUpstreamRegistry, type Upstream } from './helpers/upstream-registry.js';
import { makeImage, makeNextVersion, pushImage, type PushResult } from './helpers/images.js';
import { skopeoCopy, readDirLayout } from './helpers/clients.js';
import { startPullthrough, metricValue, type Pullthrough } from './helpers/pullthrough.js';
import { errorCode } from './helpers/http.js';

let hub: Upstream; // plays docker.io: plain HTTP, anonymous
let quay: Upstream; // plays quay.io: TLS + token auth, one private repository
let basic: Upstream; // a private registry with htpasswd Basic auth
let pt: Pullthrough;

const ALICE = { username: 'alice', password: 'alice-pw' };

before(async () => {
  [hub, quay, basic] = await Promise.all([
    startUpstreamRegistry(),
    startUpstreamRegistry({
      tls: true,
      auth: 'token',
      users: { alice: ALICE.password, bob: 'bob-pw' },
      tokenAccess: (user, repo) => (repo.startsWith('team/private') && user !== 'alice' ? [] : ['pull']),
    }),
    startUpstreamRegistry({ auth: 'htpasswd', users: { carol: 'carol-pw' } }),
  ]);
  pt = await startPullthrough(
    {
      registries: {
        'docker.io': { upstream: hub.url, aliases: ['registry-1.docker.io'] },
        'quay.io': { upstream: quay.url, ca: quay.caFile, username: ALICE.username, password: ALICE.password },
        'basic.test': { upstream: basic.url },
      },
    },
    // Credentials for basic.test arrive the rpardini way.
    { env: { AUTH_REGISTRIES: 'basic.test:carol:carol-pw' } },
  );
});

after(async () => {
  await pt?.cleanup();
  await Promise.all([hub?.stop(), quay?.stop(), basic?.stop()]);
});

/** Pulls `ref` through pullthrough's mirror door into a dir: layout and returns its digests. */
async function pull(ref: string, opts: { all?: boolean } = {}) {
  const r = await skopeoCopy(`${pt.host}/${ref}`, 'dir', { tlsVerify: false, all: opts.all });
  try {
    assert.equal(r.code, 0, `skopeo copy ${ref} failed:\n${r.stderr}`);
    return await readDirLayout(r.path);
  } finally {
    await r.cleanup();
  }
}

function assertSameContent(layout: Awaited<ReturnType<typeof pull>>, pushed: PushResult, platform = 0): void {
  const m = pushed.manifests[platform]!;
  const expected = [m.configDigest, ...m.layers.map((l) => l.digest)].sort();
  const got = layout.blobs.map((b) => b.digest).sort();
  assert.deepEqual(got, expected, 'blobs are the upstream’s, byte for byte (readDirLayout hashes the files)');
}

for (const format of ['oci', 'docker', 'oci-index', 'docker-list'] as const) {
  test(`${format}: pulled with the upstream's digests; a second pull makes no GET upstream`, async () => {
    const image = await makeImage({ format, layers: 2, layerSize: 200_000 });
    const pushed = await pushImage(hub, `library/${format}`, 'v1', image);
    hub.resetLog();
    const multi = format === 'oci-index' || format === 'docker-list';
    const first = await pull(`library/${format}:v1`, { all: multi });
    assert.equal(first.manifestDigest, pushed.manifestDigest);
    if (multi) assert.deepEqual(first.instanceManifests.sort(), pushed.manifests.map((m) => m.digest).sort());
    else assertSameContent(first, pushed);
    const blobGets = hub.count({ method: 'GET', kind: 'blob' });
    assert.equal(blobGets, pushed.blobs.length, 'each blob fetched once');

    hub.resetLog();
    const second = await pull(`library/${format}:v1`, { all: multi });
    assert.equal(second.manifestDigest, pushed.manifestDigest);
    assert.equal(hub.count({ method: 'GET', kind: 'blob' }), 0, 'zero blob GETs upstream');
    assert.equal(hub.count({ method: 'GET', kind: 'manifest' }), 0, 'zero manifest GETs upstream');
    assert.equal(hub.count({ method: 'HEAD', kind: 'manifest' }), 1, 'the tag is revalidated with one HEAD');
  });
}

test('a 50 MB layer streams through and verifies', async () => {
  const image = await makeImage({ format: 'docker', seed: 'big', layers: 1, layerSize: 50 * 1024 * 1024 });
  const pushed = await pushImage(hub, 'team/big', 'v1', image);
  const layout = await pull('team/big:v1');
  assertSameContent(layout, pushed);
  assert.ok(layout.blobs.some((b) => b.size > 50_000_000));
});

test('8 concurrent cold pulls of one image: exactly one upstream GET per blob', async () => {
  const image = await makeImage({ format: 'oci', seed: 'concurrent', layers: 4, layerSize: 3 * 1024 * 1024 });
  const pushed = await pushImage(hub, 'team/concurrent', 'v1', image);
  hub.resetLog();
  const layouts = await Promise.all(Array.from({ length: 8 }, () => pull('team/concurrent:v1')));
  for (const l of layouts) assertSameContent(l, pushed);
  for (const b of pushed.blobs) assert.equal(hub.count({ method: 'GET', kind: 'blob', pathIncludes: b.digest }), 1, `one GET for ${b.digest}`);
  assert.equal(hub.count({ method: 'GET', kind: 'manifest' }), 1, 'one manifest GET');
});

test('a tag moved upstream is seen on the next pull, fetching only what changed', async () => {
  const v1 = await makeImage({ format: 'oci', seed: 'moving', layers: 2 });
  const p1 = await pushImage(hub, 'team/moving', 'latest', v1);
  assert.equal((await pull('team/moving:latest')).manifestDigest, p1.manifestDigest);
  const p2 = await pushImage(hub, 'team/moving', 'latest', await makeNextVersion(v1));
  assert.notEqual(p2.manifestDigest, p1.manifestDigest);
  hub.resetLog();
  const layout = await pull('team/moving:latest');
  assert.equal(layout.manifestDigest, p2.manifestDigest);
  assertSameContent(layout, p2);
  const shared = p2.blobs.filter((b) => p1.blobs.some((o) => o.digest === b.digest)).length;
  assert.ok(shared >= 1, 'versions share the base layer');
  assert.equal(hub.count({ method: 'GET', kind: 'blob' }), p2.blobs.length - shared, 'only new blobs are fetched');
  assert.equal(hub.count({ method: 'GET', kind: 'manifest' }), 1);
});

test('token-auth upstream over TLS: central credentials pull a private repository; one token per scope', async () => {
  const pushed = await pushImage(quay, 'team/private', 'v1', await makeImage({ format: 'docker', seed: 'private' }));
  quay.resetLog();
  const layout = await pull('quay.io/team/private:v1');
  assert.equal(layout.manifestDigest, pushed.manifestDigest);
  assertSameContent(layout, pushed);
  const tokens = quay.tokenServer!.requests();
  assert.equal(tokens.length, 1, 'one token request for the whole pull (tokens are cached per scope)');
  assert.equal(tokens[0]!.user, 'alice');
  assert.deepEqual(tokens[0]!.granted, [{ type: 'repository', name: 'team/private', actions: ['pull'] }]);
});

test('token-auth upstream: without credentials the private repository is UNAUTHORIZED with the upstream message', async () => {
  const anon = await startPullthrough({ registries: { 'quay.io': { upstream: quay.url, ca: quay.caFile } } });
  try {
    await pushImage(quay, 'team/private-two', 'v1', await makeImage({ format: 'oci', seed: 'private-two' }));
    const r = await fetch(`${anon.url}/v2/quay.io/team/private-two/manifests/v1`);
    assert.equal(r.status, 401);
    assert.equal(r.headers.get('www-authenticate'), null, "the upstream's challenge is not passed on");
    assert.equal(errorCode(Buffer.from(await r.arrayBuffer())), 'UNAUTHORIZED');
    const pub = await pushImage(quay, 'team/public', 'v1', await makeImage({ format: 'oci', seed: 'public' }));
    const ok = await fetch(`${anon.url}/v2/quay.io/team/public/manifests/v1`);
    assert.equal(ok.status, 200, 'anonymous token flow for a public repository');
    assert.equal(ok.headers.get('docker-content-digest'), pub.manifestDigest);
  } finally {
    await anon.cleanup();
  }
});

test('Basic-auth upstream with credentials from AUTH_REGISTRIES', async () => {
  const pushed = await pushImage(basic, 'ops/tool', 'v1', await makeImage({ format: 'oci', seed: 'basic' }));
  const layout = await pull('basic.test/ops/tool:v1');
  assert.equal(layout.manifestDigest, pushed.manifestDigest);
});

test('upstream stopped: a cached tag still pulls (stale, logged); an uncached one fails with a clear error', async () => {
  const pushed = await pushImage(hub, 'team/offline', 'v1', await makeImage({ format: 'oci', seed: 'offline' }));
  await pull('team/offline:v1');
  await hub.down();
  try {
    const layout = await pull('team/offline:v1');
    assert.equal(layout.manifestDigest, pushed.manifestDigest);
    const stale = pt.requests().filter((l) => l.path === '/v2/team/offline/manifests/v1' && l.cache === 'stale');
    assert.ok(stale.length >= 1 && String(stale[0]!.stale).includes('unavailable'), 'logged as stale with the reason');
    const r = await fetch(`${pt.url}/v2/team/never-pulled/manifests/v1`);
    assert.equal(r.status, 503);
    const body = Buffer.from(await r.arrayBuffer()).toString();
    assert.equal(errorCode(Buffer.from(body)), 'UNAVAILABLE');
    assert.match(body, /upstream docker\.io unavailable/);
  } finally {
    await hub.up();
  }
});

test('content fetched for one repository is served under another only after the upstream confirms it', async () => {
  const image = await makeImage({ format: 'oci', seed: 'links', layers: 1, layerSize: 100_000 });
  const pushed = await pushImage(hub, 'team/owner', 'v1', image);
  await pull('team/owner:v1');
  const layer = pushed.manifests[0]!.layers[0]!.digest;
  hub.resetLog();
  // team/stranger does not have it upstream: no byte of it is served.
  const denied = await fetch(`${pt.url}/v2/team/stranger/blobs/${layer}`);
  assert.equal(denied.status, 404);
  assert.equal(errorCode(Buffer.from(await denied.arrayBuffer())), 'BLOB_UNKNOWN');
  const deniedManifest = await fetch(`${pt.url}/v2/team/stranger/manifests/${pushed.manifestDigest}`);
  assert.equal(deniedManifest.status, 404);
  // Another registry's name is another namespace too.
  const otherRegistry = await fetch(`${pt.url}/v2/basic.test/team/owner/blobs/${layer}`);
  assert.equal(otherRegistry.status, 404);
  // team/sharer has it upstream: confirmed with a HEAD, then served from the cache.
  await pushImage(hub, 'team/sharer', 'v1', image);
  hub.resetLog();
  const ok = await fetch(`${pt.url}/v2/team/sharer/blobs/${layer}`);
  assert.equal(ok.status, 200);
  assert.equal(Buffer.from(await ok.arrayBuffer()).length, pushed.manifests[0]!.layers[0]!.size);
  assert.equal(hub.count({ method: 'HEAD', kind: 'blob' }), 1);
  assert.equal(hub.count({ method: 'GET', kind: 'blob' }), 0);
  // Once confirmed, later reads need no upstream at all.
  hub.resetLog();
  await (await fetch(`${pt.url}/v2/team/sharer/blobs/${layer}`)).arrayBuffer();
  assert.equal(hub.count(), 0);
});

test('Accept: a client that cannot take an index gets what upstream gives it, without flipping the cached tag', async () => {
  const pushed = await pushImage(hub, 'team/multi', 'v1', await makeImage({ format: 'docker-list', seed: 'accept' }));
  const url = `${pt.url}/v2/team/multi/manifests/v1`;
  const all = 'application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json';
  const full = await fetch(url, { headers: { accept: all } });
  assert.equal(full.headers.get('docker-content-digest'), pushed.manifestDigest);
  const narrow = await fetch(url, { headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' } });
  assert.equal(narrow.status, 200);
  const upstreamNarrow = await fetch(`${hub.url}/v2/team/multi/manifests/v1`, { headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' } });
  assert.equal(narrow.headers.get('docker-content-digest'), upstreamNarrow.headers.get('docker-content-digest'), 'same answer as the upstream gives that Accept');
  assert.equal(narrow.headers.get('content-type'), upstreamNarrow.headers.get('content-type'));
  const again = await fetch(url, { headers: { accept: all } });
  assert.equal(again.headers.get('docker-content-digest'), pushed.manifestDigest, 'the index clients still get the index');
});

test('HEAD on a cached manifest and blob: headers, no body; tags/list passes through with pagination', async () => {
  const pushed = await pushImage(hub, 'team/heads', 'v1', await makeImage({ format: 'oci', seed: 'heads' }));
  await pushImage(hub, 'team/heads', 'v2', await makeImage({ format: 'oci', seed: 'heads' }));
  await pull('team/heads:v1');
  const h = await fetch(`${pt.url}/v2/team/heads/manifests/v1`, { method: 'HEAD' });
  assert.equal(h.status, 200);
  assert.equal(h.headers.get('docker-content-digest'), pushed.manifestDigest);
  assert.equal(h.headers.get('content-type'), pushed.mediaType);
  assert.ok(Number(h.headers.get('content-length')) > 0);
  const b = await fetch(`${pt.url}/v2/team/heads/blobs/${pushed.configDigest}`, { method: 'HEAD' });
  assert.equal(b.status, 200);
  assert.equal(b.headers.get('docker-content-digest'), pushed.configDigest);
  assert.equal((await b.arrayBuffer()).byteLength, 0);
  const page = await fetch(`${pt.url}/v2/team/heads/tags/list?n=1`);
  assert.deepEqual(await page.json(), { name: 'team/heads', tags: ['v1'] });
  assert.match(page.headers.get('link') ?? '', /^<\/v2\/team\/heads\/tags\/list\?.*last=v1.*>; rel="next"$/);
});

test('metrics and health endpoints report what happened', async () => {
  const text = await pt.metrics();
  assert.ok(metricValue(text, 'pullthrough_requests_total', { kind: 'blob', cache: 'hit' }) > 0);
  assert.ok(metricValue(text, 'pullthrough_requests_total', { kind: 'blob', cache: 'miss' }) > 0);
  assert.ok(metricValue(text, 'pullthrough_served_bytes_total', { source: 'cache' }) > 0);
  assert.ok(metricValue(text, 'pullthrough_served_bytes_total', { source: 'upstream' }) > 0);
  assert.ok(metricValue(text, 'pullthrough_upstream_requests_total', { registry: 'docker.io', method: 'HEAD', kind: 'manifest', status: '200' }) > 0);
  assert.ok(metricValue(text, 'pullthrough_upstream_requests_total', { registry: 'quay.io', kind: 'token', status: '200' }) > 0);
  assert.ok(metricValue(text, 'pullthrough_stale_served_total', { registry: 'docker.io' }) > 0);
  assert.equal((await fetch(`${pt.url}/healthz`)).status, 200);
  assert.equal((await fetch(`${pt.url}/readyz`)).status, 200);
  // Credentials configured for quay.io and basic.test never reach the log.
  const raw = pt.proc.output();
  for (const secret of [ALICE.password, 'carol-pw']) assert.ok(!raw.includes(secret), 'no credential in the log');
});
