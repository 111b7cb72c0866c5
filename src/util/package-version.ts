import { readFileSync } from 'node:fs';

/**
 * pullthrough's version, from the package.json next to the build (dist/src/util → the package
 * root), so `pullthrough --version` can never disagree with what npm and the image were built from.
 * @throws Error when package.json cannot be read or has no version.
 */
export function packageVersion(): string {
  const doc = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  if (typeof doc.version !== 'string' || doc.version === '') throw new Error('package.json has no version');
  return doc.version;
}
