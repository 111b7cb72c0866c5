/**
 * Client authentication on the mirror door with real clients: the token flow by hand (exact
 * challenges, GET and POST /token, refresh tokens, Basic on /v2, refused tokens), then skopeo
 * `--creds`, podman `--creds` and `podman login`, containerd `ctr --user` (OAuth2 password grant)
 * and dockerd after `docker login` (refresh_token grant), allowed and denied by the rules with the
 * exact errors; audit lines; no password or token anywhere in pullthrough's output.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createHmac } from 'node:crypto';
import { startUpstreamRegistry, type Upstream } from '../helpers/upstream-registry.js';
import { makeImage, pushImage, type PushResult } from '../helpers/images.js';
import { podmanPull, podmanStorage, readDirLayout, skopeoCopy, startContainerd, startDockerd, writeHostsToml } from '../helpers/clients.js';
import { startPullthrough, type Pullthrough, type LogLine } from '../helpers/pullthrough.js';
import { run, tempDir } from '../helpers/process.js';

const CI = { username: 'ci', password: 'ci-Pa55-9f3a7' };
const ALICE = { username: 'alice', password: 'alice-Pa55-41c2' };
const SECRET = 'test-token-secret-7d1f0c2e9b8a4f6e5d3c2b1a';

let hub: Upstream; // plays docker.io
let pt: Pullthrough;
let dir: { path: string; cleanup: () => Promise<void> };
let pub: PushResult; // docker.io/mjpitz/app: anyone
let priv: PushResult; // docker.io/library/app: group ci only
let alices: PushResult; // docker.io/team/alice-tool: alice and ci
/** Every token this file saw pullthrough issue; none may appear in its output. */
const seenTokens: string[] = [];

before(async () => {
  dir = await tempDir('pullthrough-auth-');
  const lines: string[] = [];
  for (const u of [CI, ALICE]) lines.push((await run('htpasswd', ['-Bbn', u.username, u.password])).stdout.trim());
  await writeFile(join(dir.path, 'htpasswd'), lines.join('\n') + '\n');
  hub = await startUpstreamRegistry();
  pt = await startPullthrough({
    registries: { 'docker.io': { upstream: hub.url, aliases: ['registry-1.docker.io'] } },
    auth: { enabled: true, htpasswd: join(dir.path, 'htpasswd'), groups: { builders: ['ci'] }, tokenSecret: SECRET },
    rules: [
      { match: 'docker.io/mjpitz/*', pull: ['anonymous'] },
      { match: 'docker.io/team/alice-*', pull: ['alice', 'group:builders'] },
      { match: 'docker.io/blocked/**', pull: [] },
      { match: '**', pull: ['group:builders'] },
    ],
  });
  [pub, priv, alices] = await Promise.all([
    pushImage(hub, 'mjpitz/app', 'v1', await makeImage({ format: 'oci', seed: 'auth-public' })),
    pushImage(hub, 'library/app', 'v1', await makeImage({ format: 'docker', seed: 'auth-private' })),
    pushImage(hub, 'team/alice-tool', 'v1', await makeImage({ format: 'oci', seed: 'auth-alice' })),
  ]);
  await pushImage(hub, 'blocked/thing', 'v1', await makeImage({ format: 'oci', seed: 'auth-blocked' }));
});

after(async () => {
  await pt?.cleanup();
  await hub?.stop();
  await dir?.cleanup();
});

const basic = (c: { username: string; password: string }): string => 'Basic ' + Buffer.from(`${c.username}:${c.password}`).toString('base64');

async function get(path: string, headers: Record<string, string> = {}, init: RequestInit = {}): Promise<{ status: number; headers: Headers; json: any; text: string }> {
  const r = await fetch(`${pt.url}${path}`, { headers, ...init });
  const text = await r.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  for (const k of ['token', 'access_token', 'refresh_token']) if (typeof json?.[k] === 'string') seenTokens.push(json[k]);
  return { status: r.status, headers: r.headers, json, text };
}

