/**
 * Failures the real upstream cannot produce, served by a fault upstream on a real socket:
 * wrong bytes for a digest, a connection dying mid-blob, stalls (ranges on in-flight blobs,
 * clients that leave, bodyTimeout), a trickle (fillTimeout), 429/503 answers (stale-if-error), and
 * a slow or hung answer to a push relayed through the TLS door (relayTimeout).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { get as httpGet, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { startFaultUpstream, randomBlob, type FaultUpstream } from './helpers/fault-upstream.js';
import { useFaultMirror } from './helpers/fault-mirror.js';
import { startPullthrough, type Pullthrough } from './helpers/pullthrough.js';
import { errorCode } from './helpers/http.js';

let up: FaultUpstream;
let pt: Pullthrough;
useFaultMirror((m) => ({ up, pt } = m));

const sha = (b: Buffer): string => 'sha256:' + createHash('sha256').update(b).digest('hex');
const blobUrl = (digest: string, repo = 'team/app'): string => `${pt.url}/v2/${repo}/blobs/${digest}`;

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}
/** The client gets its last byte once verified; the commit to storage follows a moment later. */
async function eventuallyExists(path: string): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    if (await exists(path)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}
const blobFile = (digest: string): string => join(pt.dataDir, 'blobs', 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7));

/** Reads a whole response body; rejects if the transfer is cut. */
async function readAll(res: Response): Promise<Buffer> {
  return Buffer.from(await res.arrayBuffer());
}

test('wrong bytes for a digest: the client transfer is aborted, nothing is cached, a later good fetch works', async () => {
  const data = randomBlob(2 << 20);
  const digest = up.addBlob(data, { kind: 'corrupt' });
  const res = await fetch(blobUrl(digest));
  assert.equal(res.status, 200);
  await assert.rejects(readAll(res), 'the body must not end cleanly');
  assert.equal(await exists(blobFile(digest)), false, 'nothing kept');
  const again = await fetch(blobUrl(digest));
  await assert.rejects(readAll(again));
  assert.equal(up.count(`GET /v2/team/app/blobs/${digest}`), 2, 'not served from cache the second time either');
  up.setBlobBehaviour(digest, { kind: 'ok' });
  const good = await readAll(await fetch(blobUrl(digest)));
  assert.equal(sha(good), digest);
  assert.equal(await eventuallyExists(blobFile(digest)), true);
});

test('upstream dies mid-blob: client aborted, nothing cached, a retry succeeds', async () => {
  const data = randomBlob(3 << 20);
  const digest = up.addBlob(data, { kind: 'truncate', after: 1 << 20 });
  const res = await fetch(blobUrl(digest));
  await assert.rejects(readAll(res));
  assert.equal(await exists(blobFile(digest)), false);
  up.setBlobBehaviour(digest, { kind: 'ok' });
  assert.equal(sha(await readAll(await fetch(blobUrl(digest)))), digest);
});

test('an upstream that stalls mid-blob is given up after upstream.bodyTimeout, one that trickles after fillTimeout; nothing cached', async () => {
  const slow = await startPullthrough({ registries: { 'fault.test': { upstream: up.url } }, defaultRegistry: 'fault.test', upstream: { bodyTimeout: '1s', fillTimeout: '3s' } });
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  try {
    const url = (digest: string): string => `${slow.url}/v2/team/app/blobs/${digest}`;
    const file = (digest: string): string => join(slow.dataDir, 'blobs', 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7));
    // Stalls after 1 MiB: no byte for longer than bodyTimeout.
    const stalled = randomBlob(3 << 20);
    const stalledDigest = up.addBlob(stalled, { kind: 'stall', after: 1 << 20, release: released });
    let t0 = Date.now();
    await assert.rejects(readAll(await fetch(url(stalledDigest))));
    assert.ok(Date.now() - t0 < 2500, `given up after ${Date.now() - t0} ms, not at bodyTimeout`);
    // Trickles 64 KiB every 200 ms (~10 s for the blob): never idle for a second, but over fillTimeout.
    const trickled = randomBlob(3 << 20);
    const trickledDigest = up.addBlob(trickled, { kind: 'trickle', bytes: 64 << 10, everyMs: 200 });
    t0 = Date.now();
    await assert.rejects(readAll(await fetch(url(trickledDigest))));
    const took = Date.now() - t0;
    assert.ok(took >= 2500 && took < 8000, `given up after ${took} ms`);
    assert.equal(await exists(file(stalledDigest)), false);
    assert.equal(await exists(file(trickledDigest)), false);
    // Both fetched again in full once the upstream behaves.
    up.setBlobBehaviour(stalledDigest, { kind: 'ok' });
    up.setBlobBehaviour(trickledDigest, { kind: 'ok' });
    assert.equal(sha(await readAll(await fetch(url(stalledDigest)))), stalledDigest);
    assert.equal(sha(await readAll(await fetch(url(trickledDigest)))), trickledDigest);
    assert.equal(await eventuallyExists(file(trickledDigest)), true);
  } finally {
    release();
    await slow.cleanup();
  }
});

