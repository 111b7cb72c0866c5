/**
 * Upstream chains end to end (docs/upstream-chains.md): skopeo pulls through pullthrough's mirror
 * door from a registry whose upstreams are two real docker-registries (a fault upstream on a
 * socket only for the 429 and as a canary), counting requests at the registries' own logs.
 */
import { test, before, after } from 'node:test';
import { request as httpsRequest } from 'node:https';
import assert from 'node:assert/strict';
import { startUpstreamRegistry, type Upstream } from './helpers/upstream-registry.js';
import { makeImage, pushImage, type PushResult } from './helpers/images.js';
import { skopeoCopy, readDirLayout } from './helpers/clients.js';
import { startPullthrough, metricValue, type Pullthrough } from './helpers/pullthrough.js';
import { startFaultUpstream } from './helpers/fault-upstream.js';
import { freePort } from './helpers/process.js';
import { errorCode } from './helpers/http.js';

let first: Upstream; // the registry itself
let second: Upstream; // a mirror of it

const HEALTH = { failures: 3, coolDown: '1s', probeInterval: '1s', probeTimeout: '1s' };

before(async () => {
  [first, second] = await Promise.all([startUpstreamRegistry(), startUpstreamRegistry()]);
});

after(async () => {
  await Promise.all([first?.stop(), second?.stop()]);
});

/** Pushes a fresh image to `registries` under repo:tag. */
async function publish(seed: string, repo: string, tag: string, registries: Upstream[]): Promise<PushResult> {
  const image = await makeImage({ format: 'oci', seed, layers: 3, layerSize: 300_000 });
  let pushed: PushResult | undefined;
  for (const r of registries) pushed = await pushImage(r, repo, tag, image);
  return pushed!;
}

async function pull(pt: Pullthrough, ref: string) {
  const r = await skopeoCopy(`${pt.host}/${ref}`, 'dir', { tlsVerify: false });
  try {
    return { code: r.code, stderr: r.stderr, layout: r.code === 0 ? await readDirLayout(r.path) : undefined };
  } finally {
    await r.cleanup();
  }
}

function assertContent(got: Awaited<ReturnType<typeof pull>>, pushed: PushResult): void {
  assert.equal(got.code, 0, `pull failed:\n${got.stderr}`);
  assert.equal(got.layout!.manifestDigest, pushed.manifestDigest);
  const m = pushed.manifests[0]!;
  assert.deepEqual(got.layout!.blobs.map((b) => b.digest).sort(), [m.configDigest, ...m.layers.map((l) => l.digest)].sort());
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('the first entry is down: a cold pull completes from the second (trusted for tags) with the right digests; it is used again after its probe', async () => {
  const pushed = await publish('chain-e2e-down', 'team/app', 'v1', [first, second]);
  const pt = await startPullthrough({
    registries: { 'chain.test': { upstreams: [{ url: first.url }, { url: second.url, tags: true }] } },
    upstream: { health: HEALTH },
  });
  try {
    const start = await pt.metrics();
    for (const u of [first, second]) assert.equal(metricValue(start, 'pullthrough_upstream_up', { registry: 'chain.test', upstream: u.url }), 1, `${u.url} is up from the start`);
    await first.down();
    second.resetLog();
    assertContent(await pull(pt, 'chain.test/team/app:v1'), pushed);
    for (const b of pushed.blobs) assert.equal(second.count({ method: 'GET', kind: 'blob', pathIncludes: b.digest }), 1, `${b.digest} from the second entry`);
    const metrics = await pt.metrics();
    assert.equal(metricValue(metrics, 'pullthrough_upstream_up', { registry: 'chain.test', upstream: first.url }), 0, 'the first entry is skipped');
    assert.ok(metricValue(metrics, 'pullthrough_upstream_failovers_total', { registry: 'chain.test', reason: 'unavailable' }) >= 3);
    assert.ok(pt.logs().some((l) => l.level === 'warn' && l.msg === 'upstream skipped' && l.upstream === first.url));

    // It comes back: the probe takes it back, and the next cold pull goes to it again.
    await first.up();
    await until('the first entry taken back', async () => metricValue(await pt.metrics(), 'pullthrough_upstream_up', { registry: 'chain.test', upstream: first.url }) === 1);
    assert.ok(pt.logs().some((l) => l.level === 'warn' && l.msg === 'upstream taken back' && l.upstream === first.url && l.after === 'probe'));
    const next = await publish('chain-e2e-back', 'team/app', 'v2', [first, second]);
    first.resetLog();
    second.resetLog();
    assertContent(await pull(pt, 'chain.test/team/app:v2'), next);
    const fresh = next.blobs.filter((b) => !pushed.blobs.some((p) => p.digest === b.digest));
    for (const b of fresh) assert.equal(first.count({ method: 'GET', kind: 'blob', pathIncludes: b.digest }), 1, `${b.digest} from the first entry again`);
    assert.equal(second.count({ method: 'GET', kind: 'blob' }) + second.count({ kind: 'manifest' }), 0, 'the second entry was not asked');
  } finally {
    await first.up().catch(() => undefined);
    await pt.cleanup();
  }
});

test('the first entry answers 429: a tag only the untrusted second has is not served from it; by digest, the pull completes from the second', async () => {
  const limited = await startFaultUpstream();
  limited.respond = (_m, path) => (path === '/v2/' ? undefined : { status: 429, headers: { 'retry-after': '60', 'content-type': 'application/json' } });
  const pushed = await publish('chain-e2e-429', 'team/limited', 'v1', [second]);
  const pt = await startPullthrough({
    registries: { 'hub.test': { upstreams: [{ url: limited.url }, { url: second.url }] } },
    upstream: { health: HEALTH },
  });
  try {
    second.resetLog();
    const byTag = await pull(pt, 'hub.test/team/limited:v1');
    assert.notEqual(byTag.code, 0, 'the tag is not resolved by the mirror');
    const res = await fetch(`${pt.url}/v2/hub.test/team/limited/manifests/v1`);
    assert.ok(res.status === 429 || res.status === 503, `status ${res.status}`);
    const code = errorCode(Buffer.from(await res.arrayBuffer()));
    assert.ok(code === 'TOOMANYREQUESTS' || code === 'UNAVAILABLE', code);
    assert.equal(second.count({ kind: 'manifest', pathIncludes: '/manifests/v1' }), 0, 'the mirror was never asked for the tag');

    const byDigest = await pull(pt, `hub.test/team/limited@${pushed.manifestDigest}`);
    assertContent(byDigest, pushed);
    for (const b of pushed.blobs) assert.equal(second.count({ method: 'GET', kind: 'blob', pathIncludes: b.digest }), 1);
    assert.equal(limited.log.filter((l) => l !== 'GET /v2/').length, 1, 'the rate-limited entry was asked once, then skipped for its Retry-After');
    const metrics = await pt.metrics();
    assert.equal(metricValue(metrics, 'pullthrough_upstream_up', { registry: 'hub.test', upstream: limited.url }), 0);
    // The tag had nowhere to go (no other entry trusted for tags); the content calls passed the skipped entry by.
    assert.equal(metricValue(metrics, 'pullthrough_upstream_failovers_total', { registry: 'hub.test', reason: 'rate_limited' }), 0);
    assert.ok(metricValue(metrics, 'pullthrough_upstream_failovers_total', { registry: 'hub.test', reason: 'skipped' }) >= pushed.blobs.length);
  } finally {
    await pt.cleanup();
    await limited.close();
  }
});

test('8 concurrent cold pulls during a failover: one upstream GET per blob, counted at both registries', async () => {
  const pushed = await publish('chain-e2e-concurrent', 'team/concurrent', 'v1', [first, second]);
  const down = `http://127.0.0.1:${await freePort()}`;
  const pt = await startPullthrough({
    registries: { 'chain.test': { upstreams: [{ url: down }, { url: second.url, tags: true }, { url: first.url }] } },
    upstream: { health: HEALTH },
  });
  try {
    first.resetLog();
    second.resetLog();
    const pulls = await Promise.all(Array.from({ length: 8 }, () => pull(pt, 'chain.test/team/concurrent:v1')));
    for (const p of pulls) assertContent(p, pushed);
    for (const b of pushed.blobs) {
      const gets = first.count({ method: 'GET', kind: 'blob', pathIncludes: b.digest }) + second.count({ method: 'GET', kind: 'blob', pathIncludes: b.digest });
      assert.equal(gets, 1, `one GET for ${b.digest}`);
    }
  } finally {
    await pt.cleanup();
  }
});

/** A request on the TLS door with SNI and Host `name`, trusting pullthrough's CA: status, headers, body. */
function tlsRequest(port: number, ca: string, name: string, method: string, path: string, body?: Buffer): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port, servername: name, method, path, ca, agent: false, headers: { host: name, ...(body ? { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'content-length': String(body.length) } : {}) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error('no answer from the TLS door within 30 s')));
    req.on('error', reject);
    req.end(body);
  });
}

