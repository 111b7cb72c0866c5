/**
 * The admin door (listen.admin): its own listener on loopback, JSON answers, nothing of the
 * registry doors on it and nothing of it on them, and downloads in progress listed with their
 * bytes while a blob streams from a (stalled) upstream. Real processes and sockets on loopback.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startPullthrough, type Pullthrough } from '../helpers/pullthrough.js';
import { randomBlob, type FaultUpstream } from '../helpers/fault-upstream.js';
import { useFaultMirror } from '../helpers/fault-mirror.js';
import { rawRequest } from '../helpers/http.js';

let up: FaultUpstream;
let pt: Pullthrough;
useFaultMirror((m) => ({ up, pt } = m));

const admin = (): string => `http://127.0.0.1:${pt.ports.admin}`;

interface Download {
  digest: string;
  registry: string;
  repo: string;
  bytesDone: number;
  bytesTotal: number | null;
  uncached: boolean;
}

test('the admin door listens on loopback, on its own port, and answers JSON', async () => {
  const line = pt.logs().find((l) => l.msg === 'listening' && l.door === 'admin');
  assert.ok(line, 'a "listening" line for the admin door');
  assert.equal(line.address, '127.0.0.1');
  assert.notEqual(pt.ports.admin, pt.ports.mirror);
  const res = await fetch(`${admin()}/api/v1/downloads`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  assert.deepEqual(await res.json(), { downloads: [] });
  const unknown = await fetch(`${admin()}/api/v1/no-such-thing`);
  assert.equal(unknown.status, 404);
  assert.equal(((await unknown.json()) as { error: { code: string } }).error.code, 'NOT_FOUND');
});

test('no registry API on the admin door, no admin API on the mirror door', async () => {
  const v2 = await rawRequest(admin(), '/v2/');
  assert.equal(v2.status, 404);
  assert.equal(v2.headers['docker-distribution-api-version'], undefined);
  const onMirror = await rawRequest(pt.url, '/api/v1/downloads');
  assert.notEqual(onMirror.status, 200);
  assert.ok(!onMirror.body.toString().includes('downloads'), onMirror.body.toString());
});

test('a download in progress is listed with its registry, repository and bytes; gone once it landed', async () => {
  const data = randomBlob(3 << 20);
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const digest = up.addBlob(data, { kind: 'stall', after: 1 << 20, release: released });
  const res = await fetch(`${pt.url}/v2/team/app/blobs/${digest}`);
  assert.equal(res.status, 200);
  const body = res.arrayBuffer();
  let seen: Download | undefined;
  for (let i = 0; i < 100 && !(seen && seen.bytesDone >= 1 << 20); i++) {
    const list = ((await (await fetch(`${admin()}/api/v1/downloads`)).json()) as { downloads: Download[] }).downloads;
    seen = list.find((d) => d.digest === digest);
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(seen, 'the download is listed');
  assert.equal(seen.registry, 'fault.test');
  assert.equal(seen.repo, 'team/app');
  assert.equal(seen.bytesTotal, data.length);
  assert.equal(seen.bytesDone, 1 << 20, 'the bytes received before the stall');
  assert.equal(seen.uncached, false);
  release();
  assert.equal(Buffer.from(await body).length, data.length);
  let left: Download[] = [];
  for (let i = 0; i < 100; i++) {
    left = ((await (await fetch(`${admin()}/api/v1/downloads`)).json()) as { downloads: Download[] }).downloads;
    if (!left.some((d) => d.digest === digest)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.deepEqual(left.filter((d) => d.digest === digest), [], 'gone once committed');
});

test('listen.admin: null starts no admin door', async () => {
  const off = await startPullthrough({ listen: { mirror: '127.0.0.1:0', admin: null } });
  try {
    assert.equal(off.ports.admin, undefined);
    assert.ok(!off.logs().some((l) => l.msg === 'listening' && l.door === 'admin'));
  } finally {
    await off.cleanup();
  }
});