test('range reads on a blob still being fetched, and on the cached blob; one upstream GET', async () => {
  const data = randomBlob(4 << 20);
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const digest = up.addBlob(data, { kind: 'stall', after: 1 << 20, release: released });
  const full = fetch(blobUrl(digest)).then(readAll);
  // The first megabyte is in flight; a range inside it is answered before the upstream resumes.
  let ranged: Response | undefined;
  for (let i = 0; i < 50 && !ranged; i++) {
    const r = await fetch(blobUrl(digest), { headers: { range: 'bytes=1000-1999' } });
    if (r.status === 206) ranged = r;
    else await new Promise((res) => setTimeout(res, 20));
  }
  assert.ok(ranged, 'got a 206');
  assert.equal(ranged.headers.get('content-range'), `bytes 1000-1999/${data.length}`);
  assert.deepEqual(await readAll(ranged), data.subarray(1000, 2000));
  // A range at the end must wait for the rest and for verification.
  const tail = fetch(blobUrl(digest), { headers: { range: 'bytes=-10' } }).then(async (r) => ({ status: r.status, body: await readAll(r) }));
  let tailDone = false;
  void tail.then(() => (tailDone = true));
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(tailDone, false, 'the end is not served before the download completes');
  release();
  assert.equal(sha(await full), digest);
  const t = await tail;
  assert.equal(t.status, 206);
  assert.deepEqual(t.body, data.subarray(data.length - 10));
  const cachedRange = await fetch(blobUrl(digest), { headers: { range: 'bytes=0-0' } });
  assert.equal(cachedRange.status, 206);
  assert.deepEqual(await readAll(cachedRange), data.subarray(0, 1));
  assert.equal(up.count(`GET /v2/team/app/blobs/${digest}`), 1);
});

test('a client that disconnects does not cancel the download', async () => {
  const data = randomBlob(3 << 20);
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const digest = up.addBlob(data, { kind: 'stall', after: 512 << 10, release: released });
  const ac = new AbortController();
  const res = await fetch(blobUrl(digest), { signal: ac.signal });
  const reader = res.body!.getReader();
  await reader.read();
  ac.abort();
  release();
  assert.equal(await eventuallyExists(blobFile(digest)), true, 'the download finished and was committed');
  assert.equal(sha(await readAll(await fetch(blobUrl(digest)))), digest);
  assert.equal(up.count(`GET /v2/team/app/blobs/${digest}`), 1);
});

test('a client that stops reading holds the download only so long: the blob is committed while it still waits', async () => {
  // Larger than the loopback socket's buffers, so the client's stop reaches the download, which
  // keeps pace with its fastest reader only while that reader is within reach (cache/spool.ts).
  const data = randomBlob(48 << 20);
  const digest = up.addBlob(data);
  const res = await new Promise<IncomingMessage>((resolve, reject) => httpGet(blobUrl(digest), resolve).on('error', reject));
  try {
    assert.equal(res.statusCode, 200);
    res.pause();
    assert.equal(await eventuallyExists(blobFile(digest)), true, 'the download finished and was committed');
    assert.equal(res.complete, false, 'the client had not read the blob');
    assert.equal(sha(await readAll(await fetch(blobUrl(digest)))), digest);
    assert.equal(up.count(`GET /v2/team/app/blobs/${digest}`), 1);
  } finally {
    res.destroy();
  }
});

