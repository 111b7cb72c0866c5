/**
 * cache.revalidateDeadline end to end (issue 18): a real docker-registry behind a socket relay
 * (test/helpers/socket-relay.ts) that is switched to hang: it accepts connections and answers
 * nothing, then answers late once switched back. A cached tag must be answered within the
 * deadline (1 s here; the bound asserted is 3 s, the deadline plus generous slack on a loaded
 * machine), and the revalidation that went on behind it must update the record once the upstream
 * answers, without another client request.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startUpstreamRegistry, type Upstream } from './helpers/upstream-registry.js';
import { startPullthrough, metricValue, type Pullthrough } from './helpers/pullthrough.js';
import { relay, type Relay } from './helpers/socket-relay.js';
import { freePort } from './helpers/process.js';
import { makeImage, pushImage } from './helpers/images.js';

const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';
/** The deadline plus slack for a loaded 2-core machine: what "within the deadline" is held to. */
const BOUND_MS = 3000;

let up: Upstream;
let gate: Relay;
let pt: Pullthrough;

before(async () => {
  up = await startUpstreamRegistry();
  const port = await freePort();
  gate = await relay(`tcp:127.0.0.1:${port}=tcp:127.0.0.1:${up.port}`);
  pt = await startPullthrough({
    registries: { 'slow.test': { upstream: `http://127.0.0.1:${port}` } },
    defaultRegistry: 'slow.test',
    cache: { revalidateDeadline: '1s' },
  });
});
after(async () => {
  gate?.hang(false);
  await pt?.cleanup();
  await gate?.close();
  await up?.stop();
});

async function getManifest(repo: string, tag: string): Promise<{ status: number; digest: string; warning: string; ms: number }> {
  const t0 = Date.now();
  const res = await fetch(`${pt.url}/v2/${repo}/manifests/${tag}`, { headers: { accept: ACCEPT } });
  await res.arrayBuffer();
  return { status: res.status, digest: res.headers.get('docker-content-digest') ?? '', warning: res.headers.get('warning') ?? '', ms: Date.now() - t0 };
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('upstream hangs: the cached tag is answered within the deadline, stale; the record is refreshed once the upstream answers', async (t) => {
  t.after(() => gate.hang(false));
  const v1 = await pushImage(up, 'team/swr', 'v1', await makeImage({ format: 'oci', seed: 'swr' }));
  const first = await getManifest('team/swr', 'v1');
  assert.equal(first.status, 200);
  assert.equal(first.digest, v1.manifestDigest);

  // The tag moves upstream (pushed straight to the registry), then the upstream hangs.
  const v2 = await pushImage(up, 'team/swr', 'v1', await makeImage({ format: 'oci', seed: 'swr', version: 2 }));
  assert.notEqual(v2.manifestDigest, v1.manifestDigest);
  up.resetLog();
  gate.hang(true);
  const during = await getManifest('team/swr', 'v1');
  assert.equal(during.status, 200);
  assert.equal(during.digest, v1.manifestDigest, 'the cached digest');
  assert.match(during.warning, /^110 /);
  assert.ok(during.ms < BOUND_MS, `answered after ${during.ms} ms`);
  // The request log line is written as the response ends: wait for it.
  await until('the request log line', () => pt.requests().some((l) => l.path === '/v2/team/swr/manifests/v1' && l.cache === 'stale'));
  const line = pt.requests().filter((l) => l.path === '/v2/team/swr/manifests/v1' && l.cache === 'stale')[0];
  assert.match(String(line?.stale), /revalidation exceeded 1 s/);
  assert.equal(up.count({ repo: 'team/swr', kind: 'manifest' }), 0, 'nothing reached the registry while it hung');

  // The upstream answers again: the revalidation that was waiting gets its answer and updates
  // the record, with no client request. HEAD, then GET of the new manifest.
  gate.hang(false);
  await until('the background revalidation', () => up.count({ repo: 'team/swr', kind: 'manifest', method: 'GET' }) >= 1);
  await new Promise((r) => setTimeout(r, 300)); // the record is written just after the GET's answer
  // Proof that the record changed: hang again, and the stale answer is now the new digest.
  gate.hang(true);
  const after = await getManifest('team/swr', 'v1');
  gate.hang(false);
  assert.equal(after.status, 200);
  assert.equal(after.digest, v2.manifestDigest, 'the record was refreshed in the background');
  assert.ok(after.ms < BOUND_MS, `answered after ${after.ms} ms`);
  assert.ok(metricValue(await pt.metrics(), 'pullthrough_stale_answers_total', { registry: 'slow.test', reason: 'deadline' }) >= 2);
});

test('requests during a hang share one revalidation: eight clients, one upstream HEAD, all answered in time', async (t) => {
  t.after(() => gate.hang(false));
  const img = await pushImage(up, 'team/swr8', 'v1', await makeImage({ format: 'oci', seed: 'swr8' }));
  assert.equal((await getManifest('team/swr8', 'v1')).digest, img.manifestDigest);
  up.resetLog();
  gate.hang(true);
  const all = await Promise.all(Array.from({ length: 8 }, () => getManifest('team/swr8', 'v1')));
  for (const r of all) {
    assert.equal(r.status, 200);
    assert.equal(r.digest, img.manifestDigest);
    assert.ok(r.ms < BOUND_MS, `answered after ${r.ms} ms`);
  }
  gate.hang(false);
  await until('the revalidation', () => up.count({ repo: 'team/swr8', kind: 'manifest', method: 'HEAD' }) >= 1);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(up.count({ repo: 'team/swr8', kind: 'manifest', method: 'HEAD' }), 1, 'one revalidation for all eight');
  assert.equal(up.count({ repo: 'team/swr8', kind: 'manifest', method: 'GET' }), 0, 'the digest did not change: no GET');
});

test('a tag never cached waits for the upstream: nothing to serve at the deadline', async (t) => {
  t.after(() => gate.hang(false));
  const img = await pushImage(up, 'team/cold', 'v1', await makeImage({ format: 'oci', seed: 'swr-cold' }));
  gate.hang(true);
  const pending = getManifest('team/cold', 'v1');
  await new Promise((r) => setTimeout(r, 1500));
  gate.hang(false);
  const r = await pending;
  assert.equal(r.status, 200);
  assert.equal(r.digest, img.manifestDigest);
  assert.ok(r.ms >= 1400, `it waited for the upstream (${r.ms} ms)`);
  assert.equal(r.warning, '');
});

test('the tag list is answered from its record within the deadline while the upstream hangs', async (t) => {
  t.after(() => gate.hang(false));
  const img = await makeImage({ format: 'oci', seed: 'swr-tags' });
  for (const t of ['b', 'a', 'c']) await pushImage(up, 'team/tags', t, img);
  const url = `${pt.url}/v2/team/tags/tags/list`;
  const first = await fetch(url);
  assert.deepEqual(((await first.json()) as { tags: string[] }).tags, ['a', 'b', 'c']);
  gate.hang(true);
  const t0 = Date.now();
  const res = await fetch(url);
  const ms = Date.now() - t0;
  gate.hang(false);
  assert.equal(res.status, 200);
  assert.deepEqual(((await res.json()) as { tags: string[] }).tags, ['a', 'b', 'c']);
  assert.match(res.headers.get('warning') ?? '', /^110 /);
  assert.ok(ms < BOUND_MS, `answered after ${ms} ms`);
});
