import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import { Spool } from '../../src/cache/spool.js';
import { inTempDir } from '../helpers/process.js';

/** Writes `data` to `w` in `chunk`-byte writes, yielding to the event loop between them. */
async function writeChunks(w: Writable, data: Buffer, chunk: number, copy = false): Promise<void> {
  for (let off = 0; off < data.length; off += chunk) {
    const part = copy ? Buffer.from(data.subarray(off, off + chunk)) : data.subarray(off, off + chunk);
    if (!w.write(part)) await new Promise((r) => w.once('drain', r));
    await new Promise((r) => setImmediate(r));
  }
}

function endWriter(w: Writable): Promise<void> {
  return new Promise<void>((resolve, reject) => w.end((err?: Error | null) => (err ? reject(err) : resolve())));
}

/** Feeds `data` to the spool's writer in `chunk`-byte writes, yielding to the event loop between them. */
async function feed(spool: Spool, data: Buffer, chunk: number, recycle?: (c: Buffer) => void): Promise<string> {
  const hash = createHash('sha256');
  const w = spool.writer(hash, undefined, recycle);
  // A copy per write when recycling: each chunk is a buffer of its own, as a source's slabs are.
  await writeChunks(w, data, chunk, recycle !== undefined);
  await endWriter(w);
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
  await inTempDir(async (dir) => {
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
  });
});

test('Spool: a failed download aborts its readers and removes the file', async () => {
  await inTempDir(async (dir) => {
    const spool = await Spool.create(dir.path);
    const r = collect(spool.reader());
    await feed(spool, randomBytes(3 << 20), 1 << 20);
    spool.fail(new Error('digest mismatch'));
    await assert.rejects(r.done, /digest mismatch/);
    assert.ok(r.bytes().length < 3 << 20);
    await new Promise((res) => setTimeout(res, 50));
    await assert.rejects(readFile(spool.path), { code: 'ENOENT' });
    spool.release();
  });
});

test('Spool: source chunks are handed back for reuse once on disk and returned by every reader, never earlier', async () => {
  await inTempDir(async (dir) => {
    const chunk = 256 << 10;
    const data = randomBytes(16 << 20);
    const spool = await Spool.create(dir.path);
    const recycled = new Set<Buffer>();
    let twice = 0;
    // Reuse is simulated by scribbling over a chunk as soon as it comes back: a reader still
    // holding a slice of it would then see wrong bytes.
    const recycle = (c: Buffer): void => {
      if (recycled.has(c)) twice++;
      recycled.add(c);
      c.fill(0xee);
    };
    // A prompt reader copies each chunk and hands it back at once.
    const prompt = spool.reader();
    const promptParts: Buffer[] = [];
    prompt.on('data', (c: Buffer) => {
      promptParts.push(Buffer.from(c));
      prompt.recycle(c);
    });
    // A holding reader keeps every chunk it got and hands them back only at the end.
    const holding = spool.reader();
    const held: Buffer[] = [];
    holding.on('data', (c: Buffer) => held.push(c));
    const ended = (r: Readable) => new Promise<void>((resolve, reject) => (r.once('end', resolve), r.once('error', reject)));
    const done = Promise.all([ended(prompt), ended(holding)]);
    await feed(spool, data, chunk, recycle);
    spool.markVerified();
    await done;
    assert.ok(Buffer.concat(promptParts).equals(data));
    const beforeHandBack = recycled.size;
    assert.ok(Buffer.concat(held).equals(data), 'no chunk a reader still held was reused');
    for (const c of held) holding.recycle(c);
    // Every chunk but those still among the recent ones (4 MiB) came back, each once.
    assert.equal(twice, 0);
    assert.ok(recycled.size > beforeHandBack, 'the holding reader kept chunks from reuse until it handed them back');
    assert.ok(recycled.size >= (data.length - (4 << 20)) / chunk - 1, `${recycled.size} of ${data.length / chunk} chunks recycled`);
    assert.ok((await readFile(spool.path)).equals(data));
    spool.release();
  });
});

