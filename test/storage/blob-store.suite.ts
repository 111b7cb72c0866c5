/**
 * The BlobStore contract, as tests any implementation must pass. blob-store.test.ts registers it
 * once per implementation, each against its real backend (a directory, s3rver on a socket).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { access, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { BlobStore } from '../../src/storage/blob-store.js';
import { BlobNotFoundError } from '../../src/storage/errors.js';
import { blobKey } from '../../src/storage/keys.js';
import { tempDir } from '../helpers/process.js';

export interface BlobStoreHarness {
  /** A fresh, empty store (its own directory or prefix) on the shared backend. */
  open(): Promise<BlobStore>;
  /**
   * Leaves behind what a writer killed in the middle of `putFile(key, …)` leaves with this
   * backend (a temp file; an incomplete multipart upload). The object must not become visible.
   */
  simulateCrash(store: BlobStore, key: string): Promise<void>;
  /** How many such leftovers `store` has now, read from the backend itself. */
  leftovers(store: BlobStore): Promise<number>;
  /**
   * Whether cleanup() can remove leftovers on this backend. False for s3rver, which implements
   * neither ListMultipartUploads nor AbortMultipartUpload; then only "tolerated" is checked.
   */
  cleanupRemovesLeftovers: boolean;
  /**
   * What `store`'s reads hold open right now (file handles, connections in the middle of a
   * response), so a test can see that abandoned reads let go of them.
   */
  inUse(store: BlobStore): Promise<number>;
  /** Stops what open() started. */
  teardown?(): Promise<void>;
}

/** A fresh random blob key in the real layout. */
export function randomKey(): string {
  return blobKey(`sha256:${randomBytes(32).toString('hex')}`);
}

export async function readAll(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** sha256 and length of a stream, without holding it in memory. */
export async function hashStream(s: Readable): Promise<{ sha256: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const c of s) {
    h.update(c as Buffer);
    size += (c as Buffer).length;
  }
  return { sha256: h.digest('hex'), size };
}

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** Makes local files with given bytes under `dir()`, as the cache layer hands them to putFile. */
export function spoolFiles(dir: () => string): (data: Buffer) => Promise<string> {
  let n = 0;
  return async (data) => {
    const p = join(dir(), `spool-${n++}`);
    await writeFile(p, data);
    return p;
  };
}

