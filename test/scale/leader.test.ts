/**
 * The replica holding a blob's download lease dies, loses the lease, or loses Redis mid-blob. The
 * fault upstream holds each download after its first megabyte (`stall`) so the moment is certain.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { startFaultUpstream, randomBlob } from '../helpers/fault-upstream.js';
import { startRedis } from '../helpers/redis-server.js';
import { startS3rver } from '../helpers/s3-server.js';
import { run } from '../helpers/process.js';
import { metricValue, startPullthrough, type Pullthrough } from '../helpers/pullthrough.js';
import { corruptBlobs, openS3Store, redisMetadata, s3Storage, startReplicas, until } from '../helpers/replicas.js';

const sha = (b: Buffer): string => 'sha256:' + createHash('sha256').update(b).digest('hex');

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** GETs a blob; resolves with its bytes, or with the error that cut the transfer. */
async function getBlob(pt: Pullthrough, digest: string): Promise<{ status: number; body?: Buffer; error?: Error }> {
  try {
    const res = await fetch(`${pt.url}/v2/team/app/blobs/${digest}`);
    try {
      return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
    } catch (err) {
      return { status: res.status, error: err as Error };
    }
  } catch (err) {
    return { status: 0, error: err as Error };
  }
}

async function sum(replicas: Pullthrough[], name: string, labels: Record<string, string> = {}): Promise<number> {
  let n = 0;
  for (const r of replicas) n += metricValue(await r.metrics(), name, labels);
  return n;
}

test('leader killed mid-blob: its lease expires, another replica downloads, waiting clients complete, a retry works', async (t) => {
  const [up, redis, s3] = await Promise.all([startFaultUpstream(), startRedis(), startS3rver()]);
  t.after(async () => {
    await Promise.all([up.close(), redis.stop(), s3.stop()]);
  });
  const config = {
    registries: { 'fault.test': { upstream: up.url } },
    defaultRegistry: 'fault.test',
    storage: s3Storage(s3),
    metadata: redisMetadata(redis),
    cache: { fillLease: '2s' },
  };
  const [a, b, c] = (await startReplicas(3, config)) as [Pullthrough, Pullthrough, Pullthrough];
  t.after(async () => {
    await Promise.all([a, b, c].map((r) => r.cleanup()));
  });

  const data = randomBlob(3 << 20);
  const stall = deferred();
  const digest = up.addBlob(data, { kind: 'stall', after: 1 << 20, release: stall.promise });
  const path = `GET /v2/team/app/blobs/${digest}`;

  const onA = getBlob(a, digest);
  await until('replica A downloads', () => up.count(path) === 1);
  const onB = getBlob(b, digest);
  const onC = getBlob(c, digest);
  // B and C find A's lease and wait for the blob to land. (Had they not asked yet, they would
  // find the lease all the same until it expires: the outcome below does not depend on this.)
  await new Promise((r) => setTimeout(r, 500));

  up.setBlobBehaviour(digest, { kind: 'ok' });
  await a.kill9();
  const [ra, rb, rc] = await Promise.all([onA, onB, onC]);

  assert.ok(ra.error, "A's client sees a cut transfer, not a clean end");
  assert.notEqual(ra.body && sha(ra.body), digest);
  for (const [name, r] of [['B', rb], ['C', rc]] as const) {
    assert.equal(r.status, 200, `${name}: ${r.error?.message}`);
    assert.equal(sha(r.body!), digest, `${name} got the right bytes`);
  }
  assert.equal(up.count(path), 2, 'the dead leader and the replica that took over');
  const waits = {
    tookOver: await sum([b, c], 'pullthrough_blob_fill_waits_total', { outcome: 'took_over' }),
    landed: await sum([b, c], 'pullthrough_blob_fill_waits_total', { outcome: 'landed' }),
  };
  t.diagnostic(`upstream GETs of the blob: ${up.count(path)}; waits: ${JSON.stringify(waits)}`);
  assert.equal(waits.tookOver, 1);

  // The client of the dead replica retries elsewhere: served from the cache.
  const retry = await getBlob(b, digest);
  assert.equal(sha(retry.body!), digest);
  // The dead replica restarted on its data dir: crash leftovers discarded, the blob served from S3.
  const a2 = await startPullthrough(config, { dataDir: a.dataDir });
  t.after(() => a2.cleanup());
  const fromA2 = await getBlob(a2, digest);
  assert.equal(sha(fromA2.body!), digest);
  assert.equal(up.count(path), 2, 'no further upstream GET');
  await a2.cleanup();

  const store = openS3Store(s3);
  try {
    assert.deepEqual(await corruptBlobs(store), []);
  } finally {
    await store.close();
  }
});

