/**
 * LineBatch, the request log's batching (src/observability/line-batch.ts), in process with real
 * timers: what it hands on, when, and in which order. The logger test runs it behind pino in real
 * processes (exit, crash, settle).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { LineBatch } from '../../src/observability/line-batch.js';

function recorder(maxChars: number, flushMs: number): { batch: LineBatch; sent: string[] } {
  const sent: string[] = [];
  return { batch: new LineBatch((t) => sent.push(t), maxChars, flushMs), sent };
}

test('lines are handed on together, in order, once maxChars are waiting', () => {
  const { batch, sent } = recorder(30, 60_000);
  batch.add('{"i":1}\n');
  batch.add('{"i":2}\n');
  batch.add('{"i":3}\n');
  assert.deepEqual(sent, [], 'below maxChars nothing is sent');
  batch.add('{"i":4}\n'); // 32 characters
  assert.deepEqual(sent, ['{"i":1}\n{"i":2}\n{"i":3}\n{"i":4}\n']);
  batch.add('{"i":5}\n');
  batch.handOver();
  assert.deepEqual(sent.slice(1), ['{"i":5}\n'], 'a new batch starts after each hand-over');
});

test('a lone line is handed on flushMs after it came, and only once', async () => {
  const { batch, sent } = recorder(8192, 30);
  batch.add('one\n');
  await sleep(10);
  batch.add('two\n');
  assert.deepEqual(sent, []);
  await sleep(80);
  assert.deepEqual(sent, ['one\ntwo\n'], 'within flushMs of the first line, with the line after it');
  await sleep(80);
  assert.deepEqual(sent, ['one\ntwo\n'], 'no empty batch follows');
});

test('handOver sends what waits at once and cancels the batch timer; with nothing waiting it sends nothing', async () => {
  const { batch, sent } = recorder(8192, 30);
  batch.handOver();
  assert.deepEqual(sent, []);
  batch.add('a\n');
  batch.handOver();
  assert.deepEqual(sent, ['a\n']);
  await sleep(80);
  assert.deepEqual(sent, ['a\n'], 'the timer of the handed-over batch sent nothing more');
});