test('stale-if-error: 503 and 429 upstream serve the cached manifest with a Warning; uncached tags get the upstream error', async () => {
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(Buffer.from('{}')), size: 2 }, layers: [] }));
  const digest = up.addManifest('team/stale', 'v1', manifest, 'application/vnd.oci.image.manifest.v1+json');
  const url = `${pt.url}/v2/team/stale/manifests/v1`;
  const first = await fetch(url);
  assert.equal(first.status, 200);
  assert.equal(first.headers.get('docker-content-digest'), digest);
  for (const status of [503, 429]) {
    up.manifestStatus = status;
    const r = await fetch(url);
    assert.equal(r.status, 200, `stale on ${status}`);
    assert.match(r.headers.get('warning') ?? '', /110/);
    assert.deepEqual(await readAll(r), manifest);
    const h = await fetch(url, { method: 'HEAD' });
    assert.equal(h.status, 200);
    assert.equal(h.headers.get('docker-content-digest'), digest);
  }
  const log = pt.requests().filter((l) => l.path === '/v2/team/stale/manifests/v1' && l.cache === 'stale');
  assert.ok(log.length >= 2 && log.every((l) => typeof l.stale === 'string'), 'the log says stale and why');
  assert.ok(pt.logs().some((l) => l.msg === 'serving stale manifest'));
  up.manifestStatus = 429;
  const fresh = await fetch(`${pt.url}/v2/team/other/manifests/v1`);
  assert.equal(fresh.status, 429);
  assert.equal(fresh.headers.get('retry-after'), '30');
  const body = await readAll(fresh);
  assert.equal(errorCode(body), 'TOOMANYREQUESTS');
  assert.match(body.toString(), /fault upstream says TOOMANYREQUESTS/, "upstream's message is passed on");
  up.manifestStatus = 503;
  const down = await fetch(`${pt.url}/v2/team/other/manifests/v1`);
  assert.equal(down.status, 502);
  assert.equal(errorCode(await readAll(down)), 'UPSTREAM_ERROR');
  up.manifestStatus = undefined;
});

/** A PUT on the TLS door with SNI and Host `registry`, trusting pullthrough's CA; its status and body. */
function tlsPut(port: number, ca: string, registry: string, path: string, body: Buffer, contentType: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port, servername: registry, method: 'PUT', path, ca, agent: false, headers: { host: registry, 'content-type': contentType, 'content-length': String(body.length) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    // Bounds a failing run (a relay that waits far too long) instead of the suite's timeout.
    req.setTimeout(60_000, () => req.destroy(new Error('no answer from the TLS door within 60 s')));
    req.on('error', reject);
    req.end(body);
  });
}

test('a relayed push waits for its upstream up to upstream.relayTimeout, not fillTimeout; a hung upstream gets 503', async () => {
  const writes = await startFaultUpstream();
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: {}, layers: [] }));
  const digest = sha(manifest);
  // A registry that stores the manifest 2 s after the upload arrived: longer than fillTimeout.
  writes.respond = (method, path) =>
    method === 'PUT' && path === '/v2/team/app/manifests/slow' ? { status: 201, headers: { location: `/v2/team/app/manifests/${digest}`, 'docker-content-digest': digest }, delayMs: 2000 } : undefined;
  const relay = await startPullthrough({
    listen: { mirror: '127.0.0.1:0', tls: '127.0.0.1:0' },
    registries: { 'writes.test': { upstream: writes.url } },
    upstream: { fillTimeout: '1s', relayTimeout: '10s' },
  });
  try {
    const ca = await (await fetch(`${relay.url}/ca.crt`)).text();
    const slow = await tlsPut(relay.ports.tls!, ca, 'writes.test', '/v2/team/app/manifests/slow', manifest, 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(slow.status, 201, `the upstream's answer, not a timeout: ${slow.body.toString()}`);
    assert.equal(writes.count('PUT /v2/team/app/manifests/slow'), 1);
    // An upstream that never answers: given up after relayTimeout, a clear OCI error.
    writes.manifestStatus = 0;
    const hung = await tlsPut(relay.ports.tls!, ca, 'writes.test', '/v2/team/app/manifests/hung', manifest, 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(hung.status, 503);
    assert.equal(errorCode(hung.body), 'UNAVAILABLE');
    assert.match(hung.body.toString(), /timed out waiting for response headers/);
    assert.equal(writes.count('PUT /v2/team/app/manifests/hung'), 1);
    assert.ok(relay.requests().some((l) => l.door === 'tls' && l.method === 'PUT' && l.status === 201), 'the slow push went through the TLS door');
  } finally {
    writes.manifestStatus = undefined;
    await relay.cleanup();
    await writes.close();
  }
});
