/**
 * Private content stays private: a private repository fetched with central credentials is served
 * only to clients the rules allow; by tag, by digest under its own name, under a public name, under
 * another registry's name or without rights, no byte of it is served (upstream request counts,
 * served bytes). Upstream credentials by namespace (the token server records who asked for which
 * scope), and a confirmation made with one upstream account never vouches for another.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startUpstreamRegistry, type Upstream } from '../helpers/upstream-registry.js';
import { makeImage, pushImage, type PushResult } from '../helpers/images.js';
import { readDirLayout, skopeoCopy } from '../helpers/clients.js';
import { startPullthrough, metricValue, type Pullthrough } from '../helpers/pullthrough.js';
import { run, tempDir } from '../helpers/process.js';

const ALICE = { username: 'alice', password: 'alice-pw-5f1e' };
const BOB = { username: 'bob', password: 'bob-pw-0a9c' };
// Upstream accounts on "quay.io": robot (registry-wide, sees team/private), acct-a (ns-a/*), acct-b (ns-b/**).
const UP = { robot: 'robot-pw-77', 'acct-a': 'a-pw-11', 'acct-b': 'b-pw-22' };

let quay: Upstream;
let hub: Upstream;
let dir: { path: string; cleanup: () => Promise<void> };
let pt: Pullthrough;
/** The first instance: its temp dir holds the data dir later instances reuse; removed last. */
let first: Pullthrough | undefined;
let priv: PushResult;
let ptConfig: (nsA: string) => Record<string, unknown>;

before(async () => {
  dir = await tempDir('pullthrough-private-');
  const lines: string[] = [];
  for (const u of [ALICE, BOB]) lines.push((await run('htpasswd', ['-Bbn', u.username, u.password])).stdout.trim());
  await writeFile(join(dir.path, 'htpasswd'), lines.join('\n') + '\n');
  [quay, hub] = await Promise.all([
    startUpstreamRegistry({
      tls: true,
      auth: 'token',
      users: UP,
      tokenAccess: (user, repo) => {
        if (repo === 'team/private') return user === 'robot' ? ['pull'] : [];
        if (repo.startsWith('ns-a/')) return user === 'acct-a' ? ['pull'] : [];
        if (repo.startsWith('ns-b/')) return user === 'acct-b' ? ['pull'] : [];
        return ['pull'];
      },
    }),
    startUpstreamRegistry(),
  ]);
  ptConfig = (nsA) => ({
    registries: {
      'docker.io': { upstream: hub.url },
      'quay.io': {
        upstream: quay.url,
        ca: quay.caFile,
        username: 'robot',
        password: UP.robot,
        credentials: [
          { match: 'ns-a/*', username: nsA, password: UP[nsA as keyof typeof UP] },
          { match: 'ns-b/**', username: 'acct-b', password: UP['acct-b'] },
        ],
      },
    },
    auth: { enabled: true, htpasswd: join(dir.path, 'htpasswd'), tokenSecret: 'private-content-test-secret-0123456789' },
    rules: [
      { match: 'quay.io/team/private', pull: ['alice'] },
      { match: '**', pull: ['authenticated'] },
    ],
  });
  pt = first = await startPullthrough(ptConfig('acct-a'));
  priv = await pushImage(quay, 'team/private', 'v1', await makeImage({ format: 'docker', seed: 'private-content', layers: 2, layerSize: 150_000 }));
  await pushImage(quay, 'team/public', 'v1', await makeImage({ format: 'oci', seed: 'public-content' }));
  await pushImage(hub, 'library/public', 'v1', await makeImage({ format: 'oci', seed: 'hub-public' }));
});

after(async () => {
  await pt?.cleanup();
  if (first !== pt) await first?.cleanup();
  await Promise.all([quay?.stop(), hub?.stop()]);
  await dir?.cleanup();
});

const basic = (c: { username: string; password: string }): Record<string, string> => ({ authorization: 'Basic ' + Buffer.from(`${c.username}:${c.password}`).toString('base64') });

