/**
 * Client authentication through the TLS (DNS-hijack) and CONNECT (HTTPS_PROXY) doors with real
 * clients: the realm is `https://<the registry name the client used>/token`, which reaches
 * pullthrough through the same door (the upstream's own token service is never involved, so its
 * CA is not even trusted here). skopeo, podman, ctr and dockerd (`docker login`) authenticate;
 * the rules refuse with exact errors; a push allowed by the rules goes upstream with the
 * repository's central credentials, one refused never leaves pullthrough.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { startUpstreamRegistry, type Upstream } from '../helpers/upstream-registry.js';
import { makeImage, pushImage, RegistryClient, type PushResult } from '../helpers/images.js';
import { podmanPull, readDirLayout, skopeoCopy, startContainerd, startDockerd } from '../helpers/clients.js';
import { startPullthrough, type Pullthrough } from '../helpers/pullthrough.js';
import { hijack, randomLoopback, type Hijack } from '../helpers/hijack.js';
import { run, tempDir } from '../helpers/process.js';

const ALICE = { username: 'alice', password: 'alice-door-pw-3e1' };
const CI = { username: 'ci', password: 'ci-door-pw-8b2' };
const ROBOT = { username: 'robot', password: 'robot-upstream-pw-5c4' };
const INTERNAL = 'registry.test.internal:5443'; // resolves nowhere: reachable only via CONNECT

let quay: Upstream; // quay.io: TLS, token auth; robot may pull and push everything
let hub: Upstream; // docker.io and INTERNAL: plain HTTP
let pt: Pullthrough;
let ip: string;
let ptCa: string;
let trusted: Hijack;
let dir: { path: string; cleanup: () => Promise<void> };
let priv: PushResult;
let hubApp: PushResult;

before(async () => {
  dir = await tempDir('pullthrough-doors-auth-');
  const lines: string[] = [];
  for (const u of [ALICE, CI]) lines.push((await run('htpasswd', ['-Bbn', u.username, u.password])).stdout.trim());
  await writeFile(join(dir.path, 'htpasswd'), lines.join('\n') + '\n');
  [quay, hub] = await Promise.all([startUpstreamRegistry({ tls: true, auth: 'token', users: { robot: ROBOT.password } }), startUpstreamRegistry()]);
  ip = randomLoopback();
  pt = await startPullthrough({
    listen: { mirror: '127.0.0.1:0', tls: `${ip}:443`, proxy: '127.0.0.1:0' },
    registries: {
      'docker.io': { upstream: hub.url, aliases: ['registry-1.docker.io', 'index.docker.io'] },
      'quay.io': { upstream: quay.url, ca: quay.caFile, ...ROBOT },
      [INTERNAL]: { upstream: hub.url },
    },
    auth: { enabled: true, htpasswd: join(dir.path, 'htpasswd'), groups: { builders: ['ci'] } },
    rules: [
      { match: 'quay.io/team/private', pull: ['alice'] },
      { match: 'quay.io/team/pushed', pull: ['authenticated'], push: ['group:builders'] },
      { match: '**', pull: ['authenticated'] },
    ],
  });
  ptCa = await readFile(join(pt.dataDir, 'ca', 'ca.crt'), 'utf8');
  // Only pullthrough's CA is trusted: clients never talk to quay's own token service.
  trusted = await hijack({ 'quay.io': ip, 'registry-1.docker.io': ip, 'index.docker.io': ip, 'docker.io': ip }, [ptCa]);
  priv = await pushImage(quay, 'team/private', 'v1', await makeImage({ format: 'docker', seed: 'doors-auth-private' }));
  hubApp = await pushImage(hub, 'library/app', 'v1', await makeImage({ format: 'oci', seed: 'doors-auth-hub' }));
});

after(async () => {
  await pt?.cleanup();
  await Promise.all([quay?.stop(), hub?.stop(), trusted?.cleanup(), dir?.cleanup()]);
});

/** A request to the TLS door as a client that resolved `host` to pullthrough would send it. */
function tlsDoor(host: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: ip, port: 443, servername: host, path, headers: { host, ...headers }, ca: ptCa, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const basic = (c: { username: string; password: string }): string => 'Basic ' + Buffer.from(`${c.username}:${c.password}`).toString('base64');

test('TLS door: the challenge realm is https://<hijacked name>/token, served by pullthrough through the same door', async () => {
  const quayPing = await tlsDoor('quay.io', '/v2/');
  assert.equal(quayPing.status, 401);
  assert.equal(quayPing.headers['www-authenticate'], 'Bearer realm="https://quay.io/token",service="pullthrough"');
  const hubPing = await tlsDoor('registry-1.docker.io', '/v2/library/app/manifests/v1');
  assert.equal(hubPing.headers['www-authenticate'], 'Bearer realm="https://registry-1.docker.io/token",service="pullthrough",scope="repository:library/app:pull"');
  const tok = await tlsDoor('quay.io', '/token?service=pullthrough&scope=repository:team/private:pull', { authorization: basic(ALICE) });
  assert.equal(tok.status, 200);
  const bearer = { authorization: `Bearer ${JSON.parse(tok.body).token}` };
  const m = await tlsDoor('quay.io', '/v2/team/private/manifests/v1', { ...bearer, accept: 'application/vnd.docker.distribution.manifest.v2+json' });
  assert.equal(m.status, 200);
  assert.equal(m.headers['docker-content-digest'], priv.manifestDigest);
  // The upstream's token relay is off while pullthrough authenticates its clients itself.
  assert.equal((await tlsDoor('quay.io', '/v2/_pullthrough/token', bearer)).status, 404);
  assert.equal(quay.tokenServer!.requests().filter((q) => q.user !== 'robot' && q.user !== 'harness-pusher').length, 0, 'no client ever reached the upstream token service');
});

test('TLS door: skopeo, podman and ctr authenticate by unchanged names; the rules refuse the others', async () => {
  const anon = await skopeoCopy('docker://quay.io/team/private:v1', 'dir', { env: trusted.env });
  await anon.cleanup();
  assert.notEqual(anon.code, 0);
  assert.match(anon.stderr, /authentication required: pull of quay\.io\/team\/private is allowed only to signed-in clients by rules\[0\]/);
  const ci = await skopeoCopy('docker://quay.io/team/private:v1', 'dir', { env: trusted.env, creds: CI });
  await ci.cleanup();
  assert.notEqual(ci.code, 0);
  assert.match(ci.stderr, /denied: pull of quay\.io\/team\/private denied: rules\[0\] \(\\"quay\.io\/team\/private\\"\) does not allow it to user ci/);
  const ok = await skopeoCopy('docker://quay.io/team/private:v1', 'dir', { env: trusted.env, creds: ALICE });
  try {
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal((await readDirLayout(ok.path)).manifestDigest, priv.manifestDigest);
  } finally {
    await ok.cleanup();
  }
  const p = await podmanPull('quay.io/team/private:v1', { env: trusted.env, creds: ALICE });
  assert.equal(p.code, 0, p.stderr);
  assert.equal(p.digest, priv.manifestDigest);
  const ctr = await startContainerd();
  try {
    const noUser = await ctr.pull('docker.io/library/app:v1', { env: trusted.env });
    assert.notEqual(noUser.code, 0);
    const c = await ctr.pull('docker.io/library/app:v1', { env: trusted.env, user: CI });
    assert.equal(c.code, 0, c.stderr);
    assert.equal((await ctr.images()).find((i) => i.ref === 'docker.io/library/app:v1')?.digest, hubApp.manifestDigest);
  } finally {
    await ctr.stop();
  }
  const tls = pt.requests().filter((l) => l.door === 'tls' && l.path === '/token' && l.status === 200);
  assert.ok(tls.some((l) => l.method === 'GET' && l.user === 'alice'), 'skopeo/podman: GET https://quay.io/token');
  assert.ok(tls.some((l) => l.method === 'POST' && l.user === 'ci'), 'ctr: POST https://registry-1.docker.io/token');
});

test('TLS door: docker login quay.io, then pull (refresh_token grant on the hijacked name)', async () => {
  const docker = await startDockerd({ env: trusted.env });
  try {
    const anon = await docker.pull('quay.io/team/private:v1');
    assert.notEqual(anon.code, 0);
    const login = await docker.login('quay.io', ALICE);
    assert.equal(login.code, 0, login.stderr);
    const before = pt.logs().length;
    const r = await docker.pull('quay.io/team/private:v1');
    assert.equal(r.code, 0, r.stderr);
    assert.ok((await docker.repoDigests('quay.io/team/private:v1')).some((d) => d.endsWith(priv.manifestDigest)));
    const lines = pt.logs().slice(before).filter((l) => l.msg === 'request');
    assert.ok(lines.some((l) => l.door === 'tls' && l.method === 'POST' && l.path === '/token' && l.user === 'alice' && l.status === 200));
    assert.ok(lines.some((l) => l.door === 'tls' && l.repo === 'team/private' && l.user === 'alice' && l.kind === 'blob'));
  } finally {
    await docker.stop();
  }
});

test('CONNECT door: skopeo --creds and docker login through HTTPS_PROXY to a name that resolves nowhere', async () => {
  const proxy = { HTTPS_PROXY: `http://127.0.0.1:${pt.ports.proxy}`, SSL_CERT_FILE: trusted.bundleFile };
  const anon = await skopeoCopy(`docker://${INTERNAL}/library/app:v1`, 'dir', { env: proxy });
  await anon.cleanup();
  assert.notEqual(anon.code, 0);
  assert.match(anon.stderr, /authentication required: pull of registry\.test\.internal:5443\/library\/app is allowed only to signed-in clients by rules\[2\]/);
  const s = await skopeoCopy(`docker://${INTERNAL}/library/app:v1`, 'dir', { env: proxy, creds: CI });
  try {
    assert.equal(s.code, 0, s.stderr);
    assert.equal((await readDirLayout(s.path)).manifestDigest, hubApp.manifestDigest);
  } finally {
    await s.cleanup();
  }
  const docker = await startDockerd({ httpsProxy: `http://127.0.0.1:${pt.ports.proxy}`, caFile: trusted.bundleFile });
  try {
    const login = await docker.login(INTERNAL, CI);
    assert.equal(login.code, 0, login.stderr);
    const r = await docker.pull(`${INTERNAL}/library/app:v1`);
    assert.equal(r.code, 0, r.stderr);
  } finally {
    await docker.stop();
  }
  const tokens = pt.requests().filter((l) => l.path === '/token' && l.user === 'ci' && l.status === 200);
  assert.ok(tokens.some((l) => l.method === 'GET') && tokens.some((l) => l.method === 'POST'), 'GET (skopeo, docker login) and POST (dockerd refresh) on https://registry.test.internal:5443/token');
  assert.ok(pt.requests().some((l) => l.registry === INTERNAL && l.user === 'ci' && l.kind === 'blob' && l.status === 200));
  // Requests tunnelled through CONNECT still know the client's address (the rate limit's key).
  assert.ok(pt.requests().filter((l) => l.registry === INTERNAL).every((l) => l.client === '127.0.0.1'));
});

test('push through the TLS door: allowed by the rules it goes with the central credentials; refused it never leaves', async () => {
  const src = await skopeoCopy(`${pt.host}/library/app:v1`, 'dir', { tlsVerify: false, creds: CI });
  assert.equal(src.code, 0, src.stderr);
  try {
    quay.resetLog();
    const denied = await skopeoCopy(`dir:${src.path}`, 'docker://quay.io/team/pushed:v1', { env: trusted.env, extraArgs: ['--dest-creds', `${ALICE.username}:${ALICE.password}`] });
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /push of quay\.io\/team\/pushed denied: rules\[1\] \(\\"quay\.io\/team\/pushed\\"\) does not allow it to user alice/);
    assert.equal(quay.count({ kind: 'upload' }) + quay.count({ kind: 'manifest', method: 'PUT' }), 0, 'nothing of a refused push reached the upstream');
    const r = await skopeoCopy(`dir:${src.path}`, 'docker://quay.io/team/pushed:v1', { env: trusted.env, extraArgs: ['--dest-creds', `${CI.username}:${CI.password}`] });
    assert.equal(r.code, 0, r.stderr);
    const grants = quay.tokenServer!.requests().filter((q) => q.scopes.includes('repository:team/pushed:pull,push'));
    assert.ok(grants.length >= 1 && grants.every((q) => q.user === 'robot'), 'the push used the central account');
    const direct = await new RegistryClient({ url: quay.url, caPem: await readFile(quay.caFile!, 'utf8') }, ROBOT).request('HEAD', '/v2/team/pushed/manifests/v1', {
      scope: 'repository:team/pushed:pull',
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    assert.equal(direct.status, 200, 'the upstream has the pushed manifest');
    assert.ok(pt.requests().some((l) => l.door === 'tls' && l.kind === 'push' && l.method === 'PUT' && l.user === 'ci' && l.status === 201));
  } finally {
    await src.cleanup();
  }
  const out = pt.proc.output();
  for (const secret of [ALICE.password, CI.password, ROBOT.password]) assert.ok(!out.includes(secret), 'no password in the output');
  assert.ok(!out.includes('eyJ'), 'no token in the output');
  const audit = pt.logs().filter((l) => l.msg === 'denied');
  assert.ok(audit.some((l) => l.door === 'tls' && l.reason === 'rule' && l.action === 'push' && l.user === 'alice' && l.rule === 'rules[1] ("quay.io/team/pushed")'));
  assert.ok(audit.some((l) => l.door === 'tls' && l.reason === 'rule' && l.action === 'pull' && l.user === 'ci' && l.repo === 'team/private'));
});