/**
 * One replica (2 s fill lease, S3 + Redis) in the middle of downloading a 3 MiB blob that the
 * upstream holds after its first MiB until `stall` is resolved; `pending` is its client's request.
 */
async function stalledLeader(t: TestContext) {
  const [up, redis, s3] = await Promise.all([startFaultUpstream(), startRedis(), startS3rver()]);
  t.after(async () => {
    await Promise.all([up.close(), redis.stop(), s3.stop()]);
  });
  const pt = await startPullthrough({
    registries: { 'fault.test': { upstream: up.url } },
    defaultRegistry: 'fault.test',
    storage: s3Storage(s3),
    metadata: redisMetadata(redis),
    cache: { fillLease: '2s' },
  });
  t.after(() => pt.cleanup());

  const data = randomBlob(3 << 20);
  const stall = deferred();
  const digest = up.addBlob(data, { kind: 'stall', after: 1 << 20, release: stall.promise });
  const pending = getBlob(pt, digest);
  await until('download started', () => up.count(`GET /v2/team/app/blobs/${digest}`) === 1);
  return { up, redis, pt, digest, stall, pending };
}

test('lease taken by another replica mid-download: the holder finishes for its client and never releases the other lease', async (t) => {
  const { up, redis, pt, digest, stall, pending } = await stalledLeader(t);

  // What another replica does when it finds the lease expired: it takes it with its own token.
  const key = `pt:lock:fill:${digest}`;
  await run('redis-cli', ['-p', String(redis.port), 'set', key, 'another-replica', 'PX', '60000']);
  await until('the holder notices', () => pt.logs().some((l) => l.msg === 'fill lease lost to another replica; finishing this download for its readers'));

  stall.resolve();
  const r = await pending;
  assert.equal(r.status, 200);
  assert.equal(sha(r.body!), digest, 'the client got the whole, right blob');
  assert.equal(metricValue(await pt.metrics(), 'pullthrough_blob_fill_lease_lost_total'), 1);
  const holder = await run('redis-cli', ['-p', String(redis.port), 'get', key]);
  assert.equal(holder.stdout.trim(), 'another-replica', "the other replica's lease is untouched");
  // The download was committed all the same: the next request is a hit.
  await until('blob recorded', async () => (await getBlob(pt, digest)).status === 200 && pt.requests().some((l) => l.cache === 'hit'));
  assert.equal(up.count(`GET /v2/team/app/blobs/${digest}`), 1);
});

test('Redis away while leading: the download goes on and its client gets every byte', async (t) => {
  const { up, redis, pt, digest, stall, pending } = await stalledLeader(t);
  await redis.kill9();
  await until('renewal failed', () => pt.logs().some((l) => l.msg === 'fill lease not renewed; download goes on'));
  stall.resolve();
  const r = await pending;
  assert.equal(r.status, 200);
  assert.equal(sha(r.body!), digest);
  // Its record could not be written: after Redis returns the blob is fetched (and kept) again.
  await until('commit failed', () => pt.logs().some((l) => l.msg === 'blob download failed' && l.reason === 'storage_unavailable'));
  await redis.restart();
  await until('ready again', async () => (await fetch(`${pt.url}/readyz`)).status === 200);
  assert.equal(sha((await getBlob(pt, digest)).body!), digest);
  await until('recorded', async () => {
    await getBlob(pt, digest);
    return pt.requests().some((l) => l.path === `/v2/team/app/blobs/${digest}` && l.cache === 'hit');
  });
  assert.equal(up.count(`GET /v2/team/app/blobs/${digest}`), 2);
});
