/**
 * The upstream client's manners, observed from the upstream's side of a real socket: redirects to
 * a CDN without the registry's credentials, a Via header, timeouts, status mapping, and rpardini's
 * manifest-cache tiers asking upstream nothing at all.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { startFaultUpstream, randomBlob } from './helpers/fault-upstream.js';
import { startPullthrough } from './helpers/pullthrough.js';
import { startUpstreamRegistry } from './helpers/upstream-registry.js';
import { makeImage, pushImage } from './helpers/images.js';
import { skopeoCopy } from './helpers/clients.js';
import { errorCode } from './helpers/http.js';
import { relay } from './helpers/socket-relay.js';
import { freePort } from './helpers/process.js';

const sha = (b: Buffer): string => 'sha256:' + createHash('sha256').update(b).digest('hex');
const OCI = 'application/vnd.oci.image.manifest.v1+json';
const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(Buffer.from('{}')), size: 2 }, layers: [] }));

test('blob redirects to another host are followed without the registry credentials; Via is sent', async () => {
  const registry = await startFaultUpstream('127.0.0.1');
  const cdn = await startFaultUpstream('127.0.0.2');
  const basic = 'Basic ' + Buffer.from('robot:s3cret').toString('base64');
  registry.requireAuthorization = basic;
  registry.redirectBlobsTo = cdn.url;
  const pt = await startPullthrough({ registries: { 'private.test': { upstream: registry.url, username: 'robot', password: 's3cret' } } });
  try {
    const data = randomBlob(300_000);
    const digest = registry.addBlob(data);
    cdn.addBlob(data);
    const r = await fetch(`${pt.url}/v2/private.test/team/app/blobs/${digest}`);
    assert.equal(r.status, 200);
    assert.equal(sha(Buffer.from(await r.arrayBuffer())), digest);
    const atRegistry = registry.seen.filter((s) => s.path.includes('/blobs/'));
    assert.ok(atRegistry.some((s) => s.headers.authorization === basic), 'the registry got the credentials');
    const atCdn = cdn.seen.filter((s) => s.path.startsWith('/cdn/'));
    assert.equal(atCdn.length, 1);
    assert.equal(atCdn[0]!.headers.authorization, undefined, 'the CDN did not');
    assert.match(String(atRegistry[0]!.headers.via), /^1\.1 pullthrough$/);
    assert.ok(!pt.proc.output().includes('s3cret'), 'credentials never logged');
  } finally {
    await pt.cleanup();
    await Promise.all([registry.close(), cdn.close()]);
  }
});

test('upstream 403 → DENIED with its message; a hung upstream → 503 after headersTimeout, stale when cached', async () => {
  const up = await startFaultUpstream();
  const pt = await startPullthrough({ registries: { 'docker.io': { upstream: up.url } }, upstream: { headersTimeout: '1s' } });
  try {
    up.addManifest('library/app', 'v1', manifest, OCI);
    assert.equal((await fetch(`${pt.url}/v2/app/manifests/v1`)).status, 200);
    up.manifestStatus = 403;
    const denied = await fetch(`${pt.url}/v2/app/manifests/v2`);
    assert.equal(denied.status, 403);
    const body = Buffer.from(await denied.arrayBuffer());
    assert.equal(errorCode(body), 'DENIED');
    assert.match(body.toString(), /fault upstream says DENIED/);
    const deniedCached = await fetch(`${pt.url}/v2/app/manifests/v1`);
    assert.equal(deniedCached.status, 403, 'a 403 is never papered over with a stale copy');
    up.manifestStatus = 0;
    const started = Date.now();
    const hung = await fetch(`${pt.url}/v2/app/manifests/v2`);
    assert.equal(hung.status, 503);
    assert.match(Buffer.from(await hung.arrayBuffer()).toString(), /timed out waiting for response headers/);
    assert.ok(Date.now() - started < 10_000, 'bounded by headersTimeout, not hanging');
    const stale = await fetch(`${pt.url}/v2/app/manifests/v1`);
    assert.equal(stale.status, 200);
    assert.match(stale.headers.get('warning') ?? '', /110/);
  } finally {
    up.manifestStatus = undefined;
    await pt.cleanup();
    await up.close();
  }
});

test("rpardini's ENABLE_MANIFEST_CACHE tiers: a warm pull within the tier's time asks upstream nothing", async () => {
  const hub = await startUpstreamRegistry();
  const pt = await startPullthrough({ registries: { 'docker.io': { upstream: hub.url } } }, { env: { ENABLE_MANIFEST_CACHE: 'true' } });
  try {
    const pushed = await pushImage(hub, 'library/app', '1.2.3', await makeImage({ format: 'oci', seed: 'tiers' }));
    const first = await skopeoCopy(`${pt.host}/library/app:1.2.3`, 'dir', { tlsVerify: false });
    assert.equal(first.code, 0, first.stderr);
    await first.cleanup();
    hub.resetLog();
    const second = await skopeoCopy(`${pt.host}/library/app:1.2.3`, 'dir', { tlsVerify: false });
    assert.equal(second.code, 0, second.stderr);
    await second.cleanup();
    assert.equal(hub.count(), 0, 'no request at all: the 60d secondary tier matches 1.2.3');
    const hit = pt.requests().filter((l) => l.kind === 'manifest').at(-1)!;
    assert.equal(hit.cache, 'hit');
    assert.ok(pushed.manifestDigest);
  } finally {
    await pt.cleanup();
    await hub.stop();
  }
});

test('tag revalidations (HEADs), manifest and blob GETs share a kept-alive upstream connection', async () => {
  const hub = await startUpstreamRegistry();
  const port = await freePort();
  // A relay in front of the registry counts the connections pullthrough opens to it.
  const gate = await relay(`tcp:127.0.0.1:${port}=tcp:127.0.0.1:${hub.port}`);
  const pt = await startPullthrough({ registries: { 'docker.io': { upstream: `http://127.0.0.1:${port}` } } });
  try {
    const image = await makeImage({ format: 'oci', seed: 'keep-alive' });
    const pushed = await pushImage(hub, 'library/app', 'v1', image);
    const blob = image.blobs[0]!;
    hub.resetLog();
    const accept = { accept: 'application/vnd.oci.image.manifest.v1+json' };
    for (let i = 0; i < 6; i++) {
      const r = await fetch(`${pt.url}/v2/app/manifests/v1`, { headers: accept });
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('docker-content-digest'), pushed.manifestDigest);
      await r.arrayBuffer();
    }
    const b = await fetch(`${pt.url}/v2/app/blobs/${blob.digest}`);
    assert.equal(sha(Buffer.from(await b.arrayBuffer())), blob.digest);
    // Every pull of the tag was revalidated upstream (the default for tags), with a HEAD.
    assert.equal(hub.count({ method: 'HEAD', kind: 'manifest' }), 6);
    assert.equal(hub.count({ method: 'GET', kind: 'manifest' }), 1);
    // undici closes its connection after each HEAD, so each one cost the next request a new
    // connection (7 here when HEADs went through it); a pull's requests now share one kept-alive
    // connection (a second only if the registry closed the first meanwhile).
    assert.ok(gate.accepted() <= 2, `${gate.accepted()} upstream connections for 8 requests`);
  } finally {
    await pt.cleanup();
    await gate.close();
    await hub.stop();
  }
});
