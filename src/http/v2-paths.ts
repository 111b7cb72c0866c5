import type { Target } from '../cache/results.js';
import type { Action } from '../auth/rules.js';
import { resolveTarget, type RegistryIndex } from './target.js';
import type { AccessControl } from './access.js';
import type { RequestView } from './request-view.js';

// The /v2 API's paths. The repository name is lazy (`.+?`) so the last `/manifests/`, `/blobs/`…
// segment is the API's, as distribution reads it.
const NAME = '(.+?)';
export const BASE = /^\/v2\/?$/;
export const MANIFEST = new RegExp(`^/v2/${NAME}/manifests/([^/]+)$`);
export const BLOB = new RegExp(`^/v2/${NAME}/blobs/([^/]+)$`);
export const UPLOAD = new RegExp(`^/v2/${NAME}/blobs/uploads(?:/[^/]*)?$`);
export const TAGS = new RegExp(`^/v2/${NAME}/tags/list$`);
export const REFERRERS = new RegExp(`^/v2/${NAME}/referrers/([^/]+)$`);

/** The `Warning` header of an answer served stale because the upstream failed (manifests, tags, referrers). */
export const STALE_WARNING = '110 pullthrough "Response is Stale"';

export function isV2(path: string): boolean {
  return path === '/v2' || path.startsWith('/v2/');
}

/** What {@link allowedTarget} reads. */
export interface TargetDeps {
  readonly index: RegistryIndex;
  readonly access?: AccessControl;
}

/**
 * The registry and repository a request is for, once the rules allow `action` on it (checked
 * before anything is read from the cache or asked upstream). Records both in the request's state.
 * @param ns the `ns` query parameter (the mirror door's registry), if the client sent one
 * @param name the repository name as the client spelled it
 * @throws OciError for unknown registries and bad names; AccessDeniedError,
 *   AuthenticationRequiredError when the rules refuse.
 */
export function allowedTarget(view: RequestView, deps: TargetDeps, ns: string | undefined, name: string, action: Action = 'pull'): Target {
  const t = resolveTarget(deps.index, view.get('host') || undefined, ns, name);
  view.state.registry = t.registry.name;
  view.state.repo = t.repo;
  deps.access?.authorize(view, t.registry.name, t.repo, action, name);
  return t;
}