test('Spool: once the owner and every reader are gone, the recent chunks come back too; a slice still lent, when it is handed back', async () => {
  await inTempDir(async (dir) => {
    const chunk = 256 << 10;
    const data = randomBytes(6 << 20);
    const spool = await Spool.create(dir.path);
    const recycled: Buffer[] = [];
    const reader = spool.reader();
    const got: Buffer[] = [];
    reader.on('data', (c: Buffer) => got.push(c));
    const ended = new Promise<void>((resolve, reject) => (reader.once('end', resolve), reader.once('error', reject)));
    await feed(spool, data, chunk, (c) => recycled.push(c));
    spool.markVerified();
    await ended;
    assert.ok(Buffer.concat(got).equals(data));
    // The reader holds every chunk it got: none has come back yet.
    assert.equal(recycled.length, 0);
    const last = got.pop()!;
    for (const c of got) reader.recycle(c);
    // Those beyond the recent 4 MiB came back as they were handed back; the recent ones wait for the spool to close.
    assert.equal(recycled.length, (data.length - (4 << 20)) / chunk);
    spool.release();
    assert.equal(recycled.length, data.length / chunk - 1, 'all but the chunk still lent came back when the spool closed');
    reader.recycle(last);
    assert.equal(recycled.length, data.length / chunk);
    assert.equal(new Set(recycled).size, recycled.length, 'each chunk came back once');
  });
});

test('Spool: a reader that reads the file (joined late) reuses the buffers it hands back, and gets the right bytes', async () => {
  await inTempDir(async (dir) => {
    const data = randomBytes(12 << 20);
    const spool = await Spool.create(dir.path);
    await feed(spool, data, 256 << 10);
    spool.markVerified();
    // Everything beyond the recent 4 MiB comes from the file now.
    const late = spool.reader({ start: 100, end: data.length - 1 });
    const parts: Buffer[] = [];
    const buffers = new Set<ArrayBufferLike>();
    late.on('data', (c: Buffer) => {
      buffers.add(c.buffer);
      parts.push(Buffer.from(c));
      // Handed back a tick later, as a response writer would once the bytes are in the kernel.
      setImmediate(() => late.recycle(c));
    });
    await new Promise<void>((resolve, reject) => (late.once('end', resolve), late.once('error', reject)));
    assert.ok(Buffer.concat(parts).equals(data.subarray(100)));
    // ~8 MiB read from the file in 1 MiB reads, plus the recent chunks' own buffers.
    const fileBuffers = [...buffers].filter((b) => b.byteLength === 1 << 20).length;
    assert.ok(fileBuffers <= 4, `${fileBuffers} file-read buffers for ~8 MiB`);
    spool.release();
  });
});

/** Resolves once the spool has taken no new bytes for a few polls: its download is being held. */
async function settled(spool: Spool): Promise<number> {
  let last = -1;
  for (let same = 0; same < 5; ) {
    await new Promise((r) => setTimeout(r, 20));
    same = spool.bytesWritten === last ? same + 1 : 0;
    last = spool.bytesWritten;
  }
  return last;
}