const MANIFEST_ACCEPT = { accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' };

test('token flow by hand: challenges on the Host used, anonymous and user tokens, Basic on /v2, rules with exact errors', async () => {
  const realm = `http://${pt.host}/token`;
  const base = await get('/v2/');
  assert.equal(base.status, 401);
  assert.equal(base.headers.get('www-authenticate'), `Bearer realm="${realm}",service="pullthrough"`);
  assert.equal(base.json.errors[0].code, 'UNAUTHORIZED');
  const m = await get('/v2/library/app/manifests/v1');
  assert.equal(m.status, 401);
  assert.equal(m.headers.get('www-authenticate'), `Bearer realm="${realm}",service="pullthrough",scope="repository:library/app:pull"`);
  // The realm follows the Host the client used.
  const other = await fetch(`http://localhost:${pt.ports.mirror}/v2/`);
  assert.equal(other.headers.get('www-authenticate'), `Bearer realm="http://localhost:${pt.ports.mirror}/token",service="pullthrough"`);

  hub.resetLog();
  const anon = await get('/token?service=pullthrough&scope=repository:library/app:pull');
  assert.equal(anon.status, 200);
  assert.equal(anon.headers.get('cache-control'), 'no-store');
  assert.equal(anon.json.expires_in, 300);
  assert.equal(anon.json.refresh_token, undefined);
  const anonAuth = { authorization: `Bearer ${anon.json.token}` };
  assert.equal((await get('/v2/', anonAuth)).status, 200);
  const pubOk = await get('/v2/mjpitz/app/manifests/v1', { ...anonAuth, ...MANIFEST_ACCEPT });
  assert.equal(pubOk.status, 200);
  assert.equal(pubOk.headers.get('docker-content-digest'), pub.manifestDigest);
  const anonDenied = await get('/v2/library/app/manifests/v1', anonAuth);
  assert.equal(anonDenied.status, 401);
  assert.equal(anonDenied.headers.get('www-authenticate'), `Bearer realm="${realm}",service="pullthrough",scope="repository:library/app:pull"`);
  assert.deepEqual(anonDenied.json.errors[0], {
    code: 'UNAUTHORIZED',
    message: 'authentication required: pull of docker.io/library/app is allowed only to signed-in clients by rules[3] ("**")',
    detail: { rule: 'rules[3] ("**")', action: 'pull' },
  });

  const aliceTok = await get('/token?service=pullthrough&scope=repository:library/app:pull', { authorization: basic(ALICE) });
  assert.equal(aliceTok.status, 200);
  const aliceDenied = await get('/v2/library/app/manifests/v1', { authorization: `Bearer ${aliceTok.json.token}` });
  assert.equal(aliceDenied.status, 403);
  assert.deepEqual(aliceDenied.json.errors[0], {
    code: 'DENIED',
    message: 'pull of docker.io/library/app denied: rules[3] ("**") does not allow it to user alice',
    detail: { registry: 'docker.io', repository: 'library/app', action: 'pull', rule: 'rules[3] ("**")' },
  });
  assert.equal(aliceDenied.headers.get('www-authenticate'), null, 'a signed-in client that is denied gets 403, no challenge');
  assert.equal((await get('/v2/team/alice-tool/manifests/v1', { authorization: `Bearer ${aliceTok.json.token}`, ...MANIFEST_ACCEPT })).headers.get('docker-content-digest'), alices.manifestDigest);
  assert.equal(hub.count({ repo: 'library/app' }), 0, 'nothing was asked upstream for a denied repository');

  // Basic directly on /v2 requests.
  const ciDirect = await get('/v2/library/app/manifests/v1', { authorization: basic(CI), ...MANIFEST_ACCEPT });
  assert.equal(ciDirect.status, 200);
  assert.equal(ciDirect.headers.get('docker-content-digest'), priv.manifestDigest);
  const blocked = await get('/v2/blocked/thing/manifests/v1', { authorization: basic(CI) });
  assert.equal(blocked.status, 403);
  assert.equal(blocked.json.errors[0].message, 'pull of docker.io/blocked/thing denied: rules[2] ("docker.io/blocked/**") does not allow it to user ci');
  assert.equal(hub.count({ repo: 'blocked/thing' }), 0, 'the allow-list keeps denied repositories out of the cache: nothing fetched');
  const wrong = await get('/v2/library/app/manifests/v1', { authorization: basic({ username: 'ci', password: 'nope' }) });
  assert.equal(wrong.status, 401);
  assert.equal(wrong.json.errors[0].message, 'incorrect username or password');
  assert.match(wrong.headers.get('www-authenticate') ?? '', /^Bearer realm=/);
  const wrongTok = await get('/token', { authorization: basic({ username: 'ci', password: 'nope' }) });
  assert.equal(wrongTok.status, 401);
  assert.equal(wrongTok.json.errors[0].message, 'incorrect username or password');
  const ghost = await get('/token', { authorization: basic({ username: 'ghost', password: 'x' }) });
  assert.equal(ghost.status, 401, 'unknown users are refused like wrong passwords');

  // OAuth2 POST: password grant with a refresh token, then the refresh_token grant.
  const form = (f: Record<string, string>): RequestInit => ({ method: 'POST', body: new URLSearchParams(f).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  const pw = await get('/token', {}, form({ grant_type: 'password', username: CI.username, password: CI.password, scope: 'repository:library/app:pull', service: 'pullthrough', client_id: 'test', access_type: 'offline' }));
  assert.equal(pw.status, 200, pw.text);
  assert.equal(pw.json.scope, 'repository:library/app:pull');
  assert.ok(pw.json.access_token && pw.json.refresh_token);
  const refreshed = await get('/token', {}, form({ grant_type: 'refresh_token', refresh_token: pw.json.refresh_token, scope: 'repository:library/app:pull', service: 'pullthrough' }));
  assert.equal(refreshed.status, 200, refreshed.text);
  assert.equal((await get('/v2/library/app/manifests/v1', { authorization: `Bearer ${refreshed.json.access_token}`, ...MANIFEST_ACCEPT })).status, 200);
  const badRefresh = await get('/token', {}, form({ grant_type: 'refresh_token', refresh_token: pw.json.access_token }));
  assert.equal(badRefresh.status, 401);
  assert.match(badRefresh.json.errors[0].message, /refresh token refused: not an refresh token/);
  assert.equal((await get('/v2/', { authorization: `Bearer ${pw.json.refresh_token}` })).status, 401, 'a refresh token is not an access token');
  const unsupported = await get('/token', {}, form({ grant_type: 'client_credentials' }));
  assert.equal(unsupported.status, 400);
  assert.equal(unsupported.json.errors[0].code, 'REQUEST_INVALID');
  const offline = await get('/token?service=pullthrough&offline_token=true&client_id=docker', { authorization: basic(CI) });
  assert.ok(offline.json.refresh_token, 'GET with offline_token=true (docker login) gets a refresh token');

  // Tokens: tampered, expired, or signed with another secret are refused, with the reason.
  const [h, p] = (pw.json.access_token as string).split('.');
  const claims = JSON.parse(Buffer.from(p!, 'base64url').toString());
  const sign = (c: object, key = SECRET): string => {
    const body = Buffer.from(JSON.stringify(c)).toString('base64url');
    return `${h}.${body}.${createHmac('sha256', key).update(`${h}.${body}`).digest('base64url')}`;
  };
  for (const [token, reason] of [
    [sign({ ...claims, exp: Math.floor(Date.now() / 1000) - 5 }), 'token expired'],
    [sign(claims, 'another-secret-another-secret-xx'), 'bad token signature'],
    [sign({ ...claims, sub: 'alice' }), 'token of a user that was removed or changed password'],
    ['not-a-token', 'not a pullthrough token'],
  ] as const) {
    const r = await get('/v2/', { authorization: `Bearer ${token}` });
    assert.equal(r.status, 401, reason);
    assert.equal(r.json.errors[0].message, reason);
  }
});

test('skopeo: anonymous pulls only what anonymous may; --creds ci pulls the rest; exact errors', async () => {
  const anonOk = await skopeoCopy(`${pt.host}/mjpitz/app:v1`, 'dir', { tlsVerify: false });
  try {
    assert.equal(anonOk.code, 0, anonOk.stderr);
    assert.equal((await readDirLayout(anonOk.path)).manifestDigest, pub.manifestDigest);
  } finally {
    await anonOk.cleanup();
  }
  const anonNo = await skopeoCopy(`${pt.host}/library/app:v1`, 'dir', { tlsVerify: false });
  await anonNo.cleanup();
  assert.notEqual(anonNo.code, 0);
  // skopeo (logrus) escapes the quotes of the message.
  assert.match(anonNo.stderr, /unauthorized: authentication required: pull of docker\.io\/library\/app is allowed only to signed-in clients by rules\[3\] \(\\"\*\*\\"\)/);
  const aliceNo = await skopeoCopy(`${pt.host}/library/app:v1`, 'dir', { tlsVerify: false, creds: ALICE });
  await aliceNo.cleanup();
  assert.notEqual(aliceNo.code, 0);
  assert.match(aliceNo.stderr, /denied: pull of docker\.io\/library\/app denied: rules\[3\] \(\\"\*\*\\"\) does not allow it to user alice/);
  const wrong = await skopeoCopy(`${pt.host}/library/app:v1`, 'dir', { tlsVerify: false, creds: { username: 'ci', password: 'wrong' } });
  await wrong.cleanup();
  assert.notEqual(wrong.code, 0);
  assert.match(wrong.stderr, /incorrect username or password/);
  const ci = await skopeoCopy(`${pt.host}/library/app:v1`, 'dir', { tlsVerify: false, creds: CI });
  try {
    assert.equal(ci.code, 0, ci.stderr);
    const layout = await readDirLayout(ci.path);
    assert.equal(layout.manifestDigest, priv.manifestDigest);
    assert.deepEqual(layout.blobs.map((b) => b.digest).sort(), priv.blobs.map((b) => b.digest).sort());
  } finally {
    await ci.cleanup();
  }
  const tokenReqs = pt.requests().filter((l) => l.path === '/token' && l.user === 'ci');
  assert.ok(tokenReqs.some((l) => l.method === 'GET' && l.status === 200), 'skopeo --creds asks GET /token with Basic');
});

test('podman: --creds, podman login, and registries.conf mirrors with credentials', async () => {
  const anon = await podmanPull(`${pt.host}/library/app:v1`, { tlsVerify: false });
  assert.notEqual(anon.code, 0);
  assert.match(anon.stderr, /authentication required: pull of docker\.io\/library\/app is allowed only to signed-in clients by rules\[3\]/);
  const creds = await podmanPull(`${pt.host}/library/app:v1`, { tlsVerify: false, creds: CI });
  assert.equal(creds.code, 0, creds.stderr);
  assert.equal(creds.digest, priv.manifestDigest);

  const storage = await podmanStorage();
  try {
    const env = { ...process.env, REGISTRY_AUTH_FILE: join(storage.dir, 'auth.json') };
    const bad = await run('podman', [...storage.flags, 'login', '--tls-verify=false', '-u', ALICE.username, '-p', 'wrong', pt.host], { env, allowFail: true });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /invalid username\/password/);
    const login = await run('podman', [...storage.flags, 'login', '--tls-verify=false', '-u', ALICE.username, '-p', ALICE.password, pt.host], { env, allowFail: true });
    assert.equal(login.code, 0, login.stderr);
    const conf = join(storage.dir, 'registries.conf');
    await writeFile(conf, `[[registry]]\nlocation = "docker.io"\n[[registry.mirror]]\nlocation = "${pt.host}/docker.io"\ninsecure = true\n`);
    const viaMirror = await podmanPull('docker.io/team/alice-tool:v1', { storage, registriesConf: conf });
    assert.equal(viaMirror.code, 0, viaMirror.stderr);
    assert.equal(viaMirror.digest, alices.manifestDigest);
    assert.ok(pt.requests().some((l) => l.path === '/v2/docker.io/team/alice-tool/manifests/v1' && l.user === 'alice' && l.status === 200), 'the mirror got the login');
    const denied = await podmanPull(`${pt.host}/library/app:v1`, { storage, tlsVerify: false });
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /does not allow it to user alice/);
  } finally {
    await storage.cleanup();
  }
});

test('containerd: ctr --user through hosts.toml (OAuth2 password grant, ?ns=), anonymous refused', async () => {
  const ctr = await startContainerd();
  const hosts = await tempDir('pullthrough-hosts-');
  try {
    await writeHostsToml(hosts.path, 'docker.io', pt.url);
    const anon = await ctr.pull('docker.io/library/app:v1', { hostsDir: hosts.path });
    assert.notEqual(anon.code, 0);
    // containerd resolves with HEAD (no body), so it can only report the status.
    assert.match(anon.stderr, /pulling from host 127\.0\.0\.1:\d+ failed with status code \[manifests v1\]: 401 Unauthorized/);
    const alice = await ctr.pull('docker.io/library/app:v1', { hostsDir: hosts.path, user: ALICE });
    assert.match(alice.stderr, /failed with status code \[manifests v1\]: 403 Forbidden/);
    const before = pt.logs().length;
    const r = await ctr.pull('docker.io/library/app:v1', { hostsDir: hosts.path, user: CI });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await ctr.images()).find((i) => i.ref === 'docker.io/library/app:v1')?.digest, priv.manifestDigest);
    const lines = pt.logs().slice(before).filter((l) => l.msg === 'request');
    assert.ok(lines.some((l) => l.method === 'POST' && l.path === '/token' && l.user === 'ci' && l.status === 200), 'ctr --user uses POST /token (password grant)');
    assert.ok(lines.some((l) => l.ns === 'docker.io' && l.repo === 'library/app' && l.user === 'ci' && l.kind === 'blob' && l.status === 200));
    const aliceTool = await ctr.pull('docker.io/team/alice-tool:v1', { hostsDir: hosts.path, user: ALICE });
    assert.equal(aliceTool.code, 0, aliceTool.stderr);
  } finally {
    await ctr.stop();
    await hosts.cleanup();
  }
});

