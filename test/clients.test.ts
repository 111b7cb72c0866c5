/**
 * Real clients through the mirror door: podman (registries.conf mirrors), containerd (hosts.toml
 * mirrors, one pullthrough for two registries by ?ns=), dockerd (registry-mirrors).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startUpstreamRegistry, type Upstream } from './helpers/upstream-registry.js';
import { makeImage, pushImage, type PushResult } from './helpers/images.js';
import { podmanPull, startContainerd, writeHostsToml, startDockerd } from './helpers/clients.js';
import { startPullthrough, type Pullthrough } from './helpers/pullthrough.js';
import { inTempDir, tempDir } from './helpers/process.js';

let hub: Upstream; // answers as docker.io
let quay: Upstream; // answers as quay.io
let pt: Pullthrough;
let hubImage: PushResult;
let quayImage: PushResult;

before(async () => {
  [hub, quay] = await Promise.all([startUpstreamRegistry(), startUpstreamRegistry()]);
  pt = await startPullthrough({
    registries: {
      'docker.io': { upstream: hub.url, aliases: ['registry-1.docker.io'] },
      'quay.io': { upstream: quay.url },
    },
  });
  hubImage = await pushImage(hub, 'library/app', 'v1', await makeImage({ format: 'oci-index', seed: 'clients-hub' }));
  quayImage = await pushImage(quay, 'team/tool', 'v1', await makeImage({ format: 'docker', seed: 'clients-quay' }));
});

after(async () => {
  await pt?.cleanup();
  await Promise.all([hub?.stop(), quay?.stop()]);
});

test('podman pulls docker.io and quay.io names through registries.conf mirrors', async () => {
  await inTempDir(async (dir) => {
    const conf = join(dir.path, 'registries.conf');
    await writeFile(
      conf,
      ['docker.io', 'quay.io']
        .map((r) => `[[registry]]\nlocation = "${r}"\n[[registry.mirror]]\nlocation = "${pt.host}/${r}"\ninsecure = true\n`)
        .join('\n'),
    );
    hub.resetLog();
    quay.resetLog();
    const a = await podmanPull('docker.io/library/app:v1', { registriesConf: conf });
    assert.equal(a.code, 0, a.stderr);
    assert.equal(a.digest, hubImage.manifestDigest);
    const b = await podmanPull('quay.io/team/tool:v1', { registriesConf: conf });
    assert.equal(b.code, 0, b.stderr);
    assert.equal(b.digest, quayImage.manifestDigest);
    assert.ok(hub.count({ kind: 'blob', method: 'GET' }) > 0, 'docker.io content came from the docker.io upstream');
    assert.ok(quay.count({ kind: 'blob', method: 'GET' }) > 0, 'quay.io content came from the quay.io upstream');
    const paths = pt.requests().map((l) => String(l.path));
    assert.ok(paths.some((p) => p.startsWith('/v2/quay.io/team/tool/')), 'podman named the registry in the path');
  });
});

test('containerd: docker.io and quay.io through one pullthrough to two upstreams by ?ns=', async () => {
  const ctr = await startContainerd();
  const dir = await tempDir();
  try {
    await writeHostsToml(dir.path, 'docker.io', pt.url);
    await writeHostsToml(dir.path, 'quay.io', pt.url);
    const a = await ctr.pull('docker.io/library/app:v1', { hostsDir: dir.path });
    assert.equal(a.code, 0, a.stderr);
    const b = await ctr.pull('quay.io/team/tool:v1', { hostsDir: dir.path });
    assert.equal(b.code, 0, b.stderr);
    const images = await ctr.images();
    assert.equal(images.find((i) => i.ref === 'docker.io/library/app:v1')?.digest, hubImage.manifestDigest);
    assert.equal(images.find((i) => i.ref === 'quay.io/team/tool:v1')?.digest, quayImage.manifestDigest);
    const reqs = pt.requests();
    assert.ok(reqs.some((l) => l.ns === 'docker.io' && l.registry === 'docker.io' && l.repo === 'library/app'));
    assert.ok(reqs.some((l) => l.ns === 'quay.io' && l.registry === 'quay.io' && l.repo === 'team/tool'));
    // A second pull of the same content by another node is served from the cache.
    const ctr2 = await startContainerd();
    try {
      hub.resetLog();
      const again = await ctr2.pull('docker.io/library/app:v1', { hostsDir: dir.path });
      assert.equal(again.code, 0, again.stderr);
      assert.equal(hub.count({ method: 'GET' }), 0, 'no GET upstream for a warm pull');
    } finally {
      await ctr2.stop();
    }
  } finally {
    await ctr.stop();
    await dir.cleanup();
  }
});

test("dockerd pulls a Docker Hub name through registry-mirrors", async () => {
  const docker = await startDockerd({ registryMirrors: [pt.url] });
  try {
    hub.resetLog();
    const r = await docker.pull('app:v1');
    assert.equal(r.code, 0, r.stderr);
    const digests = await docker.repoDigests('app:v1');
    assert.ok(digests.some((d) => d.endsWith(hubImage.manifestDigest)), `RepoDigests ${digests.join(', ')}`);
    assert.ok(pt.requests().some((l) => l.door === 'mirror' && l.repo === 'library/app' && l.kind === 'manifest'));
  } finally {
    await docker.stop();
  }
});
