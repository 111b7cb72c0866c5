/**
 * The revalidation deadline and offline mode with an upstream chain (issue 18), end to end on
 * real sockets: the first entry (a real docker-registry behind a relay) hangs, and a cached tag
 * is answered within the deadline plus slack; then the same cache, restarted offline with a chain
 * of two canary sockets, opens no connection to either entry and still serves what it holds.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startUpstreamRegistry, type Upstream } from './helpers/upstream-registry.js';
import { startPullthrough, type Pullthrough } from './helpers/pullthrough.js';
import { relay, type Relay } from './helpers/socket-relay.js';
import { freePort, tempDir } from './helpers/process.js';
import { makeImage, pushImage, type PushResult } from './helpers/images.js';
import { errorCode } from './helpers/http.js';
import { startCanary } from './helpers/canary.js';

const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';
const BOUND_MS = 3000;

let up: Upstream;
let gate: Relay;
let gateUrl: string;
let data: { path: string; cleanup: () => Promise<void> };
let pushed: PushResult;
const stops: Array<() => Promise<void>> = [];

before(async () => {
  up = await startUpstreamRegistry();
  const port = await freePort();
  gate = await relay(`tcp:127.0.0.1:${port}=tcp:127.0.0.1:${up.port}`);
  gateUrl = `http://127.0.0.1:${port}`;
  data = await tempDir('pullthrough-chain-deadline-');
  pushed = await pushImage(up, 'team/chain', 'v1', await makeImage({ format: 'oci', seed: 'chain-deadline' }));
});
after(async () => {
  gate?.hang(false);
  for (const s of stops.reverse()) await s().catch(() => {});
  await gate?.close();
  await up?.stop();
  await data?.cleanup();
});

async function getManifest(pt: Pullthrough, ref: string): Promise<{ status: number; digest: string; warning: string; ms: number; body: Buffer }> {
  const t0 = Date.now();
  const res = await fetch(`${pt.url}/v2/team/chain/manifests/${ref}`, { headers: { accept: ACCEPT } });
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, digest: res.headers.get('docker-content-digest') ?? '', warning: res.headers.get('warning') ?? '', ms: Date.now() - t0, body };
}


test('the first entry of a chain hangs: a cached tag is answered within the deadline, stale', async (t) => {
  t.after(() => gate.hang(false));
  const pt = await startPullthrough(
    {
      registries: { 'chain.test': { upstreams: [{ url: gateUrl }, { url: up.url }] } },
      defaultRegistry: 'chain.test',
      cache: { revalidateDeadline: '1s' },
    },
    { dataDir: data.path },
  );
  stops.push(() => pt.stop());
  const first = await getManifest(pt, 'v1');
  assert.equal(first.status, 200);
  assert.equal(first.digest, pushed.manifestDigest);

  gate.hang(true);
  const during = await getManifest(pt, 'v1');
  assert.equal(during.status, 200);
  assert.equal(during.digest, pushed.manifestDigest);
  assert.match(during.warning, /^110 /);
  assert.ok(during.ms < BOUND_MS, `answered after ${during.ms} ms`);
  // By digest the cache answers by itself, hang or not.
  const byDigest = await getManifest(pt, pushed.manifestDigest);
  assert.equal(byDigest.status, 200);
  assert.ok(byDigest.ms < BOUND_MS, `by digest after ${byDigest.ms} ms`);
  gate.hang(false);
  await pt.stop();
});

test('offline with a chain: no connection to any entry; cached answers served, misses 503 naming offline mode', async () => {
  const a = await startCanary();
  const b = await startCanary();
  stops.push(() => a.close(), () => b.close());
  const pt = await startPullthrough(
    { registries: { 'chain.test': { upstreams: [{ url: a.url }, { url: b.url, tags: true }], offline: true } }, defaultRegistry: 'chain.test' },
    { dataDir: data.path },
  );
  stops.push(() => pt.stop());
  const cached = await getManifest(pt, 'v1');
  assert.equal(cached.status, 200);
  assert.equal(cached.digest, pushed.manifestDigest);
  assert.match(cached.warning, /^110 /);
  const miss = await getManifest(pt, 'v2');
  assert.equal(miss.status, 503);
  assert.equal(errorCode(miss.body), 'UNAVAILABLE');
  assert.match(miss.body.toString(), /offline mode/);
  // Health probes and everything else stay off too: give them a moment to show up.
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(a.connections() + b.connections(), 0);
  await pt.stop();
});
