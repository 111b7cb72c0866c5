/**
 * Image references as users write them (`alpine:3`, `docker.io/library/alpine:3`,
 * `quay.io/org/app@sha256:…`), resolved against the configured registries the way the mirror
 * resolves a request path (src/http/target.ts): a first component with a dot, a colon or
 * `localhost` names the registry, else `defaultRegistry`; docker.io gets `library/` for one-part
 * names; neither tag nor digest means `latest`, as Docker does.
 */
import type { RegistryConfig } from '../config/index.js';
import { resolveTarget, type RegistryIndex } from '../http/target.js';
import { isDigest } from '../oci/digest.js';
import { isTag, type ManifestReference } from '../oci/reference.js';
import { OciError } from '../oci/errors.js';
import { AdminRequestError } from './errors.js';

/** A parsed, resolved image reference. */
export interface ImageRef {
  readonly registry: RegistryConfig;
  readonly repo: string;
  readonly reference: ManifestReference;
  /** `registry/repo:tag` or `registry/repo@digest`: the canonical spelling, for answers and pin keys. */
  readonly canonical: string;
}

/** The tag or digest of a reference as text. */
export function referenceText(r: ManifestReference): string {
  return r.kind === 'tag' ? r.tag : r.digest;
}

/** `registry/repo:tag` or `registry/repo@digest`. */
export function canonicalRef(registry: string, repo: string, reference: string): string {
  return `${registry}/${repo}${reference.includes(':') ? '@' : ':'}${reference}`;
}

/**
 * Parses `input` as an image reference.
 * @throws AdminRequestError 400 INVALID_REFERENCE (malformed name, tag or digest) or 404
 *   UNKNOWN_REGISTRY (a registry pullthrough does not serve).
 */
export function parseImageRef(index: RegistryIndex, input: unknown): ImageRef {
  if (typeof input !== 'string' || input.length === 0 || input.length > 1024) {
    throw new AdminRequestError(400, 'INVALID_REFERENCE', 'a reference is required, e.g. alpine:3, docker.io/library/alpine:3 or quay.io/org/app@sha256:…');
  }
  let name = input.trim();
  let reference: ManifestReference = { kind: 'tag', tag: 'latest' };
  const at = name.indexOf('@');
  if (at >= 0) {
    const digest = name.slice(at + 1);
    if (!isDigest(digest)) throw new AdminRequestError(400, 'INVALID_REFERENCE', `${input}: ${JSON.stringify(digest)} is not a digest (sha256:<64 hex>)`);
    reference = { kind: 'digest', digest };
    name = name.slice(0, at);
    // `name:tag@digest`: the digest decides, as Docker does.
    const colon = name.lastIndexOf(':');
    if (colon > name.lastIndexOf('/')) name = name.slice(0, colon);
  } else {
    const colon = name.lastIndexOf(':');
    if (colon > name.lastIndexOf('/')) {
      const tag = name.slice(colon + 1);
      if (!isTag(tag)) throw new AdminRequestError(400, 'INVALID_REFERENCE', `${input}: ${JSON.stringify(tag)} is not a valid tag`);
      reference = { kind: 'tag', tag };
      name = name.slice(0, colon);
    }
  }
  let target;
  try {
    target = resolveTarget(index, undefined, undefined, name);
  } catch (err) {
    if (!(err instanceof OciError)) throw err;
    if (err.code === 'DENIED') throw new AdminRequestError(404, 'UNKNOWN_REGISTRY', `${input}: ${err.message}`);
    throw new AdminRequestError(400, 'INVALID_REFERENCE', `${input}: invalid repository name ${JSON.stringify(name)} (lowercase letters, digits, . _ - and /)`);
  }
  return { registry: target.registry, repo: target.repo, reference, canonical: canonicalRef(target.registry.name, target.repo, referenceText(reference)) };
}
