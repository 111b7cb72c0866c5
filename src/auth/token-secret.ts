import { link, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Config } from '../config/index.js';
import { PullthroughError } from '../util/errors.js';

/** The token secret file cannot be used; `message` says why and what to do. */
export class TokenSecretError extends PullthroughError {
  readonly code = 'ERR_TOKEN_SECRET';
  constructor(message: string) {
    super(message);
    this.name = 'TokenSecretError';
  }
}

/**
 * The HMAC secret tokens are signed with: `auth.tokenSecret` when set, else the file
 * `<dataDir>/auth/token-secret`, created on first start with 32 random bytes and mode 0600.
 * Replicas must use the same secret (set `auth.tokenSecret` or share the file), or a token issued
 * by one is refused by the others.
 * @throws TokenSecretError when the file is readable by others, too short, or cannot be written.
 */
export async function loadTokenSecret(config: Pick<Config, 'auth' | 'paths'>): Promise<Buffer> {
  if (config.auth.tokenSecret !== undefined) return Buffer.from(config.auth.tokenSecret, 'utf8');
  const file = config.paths.tokenSecret;
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const exists = await stat(file).then(
    () => true,
    () => false,
  );
  if (!exists) {
    // Written whole to a temp file, then hard-linked into place: link() fails if the file exists,
    // so exactly one process creates it and nobody ever reads a half-written secret.
    const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
    try {
      await writeFile(temp, randomBytes(32).toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
      await link(temp, file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new TokenSecretError(`cannot create ${file}: ${(err as Error).message}`);
    } finally {
      await rm(temp, { force: true });
    }
  }
  const st = await stat(file);
  if (st.mode & 0o077) throw new TokenSecretError(`${file} is readable by other users (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`);
  const secret = (await readFile(file, 'utf8')).trim();
  if (secret.length < 32) throw new TokenSecretError(`${file}: shorter than 32 characters`);
  return Buffer.from(secret, 'utf8');
}
