import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PartBuffers } from '../../src/storage/part-buffers.js';

test('PartBuffers: at most max buffers, a waiter gets the next one handed back, all let go once idle', async () => {
  const pool = new PartBuffers(1024, 2, 50);
  const a = await pool.take();
  const b = await pool.take();
  assert.equal(pool.held, 2);
  let third: Buffer | undefined;
  const waiting = pool.take().then((x) => (third = x));
  await new Promise((r) => setImmediate(r));
  assert.equal(third, undefined, 'a third buffer while two are in use');
  pool.give(a);
  await waiting;
  assert.equal(third, a, 'the waiter got the buffer handed back');
  assert.equal(pool.held, 2);
  pool.give(b);
  pool.give(third!);
  const again = await pool.take();
  assert.ok(again === a || again === b, 'a free buffer is reused');
  pool.give(again);
  await new Promise((r) => setTimeout(r, 120));
  assert.equal(pool.held, 0, 'idle buffers are let go');
  const c = await pool.take();
  assert.equal(c.length, 1024);
  assert.notEqual(c, a);
  assert.notEqual(c, b);
});