test('offline: a registry in offline mode opens no connection upstream (a listening canary counts none); a miss is 503 naming offline mode', async () => {
  const canary = await startFaultUpstream();
  const pt = await startPullthrough({
    listen: { mirror: '127.0.0.1:0', tls: '127.0.0.1:0' },
    registries: { 'off.test': { offline: true, upstreams: [{ url: canary.url }, { url: canary.url.replace('127.0.0.1', '127.0.0.2') }] } },
  });
  try {
    const pulled = await pull(pt, 'off.test/team/app:v1');
    assert.notEqual(pulled.code, 0);
    const res = await fetch(`${pt.url}/v2/off.test/team/app/manifests/v1`);
    assert.equal(res.status, 503);
    const body = Buffer.from(await res.arrayBuffer());
    assert.equal(errorCode(body), 'UNAVAILABLE');
    assert.match(body.toString(), /offline mode/);
    const blob = await fetch(`${pt.url}/v2/off.test/team/app/blobs/sha256:${'a'.repeat(64)}`);
    assert.equal(blob.status, 503);
    // The TLS door stands in for the registry: no challenge fetched, no token relayed, no push relayed.
    const ca = await (await fetch(`${pt.url}/ca.crt`)).text();
    const ping = await tlsRequest(pt.ports.tls!, ca, 'off.test', 'GET', '/v2/');
    assert.equal(ping.status, 200, 'no challenge: the upstream would have to be asked for it');
    const token = await tlsRequest(pt.ports.tls!, ca, 'off.test', 'GET', '/v2/_pullthrough/token?service=x&scope=repository:team/app:pull');
    assert.equal(token.status, 200);
    assert.equal((JSON.parse(token.body.toString()) as { token?: string }).token, 'pullthrough-offline');
    const push = await tlsRequest(pt.ports.tls!, ca, 'off.test', 'PUT', '/v2/team/app/manifests/v1', Buffer.from('{}'));
    assert.equal(push.status, 503);
    assert.equal(errorCode(push.body), 'UNAVAILABLE');
    assert.match(push.body.toString(), /offline mode/);
    const tlsPull = await tlsRequest(pt.ports.tls!, ca, 'off.test', 'GET', '/v2/team/app/manifests/v1');
    assert.equal(tlsPull.status, 503);
    assert.equal(canary.log.length, 0, 'no request reached the upstream');
  } finally {
    await pt.cleanup();
    await canary.close();
  }
});
