import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { Spool } from '../../src/cache/spool.js';
import { tempDir } from '../helpers/process.js';

/** Feeds `data` to the spool's writer in `chunk`-byte writes, yielding to the event loop between them. */
async function feed(spool: Spool, data: Buffer, chunk: number): Promise<string> {
  const hash = createHash('sha256');
  const w = spool.writer(hash);
  for (let off = 0; off < data.length; off += chunk) {
    if (!w.write(data.subarray(off, off + chunk))) await new Promise((r) => w.once('drain', r));
    await new Promise((r) => setImmediate(r));
  }
  await new Promise<void>((resolve, reject) => w.end((err?: Error | null) => (err ? reject(err) : resolve())));
  return hash.digest('hex');
}

function collect(r: Readable): { bytes: () => Buffer; done: Promise<void> } {
  const parts: Buffer[] = [];
  r.on('data', (c: Buffer) => parts.push(c));
  const done = new Promise<void>((resolve, reject) => {
    r.once('end', resolve);
    r.once('error', reject);
  });
  return { bytes: () => Buffer.concat(parts), done };
}

test('Spool: a reader keeping pace, one that starts late (reads the file) and a range reader get the right bytes; the last byte waits for verification', async () => {
  const dir = await tempDir();
  try {
    const data = randomBytes(12 << 20); // larger than the chunks kept in memory
    const spool = await Spool.create(dir.path);
    const early = collect(spool.reader());
    const ranged = collect(spool.reader({ start: 5_000_000, end: 5_999_999 }));
    const digest = await feed(spool, data, 64 << 10);
    assert.equal(digest, createHash('sha256').update(data).digest('hex'));
    assert.equal(spool.bytesWritten, data.length);
    // Everything on disk, nothing verified: the early reader has all but the last byte.
    const late = collect(spool.reader());
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(early.bytes().length, data.length - 1);
    assert.ok(late.bytes().length <= data.length - 1);
    await ranged.done;
    assert.ok(ranged.bytes().equals(data.subarray(5_000_000, 6_000_000)));
    spool.markVerified();
    await Promise.all([early.done, late.done]);
    assert.ok(early.bytes().equals(data));
    assert.ok(late.bytes().equals(data));
    assert.ok((await readFile(spool.path)).equals(data));
    spool.release();
  } finally {
    await dir.cleanup();
  }
});

test('Spool: a failed download aborts its readers and removes the file', async () => {
  const dir = await tempDir();
  try {
    const spool = await Spool.create(dir.path);
    const r = collect(spool.reader());
    await feed(spool, randomBytes(3 << 20), 1 << 20);
    spool.fail(new Error('digest mismatch'));
    await assert.rejects(r.done, /digest mismatch/);
    assert.ok(r.bytes().length < 3 << 20);
    await new Promise((res) => setTimeout(res, 50));
    await assert.rejects(readFile(spool.path), { code: 'ENOENT' });
    spool.release();
  } finally {
    await dir.cleanup();
  }
});
