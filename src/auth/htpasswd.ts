import { readFile, stat } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import bcrypt from 'bcryptjs';
import type { Logger } from '../observability/logger.js';
import { USER_NAME } from '../config/schema.js';
import { PullthroughError } from '../util/errors.js';

/** One user of the htpasswd file. */
export interface UserRecord {
  readonly name: string;
  /**
   * A short hash of the user's password hash: tokens carry it, so a changed password (or a removed
   * user) invalidates the tokens issued before.
   */
  readonly fingerprint: string;
}

interface Entry extends UserRecord {
  readonly hash: string;
}

/** The htpasswd file is unusable; `message` names the line and why. */
export class HtpasswdError extends PullthroughError {
  readonly code = 'ERR_HTPASSWD';
  constructor(message: string) {
    super(message);
    this.name = 'HtpasswdError';
  }
}

const BCRYPT = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/;
const RESERVED = new Set(['anonymous', 'authenticated']);
/** bcrypt is slow by design: a success is remembered this long, so a pull's requests do not each pay it. */
const VERIFIED_TTL_MS = 60_000;
const VERIFIED_MAX = 10_000;
/** How often (at most) the file is checked for changes. */
const RECHECK_MS = 2_000;

/**
 * Parses htpasswd text: `name:hash` lines, blank lines and `#` comments skipped.
 * @throws HtpasswdError naming the first bad line (not bcrypt, a reserved or repeated name).
 */
export function parseHtpasswd(text: string, file: string): Map<string, Entry> {
  const users = new Map<string, Entry>();
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon) : '';
    const hash = line.slice(colon + 1);
    const where = `${file} line ${i + 1}`;
    if (!name || !USER_NAME.test(name)) throw new HtpasswdError(`${where}: not a user:hash entry`);
    if (RESERVED.has(name)) throw new HtpasswdError(`${where}: ${name} is reserved for rules; choose another user name`);
    if (!BCRYPT.test(hash)) throw new HtpasswdError(`${where}: user ${name}: only bcrypt entries are supported (create them with htpasswd -B)`);
    if (users.has(name)) throw new HtpasswdError(`${where}: user ${name} appears twice`);
    users.set(name, { name, hash, fingerprint: createHash('sha256').update(hash).digest('base64url').slice(0, 16) });
  }
  return users;
}

/**
 * The users of an htpasswd file (bcrypt only), re-read when the file changes (checked at most
 * every 2 s; a file that became unreadable or invalid keeps the previous users and is logged).
 * Successful password checks are remembered for a minute, keyed by a hash of the user, the
 * password and the stored hash (never the password itself).
 */
export class HtpasswdUsers {
  private users: Map<string, Entry>;
  private stamp: string;
  private checkedAt = Date.now();
  private reloading: Promise<void> | null = null;
  private readonly verified = new Map<string, number>();
  private readonly pending = new Map<string, Promise<boolean>>();
  private constructor(
    private readonly file: string,
    users: Map<string, Entry>,
    stamp: string,
    private readonly log: Logger,
    /** A hash of the users' cost that no password matches, for unknown users. */
    private readonly dummy: string,
  ) {
    this.users = users;
    this.stamp = stamp;
  }

  /**
   * Reads and parses the file.
   * @throws HtpasswdError when it cannot be read or has a bad line.
   */
  static async open(file: string, log: Logger): Promise<HtpasswdUsers> {
    let text: string;
    let stamp: string;
    try {
      const st = await stat(file);
      stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new HtpasswdError(`${file}: ${(err as Error).message}`);
    }
    const users = parseHtpasswd(text, file);
    const first = users.values().next().value;
    const cost = first ? Math.min(Math.max(Number(BCRYPT.exec(first.hash)![1]), 4), 12) : 10;
    return new HtpasswdUsers(file, users, stamp, log, await bcrypt.hash(randomBytes(16).toString('hex'), cost));
  }

  /** Number of users (for the start-up log). */
  get size(): number {
    return this.users.size;
  }

  private async maybeReload(): Promise<void> {
    if (Date.now() - this.checkedAt < RECHECK_MS) return;
    this.reloading ??= (async () => {
      try {
        const st = await stat(this.file);
        const stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
        if (stamp === this.stamp) return;
        this.users = parseHtpasswd(await readFile(this.file, 'utf8'), this.file);
        this.stamp = stamp;
        this.verified.clear();
        this.log.info('htpasswd reloaded', { file: this.file, users: this.users.size });
      } catch (err) {
        this.log.error('htpasswd reload failed; keeping the previous users', { file: this.file, error: (err as Error).message });
      } finally {
        this.checkedAt = Date.now();
        this.reloading = null;
      }
    })();
    await this.reloading;
  }

  /** The user named `name`, if the file has it. */
  async lookup(name: string): Promise<UserRecord | undefined> {
    await this.maybeReload();
    const u = this.users.get(name);
    return u && { name: u.name, fingerprint: u.fingerprint };
  }

  /** The user when `password` is theirs, else undefined (unknown users cost a bcrypt check too). */
  async verify(name: string, password: string): Promise<UserRecord | undefined> {
    await this.maybeReload();
    const u = this.users.get(name);
    if (!u) {
      // Same work as for a real user, so response times do not tell which names exist.
      await bcrypt.compare(password, this.dummy);
      return undefined;
    }
    const key = createHash('sha256').update(`${name}\0${password}\0${u.hash}`).digest('hex');
    const until = this.verified.get(key);
    if (until !== undefined && until > Date.now()) return { name: u.name, fingerprint: u.fingerprint };
    let p = this.pending.get(key);
    if (!p) {
      p = bcrypt.compare(password, u.hash).finally(() => this.pending.delete(key));
      this.pending.set(key, p);
    }
    if (!(await p)) return undefined;
    this.verified.set(key, Date.now() + VERIFIED_TTL_MS);
    if (this.verified.size > VERIFIED_MAX) this.verified.delete(this.verified.keys().next().value!);
    return { name: u.name, fingerprint: u.fingerprint };
  }
}
