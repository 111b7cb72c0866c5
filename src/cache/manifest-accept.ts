import { ALL_MANIFEST_TYPES, isIndexType } from '../oci/media-types.js';

/** The media types to ask the upstream for on behalf of a client's Accept set (null: any). */
export function upstreamAcceptList(accepted: Set<string> | null): readonly string[] {
  return accepted === null ? ALL_MANIFEST_TYPES : [...accepted];
}

/**
 * The key of a tag's record for a client's Accept set. Records are kept per Accept class:
 * clients that cannot take an index may get a different manifest for the same tag from upstream,
 * and must not flip the record others rely on.
 */
export function tagRecordKey(tag: string, accepted: Set<string> | null): string {
  const takesIndex = accepted === null || [...accepted].some(isIndexType);
  return takesIndex ? tag : `${tag}~single`;
}
