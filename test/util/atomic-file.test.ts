import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../src/util/atomic-file.js';
import { tempDir } from '../helpers/process.js';

async function setup(t: TestContext): Promise<{ root: string; tmp: string }> {
  const dir = await tempDir('atomic-file-');
  t.after(dir.cleanup);
  const tmp = join(dir.path, '_tmp');
  await mkdir(tmp);
  return { root: dir.path, tmp };
}

test('writeFileAtomic creates missing directories, then writes into existing ones', async (t) => {
  const { root, tmp } = await setup(t);
  const first = join(root, 'a', 'b', 'one.json');
  await writeFileAtomic(first, '{"n":1}', tmp);
  assert.equal(await readFile(first, 'utf8'), '{"n":1}');
  // The directory exists now: the second write takes the rename-first path.
  const second = join(root, 'a', 'b', 'two.json');
  await writeFileAtomic(second, '{"n":2}', tmp);
  assert.equal(await readFile(second, 'utf8'), '{"n":2}');
  assert.deepEqual(await readdir(tmp), [], 'no temp file is left behind');
});

test('writeFileAtomic replaces a file whole, with the mode asked for', async (t) => {
  const { root, tmp } = await setup(t);
  const path = join(root, 'key.pem');
  await writeFileAtomic(path, 'old', tmp, 0o600);
  await writeFileAtomic(path, 'new content', tmp, 0o600);
  assert.equal(await readFile(path, 'utf8'), 'new content');
  assert.equal((await stat(path)).mode & 0o777, 0o600);
});

test('writeFileAtomic that cannot rename leaves the target and no temp file', async (t) => {
  const { root, tmp } = await setup(t);
  // A non-empty directory where the file should go: rename fails with something other than ENOENT.
  const path = join(root, 'taken');
  await mkdir(join(path, 'inside'), { recursive: true });
  await assert.rejects(writeFileAtomic(path, 'x', tmp), (err: NodeJS.ErrnoException) => err.code === 'EISDIR' || err.code === 'ENOTEMPTY');
  assert.deepEqual(await readdir(path), ['inside']);
  assert.deepEqual(await readdir(tmp), []);
  // A parent that is a file: mkdir cannot help, and the error is the caller's.
  await writeFileAtomic(join(root, 'plain'), 'p', tmp);
  await assert.rejects(writeFileAtomic(join(root, 'plain', 'child.json'), 'c', tmp), (err: NodeJS.ErrnoException) => err.code === 'ENOTDIR' || err.code === 'EEXIST');
  assert.deepEqual(await readdir(tmp), []);
});