test('dockerd: docker login then pull (refresh_token grant); registry-mirrors with Docker Hub credentials', async () => {
  const dk = await startDockerd({ insecureRegistries: [pt.host], registryMirrors: [pt.url] });
  try {
    const anon = await dk.pull(`${pt.host}/library/app:v1`);
    assert.notEqual(anon.code, 0);
    assert.match(anon.stderr, /Error response from daemon: unauthorized: authentication required: pull of docker\.io\/library\/app is allowed only to signed-in clients by rules\[3\] \("\*\*"\)/);
    const badLogin = await dk.login(pt.host, { username: 'ci', password: 'wrong' });
    assert.notEqual(badLogin.code, 0);
    const before = pt.logs().length;
    const login = await dk.login(pt.host, CI);
    assert.equal(login.code, 0, login.stderr);
    const r = await dk.pull(`${pt.host}/library/app:v1`);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await dk.repoDigests(`${pt.host}/library/app:v1`), [`${pt.host}/library/app@${priv.manifestDigest}`]);
    const tokens = pt.logs().slice(before).filter((l) => l.msg === 'request' && l.path === '/token');
    assert.ok(tokens.some((l) => l.method === 'GET' && l.user === 'ci'), 'docker login asks GET /token with Basic (offline token)');
    assert.ok(tokens.some((l) => l.method === 'POST' && l.user === 'ci' && l.status === 200), 'the pull trades the refresh token by POST');

    // registry-mirrors: dockerd sends the mirror the credentials stored for Docker Hub.
    const mirrorAnon = await dk.pull('mjpitz/app:v1');
    assert.equal(mirrorAnon.code, 0, mirrorAnon.stderr);
    await mkdir(join(dk.dir, 'cli'), { recursive: true });
    await writeFile(join(dk.dir, 'cli', 'config.json'), JSON.stringify({ auths: { 'https://index.docker.io/v1/': { auth: Buffer.from(`${CI.username}:${CI.password}`).toString('base64') } } }));
    const mirrorCi = await dk.pull('team/alice-tool:v1');
    assert.equal(mirrorCi.code, 0, mirrorCi.stderr);
    assert.ok(pt.requests().some((l) => l.path === '/v2/team/alice-tool/manifests/v1' && l.user === 'ci' && l.status === 200));
  } finally {
    await dk.stop();
  }
});

