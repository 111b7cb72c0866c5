/**
 * Cached blobs served from S3 (s3rver) to clients that go away in the middle: pullthrough must
 * drop its S3 connection with them (a half-read response left open would hold s3rver's side
 * forever), and later downloads must still be whole. Connections are counted from /proc, as the
 * kernel sees them, not from pullthrough's own bookkeeping.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { readdir, readFile, readlink } from 'node:fs/promises';
import { startUpstreamRegistry } from '../helpers/upstream-registry.js';
import { makeImage, pushImage } from '../helpers/images.js';
import { startRedis } from '../helpers/redis-server.js';
import { startS3rver } from '../helpers/s3-server.js';
import { pull, redisMetadata, s3Storage, settled, startReplicas, until } from '../helpers/replicas.js';

/** TCP connections of process `pid` to 127.0.0.1:`port`, by state (01 = established). */
async function connectionsTo(pid: number, port: number): Promise<{ established: number; other: number }> {
  const inodes = new Set<string>();
  for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [])) {
    const m = /^socket:\[(\d+)\]$/.exec(await readlink(`/proc/${pid}/fd/${fd}`).catch(() => ''));
    if (m) inodes.add(m[1]!);
  }
  const out = { established: 0, other: 0 };
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const file of ['tcp', 'tcp6']) {
    const text = await readFile(`/proc/${pid}/net/${file}`, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || !inodes.has(f[9]!) || !f[2]!.endsWith(`:${hexPort}`)) continue;
      if (f[3] === '01') out.established++;
      else out.other++;
    }
  }
  return out;
}

/** GET `url`, reading up to `readBytes` of the body, then going away. */
function abandonAfter(url: string, readBytes: number, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      let got = 0;
      res.on('data', (c: Buffer) => {
        got += c.length;
        if (got >= readBytes) {
          res.pause();
          req.destroy();
          resolve(res.statusCode!);
        }
      });
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
    req.end();
  });
}

async function sha256Of(url: string, headers: Record<string, string> = {}): Promise<{ status: number; digest: string; size: number }> {
  const res = await fetch(url, { headers });
  const h = createHash('sha256');
  let size = 0;
  for await (const c of res.body!) {
    h.update(c);
    size += c.length;
  }
  return { status: res.status, digest: `sha256:${h.digest('hex')}`, size };
}

test('clients going away mid-blob (S3 storage): no S3 connection is left open, later downloads are whole', async (t) => {
  const [up, redis, s3] = await Promise.all([startUpstreamRegistry(), startRedis(), startS3rver()]);
  t.after(async () => {
    await Promise.all([up.stop(), redis.stop(), s3.stop()]);
  });
  const image = await makeImage({ format: 'oci', seed: 's3-downloads', layers: 1, layerSize: [24 << 20] });
  const pushed = await pushImage(up, 'team/big', 'v1', image);
  const [pt] = await startReplicas(1, {
    registries: { 'up.test': { upstream: up.url } },
    defaultRegistry: 'up.test',
    storage: s3Storage(s3),
    metadata: redisMetadata(redis),
  });
  t.after(() => pt!.cleanup());
  await pull(pt!, 'team/big', pushed);
  await settled([pt!]);
  const layer = pushed.blobs.reduce((a, b) => (b.size > a.size ? b : a));
  const url = `${pt!.url}/v2/team/big/blobs/${layer.digest}`;

  // 16 clients at once, some asking for a range, each gone after 1 byte to 4 MiB of 24.
  const statuses = await Promise.all(
    Array.from({ length: 16 }, (_, i) => abandonAfter(url, [1, 300_000, 4 << 20][i % 3]!, i % 2 ? { range: `bytes=${i * 1000}-` } : {})),
  );
  assert.deepEqual([...new Set(statuses)].sort(), [200, 206]);
  const aborted = () => pt!.requests().filter((l) => l.kind === 'blob' && l.cache === 'hit' && l.aborted === true).length;
  await until('16 aborted downloads logged', () => aborted() >= 16, 10_000);

  // What stays open to s3rver is what a keep-alive pool keeps, not one per abandoned download.
  await until('abandoned S3 responses closed', async () => (await connectionsTo(pt!.proc.pid, s3.port)).established <= 2, 5_000).catch(async (err: Error) => {
    throw new Error(`${err.message}: ${JSON.stringify(await connectionsTo(pt!.proc.pid, s3.port))}`);
  });

  const full = await sha256Of(url);
  assert.deepEqual(full, { status: 200, digest: layer.digest, size: layer.size });
  const tail = await fetch(url, { headers: { range: `bytes=${layer.size - 100}-` } });
  assert.equal(tail.status, 206);
  assert.equal(tail.headers.get('content-range'), `bytes ${layer.size - 100}-${layer.size - 1}/${layer.size}`);
  assert.equal(Buffer.from(await tail.arrayBuffer()).length, 100);

  // Idle connections are let go too (ours after 4 s, the SDK's when s3rver closes them after 5 s).
  await until('no connection to s3rver left', async () => (await connectionsTo(pt!.proc.pid, s3.port)).established === 0, 15_000);
});
