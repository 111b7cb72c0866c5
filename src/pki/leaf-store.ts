/**
 * Leaf certificates on disk, one key (0600) and one certificate (0644) per name, so a restart
 * serves the same certificates instead of issuing new ones.
 */
import { chmod, mkdir, open, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isErrno, writeFileAtomic } from '../util/atomic-file.js';

/** A lock older than this was left by a process that died while issuing (issuing takes milliseconds). */
const STALE_LOCK_MS = 10_000;
/** Past this, a waiter issues without the lock: a duplicate certificate beats a stuck handshake. */
const LOCK_WAIT_MS = 5_000;
const LOCK_POLL_MS = 20;

/** A leaf's PEM texts. */
export interface StoredLeaf {
  certPem: string;
  keyPem: string;
}

export class LeafStore {
  private ready: Promise<void> | undefined;

  constructor(readonly dir: string) {}

  /** Host names are [a-z0-9.-]; an IPv6 literal's colons become underscores, which no host name has. */
  private base(name: string): string {
    return join(this.dir, name.replace(/[^a-z0-9.-]/g, '_'));
  }

  private ensureDir(): Promise<void> {
    this.ready ??= mkdir(this.dir, { recursive: true, mode: 0o700 }).then(() => chmod(this.dir, 0o700));
    return this.ready;
  }

  /**
   * The stored leaf for `name`, or null when there is none (or only half of one).
   * @throws the fs error for anything but a missing file.
   */
  async read(name: string): Promise<StoredLeaf | null> {
    const b = this.base(name);
    try {
      const [certPem, keyPem] = await Promise.all([readFile(`${b}.crt`, 'utf8'), readFile(`${b}.key`, 'utf8')]);
      return { certPem, keyPem };
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return null;
      throw err;
    }
  }

  /**
   * Takes the issuing lock for `name` (`<name>.lock`, created exclusively) among the processes
   * sharing this directory: workers, which each issue certificates on their own. The holder
   * reads, issues and writes; the others wait, then read what it stored. Without it, two workers
   * issuing one name at once could leave one's key beside the other's certificate.
   * @returns the release function.
   * @throws the fs error when the directory cannot be written.
   */
  async lock(name: string): Promise<() => Promise<void>> {
    await this.ensureDir();
    const path = `${this.base(name)}.lock`;
    const release = (): Promise<void> => rm(path, { force: true });
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        await (await open(path, 'wx', 0o600)).close();
        return release;
      } catch (err) {
        if (!isErrno(err, 'EEXIST')) throw err;
      }
      const held = await stat(path).catch(() => null);
      // Two waiters may both find a dead holder's lock and both go on: one duplicate issuance.
      if (held && Date.now() - held.mtimeMs > STALE_LOCK_MS) await rm(path, { force: true });
      else if (Date.now() > deadline) return async () => {};
      else await new Promise((r) => setTimeout(r, LOCK_POLL_MS));
    }
  }

  /**
   * Stores a leaf: the key first, so a certificate on disk always has its key beside it.
   * @throws the fs error when the directory cannot be written.
   */
  async write(name: string, leaf: StoredLeaf): Promise<void> {
    await this.ensureDir();
    const b = this.base(name);
    await writeFileAtomic(`${b}.key`, leaf.keyPem, this.dir, 0o600);
    await writeFileAtomic(`${b}.crt`, leaf.certPem, this.dir, 0o644);
    // writeFile's mode is filtered by the umask; the certificate is meant to be readable.
    await chmod(`${b}.crt`, 0o644);
  }
}
