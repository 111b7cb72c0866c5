import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { dirname, join } from 'node:path';

/**
 * Writes `data` to `path` so that readers see the old content or the new, never a part:
 * write a temp file in `tmpDir` (same filesystem), then rename over the target.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, tmpDir: string, mode = 0o644): Promise<void> {
  const tmp = join(tmpDir, randomUUID());
  await writeFile(tmp, data, { mode });
  try {
    await inParentDir(path, () => rename(tmp, path));
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * Runs `op`, which creates `path`; if it fails with ENOENT (the parent directory is missing),
 * makes the parent and runs it once more. The directory is there for every file but a
 * directory's first, and each step is a trip through the thread pool: a `mkdir` before every
 * write would add one to each (a cold manifest's metadata is several such writes on the client's
 * way).
 */
export async function inParentDir<T>(path: string, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
    await mkdir(dirname(path), { recursive: true });
    return op();
  }
}

/** True for a Node fs error with the given code. */
export function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as NodeJS.ErrnoException).code === code;
}