test('audit: one denied line per refusal (who, what, rule, door, reason); no password, token or secret in the output', async () => {
  const denied = pt.logs().filter((l): l is LogLine => l.msg === 'denied');
  const byReason = (r: string): LogLine[] => denied.filter((l) => l.reason === r);
  const rule = byReason('rule').find((l) => l.path === '/v2/library/app/manifests/v1' && l.claimedUser === undefined);
  assert.ok(rule, 'an anonymous client refused by a rule');
  assert.equal(rule.door, 'mirror');
  assert.equal(rule.client, '127.0.0.1');
  assert.equal(rule.rule, 'rules[3] ("**")');
  assert.equal(rule.registry, 'docker.io');
  assert.equal(rule.repo, 'library/app');
  assert.equal(rule.action, 'pull');
  assert.equal(rule.level, 'warn');
  const alice = denied.find((l) => l.reason === 'rule' && l.user === 'alice' && l.repo === 'library/app');
  assert.ok(alice && alice.rule === 'rules[3] ("**")', 'a signed-in user refused by a rule');
  assert.ok(denied.some((l) => l.reason === 'rule' && l.user === 'ci' && l.rule === 'rules[2] ("docker.io/blocked/**")'));
  assert.ok(byReason('bad credentials').some((l) => l.claimedUser === 'ci' && l.path === '/token'), 'failed logins name the user they claimed');
  assert.ok(byReason('invalid token').length >= 4);
  assert.ok(byReason('no credentials').every((l) => l.level === 'info'), 'the first challenge of every pull is info, not warn');
  // Every refusal in the request log has its audit line.
  const refused = pt.requests().filter((l) => l.status === 401 || l.status === 403);
  assert.equal(denied.length, refused.length);

  const out = pt.proc.output();
  for (const secret of [CI.password, ALICE.password, SECRET, ...seenTokens]) assert.ok(!out.includes(secret), `pullthrough's output contains ${secret.slice(0, 12)}…`);
  assert.ok(!out.includes('eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9'), 'no token of pullthrough in its output (they all start with this header)');
  assert.ok(!/authorization/i.test(out), 'no Authorization header logged');
});
