import type { RemoteRegistries, RemoteRepository } from '../upstream/remote.js';
import { UpstreamStatusError } from '../upstream/errors.js';
import type { Target } from './results.js';

/**
 * A request's target with its remote repository resolved once: what every policy works with.
 * `space` is the namespace under which what the upstream told us is kept (links, tag records,
 * shared in-flight requests): the registry name, plus the upstream account the repository maps to
 * when it has one of its own, so what one account was shown never vouches for a request made
 * with another. `key` is `<space>/<repository>`.
 */
export interface RemoteTarget {
  readonly t: Target;
  readonly remote: RemoteRepository;
  readonly space: string;
  readonly key: string;
}

/** Resolves `t` against `remotes` (the configured credentials, or the client's own). */
export function remoteTarget(remotes: RemoteRegistries, t: Target): RemoteTarget {
  const remote = remotes.for(t.registry).repository(t.repo, t.credentials);
  const space = remote.account ? `${t.registry.name}#${remote.account}` : t.registry.name;
  return { t, remote, space, key: `${space}/${t.repo}` };
}

/**
 * What a client gets when an existence question (`statBlob`, `headManifest`) was answered "not
 * there": the upstream's 404, as it reached clients before the remote answered null (a HEAD
 * carries no message; http/error-mapping.ts picks BLOB_UNKNOWN / MANIFEST_UNKNOWN).
 */
export function notFoundUpstream(registry: string): UpstreamStatusError {
  return new UpstreamStatusError(registry, 404, undefined, undefined, undefined);
}
