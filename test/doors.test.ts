/**
 * The TLS (DNS-hijack) and CONNECT (HTTPS_PROXY) doors end to end: real clients keep their image
 * names (`quay.io/test/app`, `docker.io/library/app`, a registry name that does not resolve at
 * all) and reach local upstreams through pullthrough. Pushes go through the TLS door to the
 * upstream with the client's own credentials.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startUpstreamRegistry, type Upstream } from './helpers/upstream-registry.js';
import { makeImage, pushImage, RegistryClient, type PushResult } from './helpers/images.js';
import { skopeoCopy, readDirLayout, podmanPull, startContainerd, startDockerd } from './helpers/clients.js';
import { startPullthrough, type Pullthrough } from './helpers/pullthrough.js';
import { hijack, randomLoopback, type Hijack } from './helpers/hijack.js';
import { rawBytes } from './helpers/http.js';

let hub: Upstream; // docker.io: plain HTTP
let quay: Upstream; // quay.io: TLS with its own CA, token auth
let pt: Pullthrough;
let trusted: Hijack; // names → pullthrough, pullthrough's CA in the bundle
let untrusted: Hijack; // names → pullthrough, CA not trusted
let ptCa: string;
let hubImage: PushResult;
let quayImage: PushResult;
const ALICE = { username: 'alice', password: 'alice-pw' };
const INTERNAL = 'registry.test.internal:5443'; // resolves nowhere: reachable only via CONNECT

before(async () => {
  [hub, quay] = await Promise.all([startUpstreamRegistry(), startUpstreamRegistry({ tls: true, auth: 'token', users: { alice: ALICE.password } })]);
  const ip = randomLoopback();
  pt = await startPullthrough({
    listen: { mirror: '127.0.0.1:0', tls: `${ip}:443`, proxy: '127.0.0.1:0' },
    registries: {
      'docker.io': { upstream: hub.url, aliases: ['registry-1.docker.io', 'index.docker.io'] },
      'quay.io': { upstream: quay.url, ca: quay.caFile },
      [INTERNAL]: { upstream: hub.url },
    },
  });
  ptCa = await readFile(join(pt.dataDir, 'ca', 'ca.crt'), 'utf8');
  const names = { 'quay.io': ip, 'registry-1.docker.io': ip, 'index.docker.io': ip, 'docker.io': ip };
  const quayCa = await readFile(quay.caFile!, 'utf8');
  // The upstream's CA is trusted too: a pushing client talks to quay's token service itself.
  [trusted, untrusted] = await Promise.all([hijack(names, [ptCa, quayCa]), hijack(names, [quayCa])]);
  hubImage = await pushImage(hub, 'library/app', 'v1', await makeImage({ format: 'oci-index', seed: 'doors-hub' }));
  quayImage = await pushImage(quay, 'test/app', 'v1', await makeImage({ format: 'docker', seed: 'doors-quay' }));
});

after(async () => {
  await pt?.cleanup();
  await Promise.all([hub?.stop(), quay?.stop(), trusted?.cleanup(), untrusted?.cleanup()]);
});

test('/ca.crt on the mirror and proxy ports is the CA the TLS door signs with', async () => {
  assert.equal(await (await fetch(`${pt.url}/ca.crt`)).text(), ptCa);
  assert.equal(await (await fetch(`http://127.0.0.1:${pt.ports.proxy}/ca.crt`)).text(), ptCa);
});

test('TLS door: skopeo pulls quay.io and docker.io names unchanged, verifying the certificate', async () => {
  quay.resetLog();
  for (const [ref, pushed, upstream] of [
    ['quay.io/test/app:v1', quayImage, quay],
    ['docker.io/library/app:v1', hubImage, hub],
  ] as const) {
    const r = await skopeoCopy(`docker://${ref}`, 'dir', { env: trusted.env, all: true });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await readDirLayout(r.path)).manifestDigest, pushed.manifestDigest);
    await r.cleanup();
    assert.ok(upstream.count({ kind: 'manifest' }) > 0, `${ref} came from its own upstream`);
  }
  assert.ok(pt.requests().some((l) => l.door === 'tls' && l.registry === 'quay.io' && l.repo === 'test/app'));
  // quay's upstream wants tokens: the client was challenged and got its token through the relay.
  assert.ok(pt.requests().some((l) => l.door === 'tls' && l.path === '/v2/_pullthrough/token' && l.status === 200));
});

test('TLS door: dockerd pulls quay.io (token flow via the relay) and docker.io (certificate verified: Docker Hub names always are)', async () => {
  const docker = await startDockerd({ env: trusted.env });
  try {
    for (const [ref, pushed] of [
      ['quay.io/test/app:v1', quayImage],
      ['docker.io/library/app:v1', hubImage],
    ] as const) {
      const r = await docker.pull(ref);
      assert.equal(r.code, 0, r.stderr);
      assert.ok((await docker.repoDigests(ref)).some((d) => d.endsWith(pushed.manifestDigest)), ref);
    }
  } finally {
    await docker.stop();
  }
});

test('TLS door: without pullthrough’s CA in the trust store the pull fails on the certificate', async () => {
  const r = await skopeoCopy('docker://quay.io/test/app:v1', 'dir', { env: untrusted.env });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /x509|certificate signed by unknown authority/);
  await r.cleanup();
});

test('TLS door: podman pulls by unchanged names', async () => {
  for (const [ref, pushed] of [
    ['quay.io/test/app:v1', quayImage],
    ['docker.io/library/app:v1', hubImage],
  ] as const) {
    const r = await podmanPull(ref, { env: trusted.env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.digest, pushed.manifestDigest);
  }
});

test('TLS door: containerd (ctr, no hosts.toml) pulls by unchanged names', async () => {
  const ctr = await startContainerd();
  try {
    for (const ref of ['quay.io/test/app:v1', 'docker.io/library/app:v1']) {
      const r = await ctr.pull(ref, { env: trusted.env });
      assert.equal(r.code, 0, r.stderr);
    }
    const images = await ctr.images();
    assert.equal(images.find((i) => i.ref === 'quay.io/test/app:v1')?.digest, quayImage.manifestDigest);
    assert.equal(images.find((i) => i.ref === 'docker.io/library/app:v1')?.digest, hubImage.manifestDigest);
  } finally {
    await ctr.stop();
  }
});

test('CONNECT door: skopeo, podman and ctr pull a registry name that resolves nowhere', async () => {
  const proxy = { HTTPS_PROXY: `http://127.0.0.1:${pt.ports.proxy}`, SSL_CERT_FILE: trusted.bundleFile };
  const ref = `${INTERNAL}/library/app:v1`;
  const s = await skopeoCopy(`docker://${ref}`, 'dir', { env: proxy, all: true });
  assert.equal(s.code, 0, s.stderr);
  assert.equal((await readDirLayout(s.path)).manifestDigest, hubImage.manifestDigest);
  await s.cleanup();
  const p = await podmanPull(ref, { env: proxy });
  assert.equal(p.code, 0, p.stderr);
  assert.equal(p.digest, hubImage.manifestDigest);
  const ctr = await startContainerd();
  try {
    const c = await ctr.pull(ref, { env: proxy });
    assert.equal(c.code, 0, c.stderr);
  } finally {
    await ctr.stop();
  }
  assert.ok(pt.requests().some((l) => l.door === 'tls' && l.registry === INTERNAL), 'served in-process by the same app');
});

test('CONNECT door: an unconfigured host is refused with 403; malformed requests get 400', async () => {
  assert.match(await rawBytes(pt.ports.proxy!, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n'), /^HTTP\/1\.1 403/);
  assert.match(await rawBytes(pt.ports.proxy!, 'CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n'), /^HTTP\/1\.1 403/);
  assert.match(await rawBytes(pt.ports.proxy!, 'CONNECT :::: HTTP/1.1\r\n\r\n'), /^HTTP\/1\.1 400/);
  assert.equal((await fetch(`http://127.0.0.1:${pt.ports.proxy}/healthz`)).status, 200, 'still serving');
});

test('CONNECT door: dockerd pulls through HTTPS_PROXY', async () => {
  const docker = await startDockerd({ httpsProxy: `http://127.0.0.1:${pt.ports.proxy}`, caFile: trusted.bundleFile });
  try {
    const r = await docker.pull(`${INTERNAL}/library/app:v1`);
    assert.equal(r.code, 0, r.stderr);
    assert.ok((await docker.repoDigests(`${INTERNAL}/library/app:v1`)).some((d) => d.endsWith(hubImage.manifestDigest)));
  } finally {
    await docker.stop();
  }
});

test('push through the TLS door lands in the upstream (client’s own credentials), and pulls back through the mirror', async () => {
  const src = await skopeoCopy(`${pt.host}/library/app:v1`, 'dir', { tlsVerify: false, arch: 'amd64', os: 'linux' });
  assert.equal(src.code, 0, src.stderr);
  const pulled = await readDirLayout(src.path);
  const r = await skopeoCopy(`dir:${src.path}`, 'docker://quay.io/test/pushed:v1', { env: trusted.env, extraArgs: ['--dest-creds', `${ALICE.username}:${ALICE.password}`] });
  await src.cleanup();
  assert.equal(r.code, 0, r.stderr);
  const direct = await new RegistryClient({ url: quay.url, caPem: await readFile(quay.caFile!, 'utf8') }, ALICE).request('HEAD', '/v2/test/pushed/manifests/v1', {
    scope: 'repository:test/pushed:pull',
    headers: { accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' },
  });
  assert.equal(direct.status, 200, 'the upstream has the pushed manifest');
  assert.ok(pt.requests().some((l) => l.door === 'tls' && l.kind === 'push' && l.method === 'PUT'));
  const back = await skopeoCopy(`${pt.host}/quay.io/test/pushed:v1`, 'dir', { tlsVerify: false });
  assert.equal(back.code, 0, back.stderr);
  assert.deepEqual((await readDirLayout(back.path)).blobs.map((b) => b.digest).sort(), pulled.blobs.map((b) => b.digest).sort());
  await back.cleanup();
  assert.ok(!pt.proc.output().includes(ALICE.password), 'the client’s password never reaches the log');
});
