/**
 * Rules as an upstream allow-list with client authentication off (skopeo, exact DENIED messages
 * naming the rule, nothing fetched), the per-client rate limit (429 with Retry-After, probes
 * exempt, one bucket per address), the token endpoint's size limit, audit lines, and start-up
 * refusals for a bad htpasswd file or an exposed token secret.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { startUpstreamRegistry, type Upstream } from '../helpers/upstream-registry.js';
import { makeImage, pushImage, type PushResult } from '../helpers/images.js';
import { readDirLayout, skopeoCopy } from '../helpers/clients.js';
import { MAIN, metricValue, startPullthrough, type Pullthrough } from '../helpers/pullthrough.js';
import { inTempDir, run, tempDir } from '../helpers/process.js';

let hub: Upstream;
let pt: Pullthrough;
let app: PushResult;

before(async () => {
  hub = await startUpstreamRegistry();
  pt = await startPullthrough({
    registries: { 'docker.io': { upstream: hub.url } },
    rules: [
      { match: 'docker.io/library/*', pull: ['anonymous'] },
      { match: 'docker.io/blocked/**', pull: [] },
    ],
  });
  app = await pushImage(hub, 'library/app', 'v1', await makeImage({ format: 'oci', seed: 'allow-list' }));
  await pushImage(hub, 'team/app', 'v1', await makeImage({ format: 'oci', seed: 'allow-list-team' }));
});

after(async () => {
  await pt?.cleanup();
  await hub?.stop();
});

async function errorOf(url: string, headers: Record<string, string> = {}): Promise<{ status: number; code: string; message: string; challenge: string | null }> {
  const r = await fetch(url, { headers });
  const body = (await r.json()) as { errors: Array<{ code: string; message: string }> };
  return { status: r.status, code: body.errors[0]!.code, message: body.errors[0]!.message, challenge: r.headers.get('www-authenticate') };
}

test('auth off, rules as an allow-list: allowed repositories pull, the rest are DENIED naming the rule, and never fetched', async () => {
  hub.resetLog();
  const ok = await skopeoCopy(`${pt.host}/library/app:v1`, 'dir', { tlsVerify: false });
  try {
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal((await readDirLayout(ok.path)).manifestDigest, app.manifestDigest);
  } finally {
    await ok.cleanup();
  }
  const no = await skopeoCopy(`${pt.host}/team/app:v1`, 'dir', { tlsVerify: false });
  await no.cleanup();
  assert.notEqual(no.code, 0);
  assert.match(no.stderr, /denied: pull of docker\.io\/team\/app denied: no rule matches \(denied by default\)/);
  assert.deepEqual(await errorOf(`${pt.url}/v2/blocked/x/manifests/v1`), {
    status: 403,
    code: 'DENIED',
    message: 'pull of docker.io/blocked/x denied: rules[1] ("docker.io/blocked/**") does not allow it to anonymous clients',
    challenge: null,
  });
  const q = await errorOf(`${pt.url}/v2/quay.io/org/tool/blobs/sha256:${'a'.repeat(64)}`);
  assert.equal(q.status, 403);
  assert.equal(q.message, 'pull of quay.io/org/tool denied: no rule matches (denied by default)');
  const tags = await errorOf(`${pt.url}/v2/team/app/tags/list`);
  assert.equal(tags.status, 403, 'tag lists are pulls too');
  assert.equal(hub.count({ repo: 'team/app' }), 0, 'nothing fetched for a denied repository');
  assert.equal((await fetch(`${pt.url}/v2/`)).status, 200, 'no authentication while auth is off');
  assert.equal((await fetch(`${pt.url}/token`)).status, 404, 'no token endpoint while auth is off');

  const denied = pt.logs().filter((l) => l.msg === 'denied');
  assert.ok(denied.some((l) => l.reason === 'no rule' && l.repo === 'team/app' && l.rule === 'no rule matches (denied by default)' && l.door === 'mirror' && l.client === '127.0.0.1' && l.action === 'pull'));
  assert.ok(denied.some((l) => l.reason === 'rule' && l.repo === 'blocked/x' && l.rule === 'rules[1] ("docker.io/blocked/**")'));
  const reqLine = pt.requests().find((l) => l.path === '/v2/blocked/x/manifests/v1');
  assert.equal(reqLine?.status, 403);
  assert.equal(metricValue(await pt.metrics(), 'pullthrough_denied_total', { door: 'mirror', reason: 'no rule' }), denied.filter((l) => l.reason === 'no rule').length);
});

/** GET from a chosen loopback source address (a second client). */
function getFrom(localAddress: string, port: number, path: string): Promise<{ status: number; retryAfter?: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, localAddress, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] as string | undefined, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('rate limit: a burst, then 429 TOOMANYREQUESTS with Retry-After; per client address; probes exempt; audited', async () => {
  const dir = await tempDir();
  await writeFile(join(dir.path, 'htpasswd'), (await run('htpasswd', ['-Bbn', 'ci', 'ci-pw'])).stdout);
  const limited = await startPullthrough({
    registries: { 'docker.io': { upstream: hub.url } },
    rateLimit: { requestsPerSecond: 1, burst: 5 },
    auth: { enabled: true, htpasswd: join(dir.path, 'htpasswd') },
  });
  try {
    const port = limited.ports.mirror!;
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await getFrom('127.0.0.1', port, '/v2/')).status);
    assert.deepEqual(statuses, [401, 401, 401, 401, 401], 'within the burst (401: no token yet)');
    const over = await getFrom('127.0.0.1', port, '/v2/');
    assert.equal(over.status, 429);
    assert.equal(over.retryAfter, '1');
    assert.deepEqual(JSON.parse(over.body).errors[0], { code: 'TOOMANYREQUESTS', message: 'too many requests from this client; retry in 1s' });
    assert.equal((await getFrom('127.0.0.1', port, '/token')).status, 429, 'the token endpoint is limited too');
    for (const probe of ['/healthz', '/readyz', '/metrics']) assert.equal((await getFrom('127.0.0.1', port, probe)).status, 200, `${probe} is never limited`);
    assert.equal((await getFrom('127.0.0.2', port, '/v2/')).status, 401, 'another client address has its own bucket');
    await new Promise((r) => setTimeout(r, 1100));
    assert.equal((await getFrom('127.0.0.1', port, '/v2/')).status, 401, 'one request per second refills');
    const audit = limited.logs().filter((l) => l.msg === 'denied' && l.reason === 'rate limit');
    assert.equal(audit.length, 2);
    assert.equal(audit[0]!.client, '127.0.0.1');
    assert.equal(audit[0]!.level, 'warn');
    assert.equal(metricValue(await limited.metrics(), 'pullthrough_denied_total', { reason: 'rate limit' }), 2);

    // The token endpoint reads at most 64 KiB of form.
    await new Promise((r) => setTimeout(r, 1100));
    const big = await fetch(`${limited.url}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `grant_type=password&username=ci&password=${'x'.repeat(70_000)}` });
    assert.equal(big.status, 400);
    assert.match(JSON.stringify(await big.json()), /form larger than 65536 bytes/);
  } finally {
    await limited.cleanup();
    await dir.cleanup();
  }
});

test('start-up refuses a non-bcrypt htpasswd entry and a token secret file others can read, naming the key', async () => {
  await inTempDir(async (dir) => {
    const htpasswd = join(dir.path, 'htpasswd');
    // htpasswd -n prints the entry and an empty line.
    await writeFile(htpasswd, `${(await run('htpasswd', ['-Bbn', 'ok', 'pw'])).stdout.trim()}\n${(await run('htpasswd', ['-mbn', 'legacy', 'pw'])).stdout.trim()}\n`);
    const cfg = join(dir.path, 'c.yml');
    const base = { dataDir: join(dir.path, 'data'), listen: { mirror: '127.0.0.1:0' }, auth: { enabled: true, htpasswd } };
    await writeFile(cfg, stringify(base));
    const r = await run(process.execPath, [MAIN, 'serve', '--config', cfg], { allowFail: true, timeoutMs: 20_000 });
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`auth\\.htpasswd: ${htpasswd.replace(/[/.]/g, '\\$&')} line 2: user legacy: only bcrypt entries are supported \\(create them with htpasswd -B\\)`));
    assert.ok(!r.stdout.includes('"listening"'), 'no listener opened');

    await writeFile(htpasswd, (await run('htpasswd', ['-Bbn', 'ok', 'pw'])).stdout);
    await mkdir(join(dir.path, 'data', 'auth'), { recursive: true });
    await writeFile(join(dir.path, 'data', 'auth', 'token-secret'), 'z'.repeat(64));
    await chmod(join(dir.path, 'data', 'auth', 'token-secret'), 0o644);
    const r2 = await run(process.execPath, [MAIN, 'serve', '--config', cfg], { allowFail: true, timeoutMs: 20_000 });
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /auth\.tokenSecret: .*token-secret is readable by other users \(mode 644\); chmod 600 it/);
  });
});