async function req(path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; code?: string; message?: string; bytes: number; type: string | null }> {
  const r = await fetch(`${pt.url}${path}`, { method, headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json', ...headers } });
  const body = Buffer.from(await r.arrayBuffer());
  let err: { code?: string; message?: string } = {};
  try {
    err = (JSON.parse(body.toString()) as { errors: Array<{ code: string; message: string }> }).errors[0] ?? {};
  } catch {
    /* not an error body */
  }
  return { status: r.status, code: err.code, message: err.message, bytes: body.length, type: r.headers.get('content-type') };
}

test('a private image pulled by an authorised client is refused to everyone else, by tag and by digest under any name; no byte served', async () => {
  quay.resetLog();
  const a = await skopeoCopy(`${pt.host}/quay.io/team/private:v1`, 'dir', { tlsVerify: false, creds: ALICE });
  try {
    assert.equal(a.code, 0, a.stderr);
    const layout = await readDirLayout(a.path);
    assert.equal(layout.manifestDigest, priv.manifestDigest);
    assert.deepEqual(layout.blobs.map((b) => b.digest).sort(), priv.blobs.map((b) => b.digest).sort());
  } finally {
    await a.cleanup();
  }
  const grants = quay.tokenServer!.requests();
  assert.ok(grants.length >= 1 && grants.every((g) => g.user === 'robot' && g.scopes.join() === 'repository:team/private:pull'), 'fetched with the central account');

  const layer = priv.manifests[0]!.layers[0]!.digest;
  const config = priv.configDigest;
  const served = async (): Promise<number> => metricValue(await pt.metrics(), 'pullthrough_served_bytes_total');
  const bytesBefore = await served();
  quay.resetLog();
  hub.resetLog();
  const logStart = pt.requests().length;

  // By the private name: the rules refuse before the cache is looked at.
  for (const path of [`/v2/quay.io/team/private/manifests/v1`, `/v2/quay.io/team/private/manifests/${priv.manifestDigest}`, `/v2/quay.io/team/private/blobs/${layer}`, `/v2/team/private/blobs/${config}?ns=quay.io`]) {
    for (const method of ['GET', 'HEAD']) {
      const r = await req(path, basic(BOB), method);
      assert.equal(r.status, 403, `${method} ${path}`);
      if (method === 'GET') assert.equal(r.message, 'pull of quay.io/team/private denied: rules[0] ("quay.io/team/private") does not allow it to user bob');
    }
    const anon = await req(path);
    assert.equal(anon.status, 401, 'no credentials: challenged');
  }
  // By digest under names bob may read: served only if upstream confirms that repository has it.
  for (const path of [
    `/v2/quay.io/team/public/manifests/${priv.manifestDigest}`,
    `/v2/quay.io/team/public/blobs/${layer}`,
    `/v2/team/public/blobs/${config}?ns=quay.io`,
    `/v2/library/public/blobs/${layer}`,
    `/v2/docker.io/library/public/manifests/${priv.manifestDigest}`,
  ]) {
    const r = await req(path, basic(BOB));
    assert.equal(r.status, 404, path);
    assert.ok(r.code === 'BLOB_UNKNOWN' || r.code === 'MANIFEST_UNKNOWN', `${path}: ${r.code}`);
    assert.ok(r.bytes < 300 && r.type?.startsWith('application/json'), 'an error body, not content');
    const ranged = await fetch(`${pt.url}${path}`, { headers: { ...basic(BOB), range: 'bytes=0-99' } });
    assert.equal(ranged.status, 404);
    await ranged.arrayBuffer();
  }
  // And alice herself, under another registry's name.
  assert.equal((await req(`/v2/docker.io/library/public/blobs/${layer}`, basic(ALICE))).status, 404);
  const skopeoBob = await skopeoCopy(`${pt.host}/quay.io/team/public@${priv.manifestDigest}`, 'dir', { tlsVerify: false, creds: BOB });
  await skopeoBob.cleanup();
  assert.notEqual(skopeoBob.code, 0);
  assert.match(skopeoBob.stderr, /manifest unknown/);

  // Upstream was only asked whether those repositories hold the digests (HEAD), never for content.
  assert.equal(quay.count({ method: 'GET', kind: 'blob' }) + quay.count({ method: 'GET', kind: 'manifest' }), 0);
  assert.equal(hub.count({ method: 'GET', kind: 'blob' }) + hub.count({ method: 'GET', kind: 'manifest' }), 0);
  assert.ok(quay.count({ method: 'HEAD', repo: 'team/public' }) >= 3);
  assert.equal(quay.count({ repo: 'team/private' }), 0, 'nothing asked about the private repository');
  const lines = pt.requests().slice(logStart).filter((l) => l.kind === 'manifest' || l.kind === 'blob');
  assert.ok(lines.length >= 22, `${lines.length} content requests`);
  for (const l of lines) {
    assert.ok((l.status as number) >= 400, `${l.method} ${l.path} answered ${l.status}`);
    assert.equal(l.bytes ?? 0, 0, 'no content bytes in any answer');
  }
  assert.equal(await served(), bytesBefore, 'pullthrough_served_bytes_total did not move');

  // alice still gets it by digest, from the cache.
  quay.resetLog();
  const again = await req(`/v2/quay.io/team/private/blobs/${layer}`, basic(ALICE));
  assert.equal(again.status, 200);
  assert.equal(again.bytes, priv.manifests[0]!.layers[0]!.size);
  assert.equal(quay.count(), 0, 'a cache hit, nothing asked upstream');
});

test('upstream credentials by namespace: each repository is fetched with its own account', async () => {
  const image = await makeImage({ format: 'oci', seed: 'namespaced', layers: 1, layerSize: 50_000 });
  const a = await pushImage(quay, 'ns-a/app', 'v1', image);
  await pushImage(quay, 'ns-b/deep/app', 'v1', image);
  await pushImage(quay, 'team/public2', 'v1', await makeImage({ format: 'oci', seed: 'namespaced-public' }));
  quay.resetLog();
  for (const ref of ['quay.io/ns-a/app:v1', 'quay.io/ns-b/deep/app:v1', 'quay.io/team/public2:v1']) {
    const r = await skopeoCopy(`${pt.host}/${ref}`, 'dir', { tlsVerify: false, creds: BOB });
    await r.cleanup();
    assert.equal(r.code, 0, `${ref}: ${r.stderr}`);
  }
  const byScope = new Map<string, Set<string | undefined>>();
  for (const q of quay.tokenServer!.requests()) {
    assert.equal(q.status, 200);
    for (const s of q.scopes) byScope.set(s, (byScope.get(s) ?? new Set()).add(q.user));
  }
  assert.deepEqual([...byScope.entries()].map(([s, u]) => [s, [...u]]).sort(), [
    ['repository:ns-a/app:pull', ['acct-a']],
    ['repository:ns-b/deep/app:pull', ['acct-b']],
    ['repository:team/public2:pull', ['robot']],
  ]);
  // ns-b shares every blob with ns-a: confirmed with HEADs made with acct-b's token, not fetched again.
  assert.equal(quay.count({ method: 'GET', kind: 'blob', repo: 'ns-b/deep/app' }), 0);
  assert.equal(quay.count({ method: 'HEAD', kind: 'blob', repo: 'ns-b/deep/app' }), a.blobs.length);
});

test('a confirmation made with one upstream account does not vouch for another', async () => {
  const pushed = await pushImage(quay, 'ns-a/vouch', 'v1', await makeImage({ format: 'oci', seed: 'vouch', layers: 1, layerSize: 60_000 }));
  const layer = pushed.manifests[0]!.layers[0]!.digest;
  const first = await req(`/v2/quay.io/ns-a/vouch/manifests/v1`, basic(BOB));
  assert.equal(first.status, 200);
  assert.equal((await req(`/v2/quay.io/ns-a/vouch/blobs/${layer}`, basic(BOB))).status, 200);
  // Same cache, but ns-a/* now maps to acct-b, which may not read ns-a upstream.
  const dataDir = pt.dataDir;
  await pt.stop();
  const other = await startPullthrough(ptConfig('acct-b'), { dataDir });
  try {
    quay.resetLog();
    for (const path of [`/v2/quay.io/ns-a/vouch/blobs/${layer}`, `/v2/quay.io/ns-a/vouch/manifests/${pushed.manifestDigest}`, `/v2/quay.io/ns-a/vouch/manifests/v1`]) {
      const r = await (async () => {
        const x = await fetch(`${other.url}${path}`, { headers: { ...basic(BOB), accept: 'application/vnd.oci.image.manifest.v1+json' } });
        return { status: x.status, bytes: (await x.arrayBuffer()).byteLength };
      })();
      assert.equal(r.status, 401, `${path}: upstream refused acct-b, and the cached copy was not served`);
      assert.ok(r.bytes < 300);
    }
    assert.ok(quay.tokenServer!.requests().every((q) => q.user === 'acct-b'), 'asked with the account the repository maps to now');
    assert.equal(quay.count({ method: 'GET', kind: 'blob' }), 0);
  } finally {
    await other.cleanup();
  }
  // Back to acct-a: its confirmations still hold, served from the cache without asking upstream.
  pt = await startPullthrough(ptConfig('acct-a'), { dataDir });
  quay.resetLog();
  const back = await fetch(`${pt.url}/v2/quay.io/ns-a/vouch/blobs/${layer}`, { headers: basic(BOB) });
  assert.equal(back.status, 200);
  assert.equal((await back.arrayBuffer()).byteLength, pushed.manifests[0]!.layers[0]!.size);
  assert.equal(quay.count(), 0);
});
