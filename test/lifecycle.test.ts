/**
 * Process lifecycle: a kill -9 in the middle of a download never leads to a partial blob being
 * served, and SIGTERM lets in-flight responses finish before exiting.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, access } from 'node:fs/promises';
import { join } from 'node:path';
import { startFaultUpstream, randomBlob } from './helpers/fault-upstream.js';
import { startPullthrough, metricValue } from './helpers/pullthrough.js';
import { tempDir } from './helpers/process.js';

const sha = (b: Buffer): string => 'sha256:' + createHash('sha256').update(b).digest('hex');

test('kill -9 mid-download: the partial spool is discarded at restart and the blob is fetched whole', async () => {
  const up = await startFaultUpstream();
  const dir = await tempDir();
  const config = { registries: { 'docker.io': { upstream: up.url } } };
  try {
    const data = randomBlob(4 << 20);
    let release!: () => void;
    const digest = up.addBlob(data, { kind: 'stall', after: 1 << 20, release: new Promise<void>((r) => (release = r)) });
    const pt = await startPullthrough(config, { dataDir: dir.path });
    const res = await fetch(`${pt.url}/v2/team/app/blobs/${digest}`);
    const reader = res.body!.getReader();
    await reader.read();
    const spool = join(dir.path, 'spool');
    assert.equal((await readdir(spool)).length, 1, 'a partial download sits in the spool');
    await pt.kill9();
    await reader.cancel().catch(() => {});
    release();

    const again = await startPullthrough(config, { dataDir: dir.path });
    try {
      assert.deepEqual(await readdir(spool), [], 'spool cleaned at start');
      const blobFile = join(dir.path, 'blobs', 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7));
      await assert.rejects(access(blobFile), 'no partial blob was committed');
      up.setBlobBehaviour(digest, { kind: 'ok' });
      const body = Buffer.from(await (await fetch(`${again.url}/v2/team/app/blobs/${digest}`)).arrayBuffer());
      assert.equal(sha(body), digest);
    } finally {
      await again.cleanup();
    }
  } finally {
    await up.close();
    await dir.cleanup();
  }
});

test('SIGTERM drains: a download in progress completes, new connections are refused, exit 0', async () => {
  const up = await startFaultUpstream();
  const pt = await startPullthrough({ registries: { 'docker.io': { upstream: up.url } } });
  try {
    const data = randomBlob(2 << 20);
    let release!: () => void;
    const digest = up.addBlob(data, { kind: 'stall', after: 256 << 10, release: new Promise<void>((r) => (release = r)) });
    const res = await fetch(`${pt.url}/v2/team/app/blobs/${digest}`);
    const body = res.arrayBuffer();
    process.kill(pt.proc.pid, 'SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    await assert.rejects(fetch(`${pt.url}/v2/`, { headers: { connection: 'close' } }), 'no new connections while draining');
    assert.equal(pt.proc.child.exitCode, null, 'still running while a response is in flight');
    release();
    assert.equal(sha(Buffer.from(await body)), digest, 'the in-flight response completed');
    assert.equal(await pt.proc.exited, 0);
    assert.ok(pt.logs().some((l) => l.msg === 'shutting down'));
  } finally {
    await pt.cleanup();
    await up.close();
  }
});

test("Docker Hub's ratelimit-remaining header becomes a gauge", async () => {
  const up = await startFaultUpstream();
  const pt = await startPullthrough({ registries: { 'docker.io': { upstream: up.url } } });
  try {
    up.addManifest('library/app', 'v1', Buffer.from('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}'), 'application/vnd.oci.image.manifest.v1+json');
    assert.equal((await fetch(`${pt.url}/v2/app/manifests/v1`)).status, 200);
    assert.equal(metricValue(await pt.metrics(), 'pullthrough_upstream_ratelimit_remaining', { registry: 'docker.io' }), 76);
  } finally {
    await pt.cleanup();
    await up.close();
  }
});
