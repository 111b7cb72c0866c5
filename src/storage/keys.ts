import { isDigest } from '../oci/digest.js';

/**
 * The BlobStore key of a blob: `blobs/<alg>/<first two hex>/<hex>`, a layout that keeps
 * directories small on filesystems and spreads S3 prefixes.
 * @throws Error for a malformed digest (callers validate first; this is a guard against traversal).
 */
export function blobKey(digest: string): string {
  if (!isDigest(digest)) throw new Error(`not a digest: ${digest.slice(0, 100)}`);
  const [alg, hex] = digest.split(':') as [string, string];
  return `blobs/${alg}/${hex.slice(0, 2)}/${hex}`;
}

/** The digest a {@link blobKey} was made from, or null for foreign keys. */
export function digestOfBlobKey(key: string): string | null {
  const m = /^blobs\/(sha256|sha512)\/[a-f0-9]{2}\/([a-f0-9]+)$/.exec(key);
  if (!m) return null;
  const d = `${m[1]}:${m[2]}`;
  return isDigest(d) ? d : null;
}
