import { OciError } from './errors.js';
import { isDigest } from './digest.js';

// The distribution spec's grammar for repository path components and tags.
const COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
/** Longest repository name accepted (distribution's limit). */
export const MAX_NAME_LENGTH = 255;

/** True when `name` is a valid repository name (slash-separated lowercase components). */
export function isRepositoryName(name: string): boolean {
  if (name.length === 0 || name.length > MAX_NAME_LENGTH) return false;
  return name.split('/').every((c) => COMPONENT.test(c));
}

/**
 * Validates a repository name.
 * @throws OciError NAME_INVALID
 */
export function assertRepositoryName(name: string): void {
  if (!isRepositoryName(name)) throw new OciError('NAME_INVALID', 'invalid repository name', { name: name.slice(0, 300) });
}

/** True when `s` is a valid tag. */
export function isTag(s: string): boolean {
  return TAG.test(s);
}

/** A manifest reference: a tag or a digest. */
export type ManifestReference = { kind: 'tag'; tag: string } | { kind: 'digest'; digest: string };

/**
 * Parses the `<reference>` of `/v2/<name>/manifests/<reference>`.
 * @throws OciError DIGEST_INVALID when it contains ':' but is no valid digest, TAG_INVALID when it is
 *   neither a digest nor a valid tag.
 */
export function parseManifestReference(ref: string): ManifestReference {
  if (ref.includes(':')) {
    if (!isDigest(ref)) throw new OciError('DIGEST_INVALID', 'invalid digest', { reference: ref.slice(0, 200) });
    return { kind: 'digest', digest: ref };
  }
  if (!isTag(ref)) throw new OciError('TAG_INVALID', 'invalid tag', { reference: ref.slice(0, 200) });
  return { kind: 'tag', tag: ref };
}

/**
 * Parses the `<reference>` of a manifest GET or HEAD. A reference that is neither a valid tag nor
 * a digest (the conformance suite's `.INVALID_MANIFEST_NAME`) names no manifest that can exist:
 * the answer is 404 MANIFEST_UNKNOWN, as the spec and registry clients expect for "not there",
 * without asking upstream. Writes keep {@link parseManifestReference}'s TAG_INVALID.
 * @throws OciError DIGEST_INVALID when it contains ':' but is no valid digest; MANIFEST_UNKNOWN
 *   when it is no valid tag either.
 */
export function parseReadReference(ref: string): ManifestReference {
  if (!ref.includes(':') && !isTag(ref)) throw new OciError('MANIFEST_UNKNOWN', 'manifest unknown: the reference is neither a tag nor a digest', { reference: ref.slice(0, 200) });
  return parseManifestReference(ref);
}