/** `p`, or a failure naming `what` if it has not settled in 10 s (a hang, not a timing figure). */
async function within10s<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: still waiting after 10 s`)), 10_000)));
  try {
    return await Promise.race([p, guard]);
  } finally {
    clearTimeout(timer);
  }
}

/** Holds that only a reader can end within a test's time. */
const NO_TIMEOUT = { reach: 64 << 20, maxHoldMs: 600_000 };

test('Spool: the download waits for its fastest reader, at most the lead ahead of it, and goes on as the reader does', async () => {
  await inTempDir(async (dir) => {
    const lead = 1 << 20;
    const data = randomBytes(8 << 20);
    // One write of the spool takes what queued up meanwhile: up to the writer's 1 MiB and a chunk.
    const batch = (1 << 20) + (64 << 10);
    const spool = await Spool.create(dir.path, { lead, ...NO_TIMEOUT });
    const reader = spool.reader();
    after(() => reader.destroy()); // a download still held when this test fails
    let fed = false;
    const feeding = feed(spool, data, 64 << 10).then((d) => ((fed = true), d));
    // Nobody reads yet: the download stops within one write past the lead.
    const held = await settled(spool);
    assert.ok(held > lead && held <= lead + batch, `held at ${held} bytes`);
    assert.equal(fed, false);
    // Reading 1 MiB lets it on by about as much, and no further.
    let got = 0;
    while (got < 1 << 20) {
      const c = reader.read() as Buffer | null;
      if (c) got += c.length;
      else await new Promise((r) => reader.once('readable', r));
    }
    const moved = await settled(spool);
    assert.ok(moved > held, 'the download moved on with the reader');
    // Beyond what was read: the reader's own buffer (up to 1 MiB and a chunk), the lead, one write.
    assert.ok(moved <= got + (1 << 20) + (64 << 10) + lead + batch, `${moved} bytes downloaded for ${got} read`);
    const rest = collect(reader);
    const digest = await within10s(feeding, 'the download with its reader reading');
    spool.markVerified();
    await rest.done;
    assert.equal(digest, createHash('sha256').update(data).digest('hex'));
    assert.equal(got + rest.bytes().length, data.length);
    spool.release();
  });
});

test('Spool: a reader that stops reading holds the download a few short holds, until it is out of reach', async () => {
  await inTempDir(async (dir) => {
    const data = randomBytes(8 << 20);
    const spool = await Spool.create(dir.path, { lead: 256 << 10, reach: 2 << 20, maxHoldMs: 50 });
    const stalled = spool.reader(); // never read
    try {
      const digest = await within10s(feed(spool, data, 64 << 10), 'the download held by a stalled reader');
      assert.equal(digest, createHash('sha256').update(data).digest('hex'));
      assert.ok((await readFile(spool.path)).equals(data));
    } finally {
      // Lets a download that is still held go (when this test fails), so the file can end.
      stalled.destroy();
      spool.release();
    }
  });
});

test('Spool: a reader out of reach (joined a download far ahead of it) is not waited for', async () => {
  await inTempDir(async (dir) => {
    const data = randomBytes(8 << 20);
    const half = data.length / 2;
    const spool = await Spool.create(dir.path, { lead: 256 << 10, reach: 2 << 20, maxHoldMs: 600_000 });
    const hash = createHash('sha256');
    const w = spool.writer(hash);
    await writeChunks(w, data.subarray(0, half), 64 << 10);
    while (spool.bytesWritten < half) await new Promise((r) => setTimeout(r, 5));
    const late = spool.reader(); // 4 MiB behind, and never reads
    try {
      await within10s(
        writeChunks(w, data.subarray(half), 64 << 10).then(() => endWriter(w)),
        'the download held by a reader out of reach',
      );
      assert.equal(hash.digest('hex'), createHash('sha256').update(data).digest('hex'));
      assert.equal(spool.bytesWritten, data.length);
    } finally {
      late.destroy();
      spool.release();
    }
  });
});

test('Spool: readers that leave, or finish their range, let the download go on', async () => {
  await inTempDir(async (dir) => {
    const data = randomBytes(4 << 20);
    const spool = await Spool.create(dir.path, { lead: 256 << 10, ...NO_TIMEOUT });
    const ranged = collect(spool.reader({ start: 0, end: 99_999 }));
    const leaving = spool.reader();
    after(() => leaving.destroy()); // a download still held when this test fails
    const feeding = feed(spool, data, 64 << 10);
    await ranged.done;
    assert.ok(ranged.bytes().equals(data.subarray(0, 100_000)));
    // The finished range holds nothing; the reader that never reads does.
    const held = await settled(spool);
    assert.ok(held < data.length, `held at ${held} bytes`);
    leaving.destroy();
    await within10s(feeding, 'the download after its last reader left');
    assert.equal(spool.bytesWritten, data.length);
    spool.release();
  });
});
