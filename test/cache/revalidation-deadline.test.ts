/**
 * The revalidation deadline's race (cache/revalidation-deadline.ts) and its config key,
 * `cache.revalidateDeadline`. What the cache serves with it is tested in the policy tests and
 * end to end.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { deadlineReason, withinDeadline } from '../../src/cache/revalidation-deadline.js';
import { ConfigError, loadConfig } from '../../src/config/index.js';
import { inTempDir } from '../helpers/process.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('withinDeadline: the value when the work ends in time, its error when it fails in time', async () => {
  const late: unknown[] = [];
  assert.deepEqual(await withinDeadline(Promise.resolve(7), 1000, (e) => late.push(e)), { inTime: true, value: 7 });
  await assert.rejects(withinDeadline(Promise.reject(new Error('refused')), 1000, (e) => late.push(e)), /refused/);
  assert.deepEqual(late, []);
});

test('withinDeadline: past the deadline it resolves without the work, which goes on; a late failure goes to onLateError', async () => {
  const late: unknown[] = [];
  let finished = false;
  const slow = sleep(150).then(() => {
    finished = true;
    return 'fresh';
  });
  assert.deepEqual(await withinDeadline(slow, 20, (e) => late.push(e)), { inTime: false });
  assert.equal(finished, false, 'answered before the work ended');
  assert.equal(await slow, 'fresh', 'the work was not cancelled');

  // A failure after the deadline is reported, not unhandled (node:test fails a test on an
  // unhandled rejection).
  const failing = sleep(60).then(() => Promise.reject(new Error('upstream reset')));
  assert.deepEqual(await withinDeadline(failing, 10, (e) => late.push(e)), { inTime: false });
  await sleep(120);
  assert.equal(late.length, 1);
  assert.match(String(late[0]), /upstream reset/);

  // A throwing reporter does not turn into an unhandled rejection either.
  const again = sleep(30).then(() => Promise.reject(new Error('x')));
  await withinDeadline(again, 5, () => {
    throw new Error('logger broke');
  });
  await sleep(80);
});

test('deadlineReason names the deadline', () => {
  assert.equal(deadlineReason(1000), 'revalidation exceeded 1 s');
  assert.equal(deadlineReason(2500), 'revalidation exceeded 2500 ms');
});

test('cache.revalidateDeadline: default 1s, a duration, bounds named by key', async () => {
  assert.equal(loadConfig({ env: {} }).cache.revalidateDeadline, 1000);
  await inTempDir(async (dir) => {
    const ok = join(dir.path, 'ok.yml');
    await writeFile(ok, 'cache: { revalidateDeadline: 250ms }\n');
    assert.equal(loadConfig({ file: ok, env: {} }).cache.revalidateDeadline, 250);
    for (const [value, why] of [
      ['0s', /cache\.revalidateDeadline: must be between 10ms and 10m/],
      ['1h', /cache\.revalidateDeadline: must be between 10ms and 10m/],
      ['soon', /cache\.revalidateDeadline: not a duration/],
    ] as const) {
      const bad = join(dir.path, 'bad.yml');
      await writeFile(bad, `cache: { revalidateDeadline: ${value} }\n`);
      let msg = '';
      try {
        loadConfig({ file: bad, env: {} });
      } catch (err) {
        assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
        msg = err.message;
      }
      assert.match(msg, why, `${value} refused`);
    }
  });
});
