import { isDigest } from '../oci/digest.js';

/** More references than any real image has; a bound against hostile manifests. */
const MAX_REFS = 1000;

/**
 * The blobs an image manifest references (its config and layers), or none for an index, a
 * schema 1 manifest or a body that is not JSON. Never throws.
 */
export function referencedBlobs(body: Buffer): string[] {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    return [];
  }
  if (typeof doc !== 'object' || doc === null) return [];
  const m = doc as { config?: { digest?: unknown }; layers?: unknown };
  if (!Array.isArray(m.layers)) return [];
  const out: string[] = [];
  const add = (d: unknown): void => {
    if (typeof d === 'string' && isDigest(d) && out.length < MAX_REFS) out.push(d);
  };
  add(m.config?.digest);
  for (const l of m.layers) add((l as { digest?: unknown } | null)?.digest);
  return out;
}