export function blobStoreSuite(name: string, h: BlobStoreHarness): void {
  describe(`BlobStore contract: ${name}`, () => {
    let store: BlobStore;
    let tmp: { path: string; cleanup: () => Promise<void> };
    const spool = spoolFiles(() => tmp.path);

    before(async () => {
      tmp = await tempDir('pullthrough-blobsuite-');
      store = await h.open();
    });
    after(async () => {
      await store?.close();
      await h.teardown?.();
      await tmp?.cleanup();
    });

    it('reports absent keys as absent', async () => {
      const key = randomKey();
      assert.equal(await store.stat(key), null);
      await assert.rejects(store.read(key), BlobNotFoundError);
      await assert.rejects(store.read(key, { start: 0, end: 0 }), BlobNotFoundError);
      await store.delete(key); // deleting a missing object is not an error
    });

    it('puts, stats, reads and deletes; putFile takes the file', async () => {
      const key = randomKey();
      const data = randomBytes(10_000);
      const path = await spool(data);
      await store.putFile(key, path, data.length);
      assert.equal(await exists(path), false, 'the store owns (moves or removes) the local file');
      assert.deepEqual(await store.stat(key), { size: data.length });
      assert.ok((await readAll(await store.read(key))).equals(data));
      await store.delete(key);
      assert.equal(await store.stat(key), null);
      await assert.rejects(store.read(key), BlobNotFoundError);
    });

    it('stores an empty object', async () => {
      const key = randomKey();
      await store.putFile(key, await spool(Buffer.alloc(0)), 0);
      assert.deepEqual(await store.stat(key), { size: 0 });
      assert.equal((await readAll(await store.read(key))).length, 0);
      await store.delete(key);
    });

    it('serves byte ranges: first byte, middle, last byte, whole', async () => {
      const key = randomKey();
      const data = randomBytes(4096);
      await store.putFile(key, await spool(data), data.length);
      const range = async (start: number, end: number) => readAll(await store.read(key, { start, end }));
      assert.ok((await range(0, 0)).equals(data.subarray(0, 1)), 'first byte');
      assert.ok((await range(1000, 2999)).equals(data.subarray(1000, 3000)), 'middle');
      assert.ok((await range(4095, 4095)).equals(data.subarray(4095)), 'last byte');
      assert.ok((await range(0, 4095)).equals(data), 'whole');
      assert.ok((await range(4000, 9999)).equals(data.subarray(4000)), 'an end past the object stops at its end');
      assert.equal((await range(5000, 5999)).length, 0, 'a start past the object reads nothing');
      await store.delete(key);
    });

    it('streams a multi-MB object intact (sha256 of what is read back), and ranges within it', async () => {
      const key = randomKey();
      // 12 MiB: above the S3 harness's 5 MiB part size, so this is a 3-part multipart upload there.
      const data = randomBytes(12 << 20);
      await store.putFile(key, await spool(data), data.length);
      assert.deepEqual(await store.stat(key), { size: data.length });
      const got = await hashStream(await store.read(key));
      assert.equal(got.size, data.length);
      assert.equal(got.sha256, sha256(data));
      // Across the first part boundary (5 MiB), and the tail.
      const b = 5 << 20;
      assert.ok((await readAll(await store.read(key, { start: b - 10, end: b + 9 }))).equals(data.subarray(b - 10, b + 10)));
      assert.ok((await readAll(await store.read(key, { start: data.length - 3, end: data.length - 1 }))).equals(data.subarray(-3)));
      // Ranges that run to the end, over several read buffers: exactly, and with an end past it.
      const tail = 1_500_000;
      assert.equal(sha256(await readAll(await store.read(key, { start: data.length - tail, end: data.length - 1 }))), sha256(data.subarray(-tail)));
      assert.equal(sha256(await readAll(await store.read(key, { start: data.length - tail, end: data.length + tail }))), sha256(data.subarray(-tail)));
      assert.equal(sha256(await readAll(await store.read(key, { start: 1, end: data.length - 2 }))), sha256(data.subarray(1, -1)));
      await store.delete(key);
    });

    it('keeps every chunk intact until it is handed back with recycle(), however late', async () => {
      // As the response writer does: a chunk is handed back once the kernel has its bytes, which
      // may be several chunks later. A store that reused a buffer too early would change a chunk
      // still waiting to be written.
      const key = randomKey();
      const data = randomBytes(6 << 20);
      await store.putFile(key, await spool(data), data.length);
      for (const range of [undefined, { start: 100_000, end: data.length - 100_001 }]) {
        const s = (await store.read(key, range)) as Readable & { recycle?(c: Buffer): void };
        const want = range ? data.subarray(range.start, range.end + 1) : data;
        const held: Array<{ chunk: Buffer; at: number; hash: string }> = [];
        let at = 0;
        let changed = 0;
        const release = (n: number): void => {
          while (held.length > n) {
            const h = held.shift()!;
            if (sha256(h.chunk) !== h.hash || !h.chunk.equals(want.subarray(h.at, h.at + h.chunk.length))) changed++;
            s.recycle?.(h.chunk);
          }
        };
        await new Promise<void>((resolve, reject) => {
          s.on('data', (chunk: Buffer) => {
            held.push({ chunk, at, hash: sha256(chunk) });
            at += chunk.length;
            // Hand back in bursts, sometimes after a pause, as writes to a slow socket complete.
            if (held.length >= 4) {
              s.pause();
              setTimeout(() => {
                release(1);
                s.resume();
              }, 2);
            }
          });
          s.on('end', resolve);
          s.on('error', reject);
        });
        release(0);
        assert.equal(at, want.length);
        assert.equal(changed, 0, 'chunks changed before they were handed back');
      }
      await store.delete(key);
    });

    it('lets go of what abandoned reads held (the client went away), and keeps serving', async () => {
      const key = randomKey();
      const data = randomBytes(3 << 20);
      await store.putFile(key, await spool(data), data.length);
      const before = await h.inUse(store);
      for (let i = 0; i < 12; i++) {
        const s = await store.read(key, i % 3 === 2 ? { start: 1000, end: data.length - 1 } : undefined);
        if (i % 3 === 0) {
          s.destroy(); // before any byte was read
        } else {
          // After the first chunk, with the rest still coming (a paused, then gone, client).
          await new Promise<void>((resolve) => s.once('data', () => resolve()));
          s.pause();
          await new Promise((r) => setTimeout(r, 5));
          s.destroy();
        }
      }
      const deadline = Date.now() + 5_000;
      while ((await h.inUse(store)) > before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(await h.inUse(store), before, 'abandoned reads still hold resources');
      assert.equal(sha256(await readAll(await store.read(key))), sha256(data));
      assert.ok((await readAll(await store.read(key, { start: data.length - 10, end: data.length - 1 }))).equals(data.subarray(-10)));
      await store.delete(key);
    });

    it('lets concurrent putFile calls of the same key all succeed, content intact', async () => {
      const key = randomKey();
      const data = randomBytes(300_000);
      const paths = await Promise.all(Array.from({ length: 6 }, () => spool(data)));
      const results = await Promise.allSettled(paths.map((p) => store.putFile(key, p, data.length)));
      assert.deepEqual(results.map((r) => r.status), paths.map(() => 'fulfilled'));
      for (const p of paths) assert.equal(await exists(p), false);
      assert.deepEqual(await store.stat(key), { size: data.length });
      assert.equal(sha256(await readAll(await store.read(key))), sha256(data));
      // And again once it exists: an overwrite with the same bytes is fine too.
      await store.putFile(key, await spool(data), data.length);
      assert.equal(sha256(await readAll(await store.read(key))), sha256(data));
      await store.delete(key);
    });

    it('never shows an object whose writer crashed, and cleanup() deals with the leftovers', async (t) => {
      const s = await h.open();
      try {
        const key = randomKey();
        await h.simulateCrash(s, key);
        assert.ok((await h.leftovers(s)) > 0, 'the simulated crash left something behind');
        assert.equal(await s.stat(key), null);
        await assert.rejects(s.read(key), BlobNotFoundError);
        for await (const e of s.list()) assert.notEqual(e.key, key);
        await s.cleanup();
        if (h.cleanupRemovesLeftovers) assert.equal(await h.leftovers(s), 0);
        else t.diagnostic(`${name}: backend cannot list/abort the leftovers; cleanup() only has to tolerate that`);
        assert.equal(await s.stat(key), null);
        // The store still works after cleanup.
        const data = randomBytes(100);
        await s.putFile(key, await spool(data), data.length);
        assert.ok((await readAll(await s.read(key))).equals(data));
      } finally {
        await s.close();
      }
    });

    it('lists every committed object with its size, and nothing else', async () => {
      const s = await h.open();
      try {
        const want = new Map<string, number>();
        for (let i = 0; i < 5; i++) {
          const key = randomKey();
          const data = randomBytes(100 + i);
          await s.putFile(key, await spool(data), data.length);
          want.set(key, data.length);
        }
        const got = new Map<string, number>();
        for await (const e of s.list()) got.set(e.key, e.size);
        assert.deepEqual(got, want);
        const [gone] = want.keys();
        await s.delete(gone!);
        want.delete(gone!);
        const again = new Map<string, number>();
        for await (const e of s.list()) again.set(e.key, e.size);
        assert.deepEqual(again, want);
      } finally {
        await s.close();
      }
    });
  });
}
