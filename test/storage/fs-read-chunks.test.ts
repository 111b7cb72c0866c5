/**
 * FsBlobStore's read size follows how many file bodies are being read at once (readChunkSize):
 * big reads for a few downloads, smaller ones when many run, so memory stays bounded under
 * concurrency (docs/performance.md). Checked on real files: the chunk lengths a reader yields,
 * and the bytes.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { FsBlobStore, readChunkSize } from '../../src/storage/fs-blob-store.js';
import { sharedPool } from '../../src/util/buffer-pool.js';
import { tempDir } from '../helpers/process.js';

const dir = await tempDir('pullthrough-readchunks-');
after(() => dir.cleanup());
const store = new FsBlobStore(join(dir.path, 'blobs'));
const bytes = randomBytes(3 << 20);
const src = join(dir.path, 'src');
await writeFile(src, bytes);
await store.putFile('sha256/ab/blob', src, bytes.length);

async function chunksOf(body: Readable): Promise<{ lengths: number[]; digest: string }> {
  const h = createHash('sha256');
  const lengths: number[] = [];
  for await (const c of body) {
    h.update(c as Buffer);
    lengths.push((c as Buffer).length);
  }
  return { lengths, digest: h.digest('hex') };
}

const whole = createHash('sha256').update(bytes).digest('hex');

test('readChunkSize: 1 MiB for a body read alone, 512 KiB beside up to 3 others, 256 KiB beyond', () => {
  assert.deepEqual([0, 1, 3, 4, 100].map(readChunkSize), [1 << 20, 512 << 10, 512 << 10, 256 << 10, 256 << 10]);
});

test('one body alone is read in 1 MiB chunks; with 4 others open, in 256 KiB chunks; the same bytes either way', async () => {
  const alone = await chunksOf(await store.read('sha256/ab/blob'));
  assert.deepEqual(alone.lengths, [1 << 20, 1 << 20, 1 << 20]);
  assert.equal(alone.digest, whole);

  const others = await Promise.all(Array.from({ length: 4 }, () => store.read('sha256/ab/blob')));
  try {
    const crowded = await chunksOf(await store.read('sha256/ab/blob'));
    assert.deepEqual(crowded.lengths, Array(12).fill(256 << 10));
    assert.equal(crowded.digest, whole);
  } finally {
    for (const o of others) o.destroy();
  }
  await new Promise((r) => setImmediate(r));
  // Destroyed bodies no longer count.
  const again = await chunksOf(await store.read('sha256/ab/blob'));
  assert.deepEqual(again.lengths, [1 << 20, 1 << 20, 1 << 20]);
});

test('bodies read one after another reuse the buffers the first handed back (the process pool), each buffer lent to one body at a time', async () => {
  const pool = sharedPool(1 << 20);
  // A consumer that hands every chunk back once its bytes are copied, as the response writer does
  // once they are in the kernel; the copy is compared, so a buffer reused too early would show.
  const readRecycling = async (): Promise<{ digest: string; buffers: Set<ArrayBufferLike> }> => {
    const body = (await store.read('sha256/ab/blob')) as Readable & { recycle(c: Buffer): void };
    const h = createHash('sha256');
    const buffers = new Set<ArrayBufferLike>();
    for await (const c of body) {
      const chunk = c as Buffer;
      buffers.add(chunk.buffer);
      h.update(Buffer.from(chunk));
      body.recycle(chunk);
      body.recycle(chunk); // handed back twice: must go to the pool once
    }
    return { digest: h.digest('hex'), buffers };
  };
  const first = await readRecycling();
  const allocated = pool.allocated;
  const idle = pool.idle;
  assert.equal(first.digest, whole);
  const second = await readRecycling();
  assert.equal(second.digest, whole);
  assert.equal(pool.allocated, allocated, 'the second body allocated no buffer');
  assert.ok([...second.buffers].every((b) => first.buffers.has(b)), 'it read into the first body\'s buffers');
  assert.equal(pool.idle, idle, 'each buffer went back to the pool once');
  // Two bodies at once never share a buffer.
  const a = (await store.read('sha256/ab/blob')) as Readable & { recycle(c: Buffer): void };
  const b = (await store.read('sha256/ab/blob')) as Readable & { recycle(c: Buffer): void };
  const held = new Set<ArrayBufferLike>();
  for (const body of [a, b]) {
    for await (const c of body) {
      assert.ok(!held.has((c as Buffer).buffer), 'a buffer lent to two bodies at once');
      held.add((c as Buffer).buffer);
    }
  }
});
