/**
 * Purge against a download in progress: while a blob of the image is still coming from upstream
 * (a real server on a socket that stalls mid-blob, the one fault a real registry cannot make on
 * demand), a purge is refused with 409 IN_PROGRESS naming the blob, and nothing is deleted; once
 * the download landed the same purge goes through.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { Pullthrough } from '../helpers/pullthrough.js';
import { randomBlob, type FaultUpstream } from '../helpers/fault-upstream.js';
import { useFaultMirror } from '../helpers/fault-mirror.js';
import { until } from '../helpers/replicas.js';

let up: FaultUpstream;
let pt: Pullthrough;
useFaultMirror((m) => ({ up, pt } = m));

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const admin = (path: string, init?: RequestInit): Promise<Response> => fetch(`http://127.0.0.1:${pt.ports.admin}${path}`, init);
const purge = (ref: string): Promise<Response> => admin('/api/v1/purge', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ref }) });

test('a purge while a blob of the image downloads is refused with 409, nothing lost; after it landed it purges', async () => {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const layer = randomBlob(3 << 20);
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  up.addBlob(config);
  const layerDigest = up.addBlob(layer, { kind: 'stall', after: 1 << 20, release: released });
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerDigest, size: layer.length }],
    }),
  );
  up.addManifest('team/app', 'v1', manifest, 'application/vnd.oci.image.manifest.v1+json');
  const m = await fetch(`${pt.url}/v2/team/app/manifests/v1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  assert.equal(m.status, 200);
  await m.arrayBuffer();
  const c = await fetch(`${pt.url}/v2/team/app/blobs/${sha(config)}`);
  assert.equal(c.status, 200);
  await c.arrayBuffer();
  const res = await fetch(`${pt.url}/v2/team/app/blobs/${layerDigest}`);
  assert.equal(res.status, 200);
  const body = res.arrayBuffer();
  await until('the download is listed', async () => {
    const { downloads } = (await (await admin('/api/v1/downloads')).json()) as { downloads: Array<{ digest: string; bytesDone: number }> };
    return downloads.some((d) => d.digest === layerDigest && d.bytesDone >= 1 << 20);
  });
  const busy = await purge('team/app:v1');
  const err = ((await busy.json()) as { error: { code: string; message: string; detail: { downloading: string[] } } }).error;
  assert.equal(busy.status, 409);
  assert.equal(err.code, 'IN_PROGRESS');
  assert.deepEqual(err.detail.downloading, [layerDigest]);
  // Nothing lost: the tag, its manifest and the config blob are all still cached.
  const status = (await (await admin('/api/v1/status?ref=team/app:v1')).json()) as { manifestCached: boolean; blobs: Array<{ digest: string; present: boolean; downloading: unknown[] }> };
  assert.equal(status.manifestCached, true);
  assert.deepEqual(status.blobs.map((b) => [b.digest, b.present, b.downloading.length]), [[sha(config), true, 0], [layerDigest, false, 1]]);
  release();
  assert.equal(Buffer.from(await body).length, layer.length);
  await until('the download landed', async () => {
    const s = (await (await admin('/api/v1/status?ref=team/app:v1')).json()) as { cached: boolean };
    return s.cached;
  });
  const done = await purge('team/app:v1');
  const r = (await done.json()) as { blobs: string[] };
  assert.equal(done.status, 200, JSON.stringify(r));
  assert.deepEqual(r.blobs.sort(), [sha(config), layerDigest].sort());
  assert.ok(!pt.logs().some((l) => l.msg === 'admin request failed'));
});
