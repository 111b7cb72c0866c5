/**
 * Several pullthrough processes sharing one redis-server and one s3rver bucket, as replicas behind
 * a load balancer share them; and a check that every object in a blob store is what its key says.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { S3BlobStore } from '../../src/storage/s3-blob-store.js';
import { FsBlobStore } from '../../src/storage/fs-blob-store.js';
import type { BlobStore } from '../../src/storage/blob-store.js';
import { digestOfBlobKey } from '../../src/storage/keys.js';
import { metricValue, startPullthrough, type Pullthrough, type StartOptions } from './pullthrough.js';
import type { RedisHandle } from './redis-server.js';
import type { S3rverHandle } from './s3-server.js';
import { readDirLayout, skopeoCopy } from './clients.js';
import type { PushResult } from './images.js';
import type { Upstream } from './upstream-registry.js';

/** The `storage:` section for a shared s3rver bucket. */
export function s3Storage(s3: S3rverHandle, prefix = 'cache'): Record<string, unknown> {
  return {
    driver: 's3',
    bucket: s3.bucket,
    endpoint: s3.endpoint,
    forcePathStyle: true,
    prefix,
    accessKeyId: s3.accessKeyId,
    secretAccessKey: s3.secretAccessKey,
  };
}

/** The `metadata:` section for a shared Redis. */
export function redisMetadata(redis: RedisHandle, keyPrefix = 'pt:'): Record<string, unknown> {
  return { driver: 'redis', url: redis.url, keyPrefix, commandTimeout: '1s' };
}

/**
 * Starts `n` pullthrough processes with the same `config` (each its own dataDir and port).
 * On failure, the ones already started are stopped.
 */
export async function startReplicas(n: number, config: Record<string, unknown>, opts: StartOptions = {}): Promise<Pullthrough[]> {
  const started = await Promise.allSettled(Array.from({ length: n }, () => startPullthrough(config, opts)));
  const ok = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = started.find((s) => s.status === 'rejected');
  if (failed) {
    await Promise.all(ok.map((p) => p.cleanup()));
    throw failed.reason;
  }
  return ok;
}

/** A BlobStore on the same s3rver bucket and prefix the replicas use, to look at what they stored. */
export function openS3Store(s3: S3rverHandle, prefix = 'cache'): S3BlobStore {
  return new S3BlobStore({ bucket: s3.bucket, endpoint: s3.endpoint, forcePathStyle: true, prefix, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey });
}

/** The filesystem BlobStore of one pullthrough (storage root `<dataDir>/blobs`). */
export function openFsStore(pt: Pullthrough): FsBlobStore {
  return new FsBlobStore(`${pt.dataDir}/blobs`);
}

/** Digests of every blob in the store. */
export async function storedDigests(store: BlobStore): Promise<Set<string>> {
  const out = new Set<string>();
  for await (const e of store.list()) {
    const d = digestOfBlobKey(e.key);
    if (d) out.add(d);
  }
  return out;
}

/**
 * Reads every blob in the store and hashes it.
 * @returns the keys whose content does not hash to the digest in their name (should be none).
 */
export async function corruptBlobs(store: BlobStore): Promise<string[]> {
  const bad: string[] = [];
  for await (const e of store.list()) {
    const d = digestOfBlobKey(e.key);
    if (!d) continue;
    const h = createHash(d.slice(0, d.indexOf(':')));
    for await (const c of await store.read(e.key)) h.update(c as Buffer);
    if (`${d.slice(0, d.indexOf(':'))}:${h.digest('hex')}` !== d) bad.push(e.key);
  }
  return bad;
}

/**
 * Waits until no replica has a blob download in progress. A client gets a blob's last byte
 * before the download is committed to storage; a test that breaks storage next waits for this.
 */
export async function settled(replicas: Pullthrough[]): Promise<void> {
  await until('downloads committed', async () => {
    const texts = await Promise.all(replicas.filter((r) => r.proc.child.exitCode === null && r.proc.child.signalCode === null).map((r) => r.metrics()));
    return texts.every((m) => metricValue(m, 'pullthrough_blob_fills_in_flight') === 0);
  });
}

/** skopeo-pulls `repo:v1` through `pt` and checks every digest against what was pushed. */
export async function pull(pt: Pullthrough, repo: string, pushed: PushResult): Promise<void> {
  const r = await skopeoCopy(`${pt.host}/${repo}:v1`, 'dir', { tlsVerify: false });
  try {
    assert.equal(r.code, 0, `pull of ${repo} via ${pt.host}: ${r.stderr.slice(-2000)}`);
    const layout = await readDirLayout(r.path);
    assert.equal(layout.manifestDigest, pushed.manifestDigest);
    assert.deepEqual(layout.blobs.map((b) => b.digest).sort(), pushed.blobs.map((b) => b.digest).sort());
  } finally {
    await r.cleanup();
  }
}

/** The upstream's blob requests and the replicas' warnings, blob requests and evictions, for failure messages. */
export function explain(up: Upstream, replicas: Pullthrough[]): string {
  const ups = up.requests().filter((r) => r.kind === 'blob').map((r) => `${r.method} ${r.pathname}`);
  const logs = replicas.map((r, i) =>
    r
      .logs()
      .filter((l) => l.level !== 'info' || (l.msg === 'request' && l.kind === 'blob') || l.msg === 'evicted blob')
      .slice(-40)
      .map((l) => `[${i}] ${JSON.stringify(l)}`),
  );
  return `${ups.join('\n')}\n${logs.flat().join('\n')}`;
}

/** Polls `fn` until it returns true (at most `timeoutMs`). */
export async function until(what: string, fn: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
