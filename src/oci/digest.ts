import { createHash, type Hash } from 'node:crypto';
import { OciError } from './errors.js';

/** Digest algorithms pullthrough can verify, with the length of their hex encoding. */
const ALGORITHMS: Record<string, number> = { sha256: 64, sha512: 128 };

/** A validated `algorithm:hex` content digest. */
export interface Digest {
  readonly algorithm: 'sha256' | 'sha512';
  readonly hex: string;
  /** The canonical `algorithm:hex` form. */
  readonly value: string;
}

/** True when `s` is syntactically a digest pullthrough can verify. */
export function isDigest(s: string): boolean {
  const i = s.indexOf(':');
  if (i < 0) return false;
  const len = ALGORITHMS[s.slice(0, i)];
  return len !== undefined && s.length - i - 1 === len && /^[a-f0-9]+$/.test(s.slice(i + 1));
}

/**
 * Parses a digest string.
 * @throws OciError DIGEST_INVALID when the syntax or the algorithm is not supported.
 */
export function parseDigest(s: string): Digest {
  if (!isDigest(s)) throw new OciError('DIGEST_INVALID', 'invalid digest', { digest: s.slice(0, 200) });
  const i = s.indexOf(':');
  return { algorithm: s.slice(0, i) as Digest['algorithm'], hex: s.slice(i + 1), value: s };
}

/** A hash object for the digest's algorithm. */
export function hasherFor(d: Digest): Hash {
  return createHash(d.algorithm);
}

/** The sha256 digest string of a buffer. */
export function sha256Of(data: Uint8Array): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

/** The digest of `data` computed with the same algorithm as `d`. */
export function digestWithAlgorithmOf(d: Digest, data: Uint8Array): string {
  return `${d.algorithm}:${createHash(d.algorithm).update(data).digest('hex')}`;
}
