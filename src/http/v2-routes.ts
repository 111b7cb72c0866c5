import type { Context } from 'koa';
import Router from '@koa/router';
import { OciError } from '../oci/errors.js';
import { parseDigest } from '../oci/digest.js';
import { parseManifestReference } from '../oci/reference.js';
import type { PullThroughCache } from '../cache/pull-through.js';
import type { Target } from '../cache/results.js';
import type { RegistryIndex } from './target.js';
import { allowedTarget, BASE, BLOB, MANIFEST, REFERRERS, STALE_WARNING, TAGS, UPLOAD } from './v2-paths.js';
import { TOKEN_RELAY_PATH, type DoorAuth } from './door-auth.js';
import type { RequestState } from './state.js';
import type { AccessControl } from './access.js';
import type { Action } from '../auth/rules.js';

/** Which door a request came through; only the TLS and CONNECT doors relay pushes. */
export type DoorKind = 'mirror' | 'tls' | 'proxy';

/** Relays a push (or other write) to the real upstream with the client's own credentials. */
export type PushRelay = (ctx: Context, target: Target) => Promise<void>;

export interface V2Deps {
  readonly cache: PullThroughCache;
  readonly index: RegistryIndex;
  readonly door: DoorKind;
  readonly push?: PushRelay;
  /** Challenges and the token relay on doors that stand in for a registry. */
  readonly doorAuth?: DoorAuth;
  /** The access rules (and the identity the authentication middleware established). */
  readonly access?: AccessControl;
}

function st(ctx: Context): RequestState {
  return ctx.state as RequestState;
}

function target(ctx: Context, deps: V2Deps, name: string, action: Action = 'pull'): Target {
  return allowedTarget(ctx, deps, typeof ctx.query.ns === 'string' ? ctx.query.ns : undefined, name, action);
}

function readOnly(ctx: Context): boolean {
  return ctx.method === 'GET' || ctx.method === 'HEAD';
}

/**
 * The /v2 API (OCI distribution spec) apart from the pull routes the front answers: writes (relayed
 * or refused), tags, referrers, the token relay and the upstream's other endpoints.
 */
export function v2Router(deps: V2Deps): Router {
  const router = new Router();
  const { cache } = deps;

  // GET and HEAD of /v2/, manifests and blobs never reach koa: the front answers them
  // (pull-routes.ts). What comes here is every other method on those paths.
  router.all(BASE, (ctx) => {
    st(ctx).kind = 'base';
    throw new OciError('UNSUPPORTED', `${ctx.method} is not supported on /v2/`);
  });

  router.all(TOKEN_RELAY_PATH, async (ctx) => {
    const registry = deps.doorAuth ? deps.index.lookup(ctx.get('host') || undefined) : undefined;
    if (!registry) throw new OciError('NAME_UNKNOWN', 'unknown endpoint');
    st(ctx).registry = registry.name;
    await deps.doorAuth!.token(ctx, registry);
  });

  /**
   * Writes (pushes, deletes) are relayed to the upstream on the TLS and CONNECT doors and refused
   * on the mirror; `validate` checks the reference once the door is known to allow writes.
   */
  const relayWrite = (ctx: Context, what: string, validate: () => void = () => {}): Promise<void> => {
    st(ctx).kind = 'push';
    if (deps.door === 'mirror' || !deps.push) {
      throw new OciError('UNSUPPORTED', `${ctx.method} of ${what} is not supported through the mirror endpoint; push to the registry directly or through the TLS/proxy door`);
    }
    validate();
    return deps.push(ctx, target(ctx, deps, ctx.captures![0]!, 'push'));
  };

  router.all(UPLOAD, (ctx) => relayWrite(ctx, 'blob uploads'));

  router.all(MANIFEST, (ctx) => {
    st(ctx).kind = 'manifest';
    return relayWrite(ctx, 'manifests', () => parseManifestReference(ctx.captures![1]!));
  });

  router.all(BLOB, (ctx) => {
    st(ctx).kind = 'blob';
    return relayWrite(ctx, 'blobs', () => parseDigest(ctx.captures![1]!));
  });

  router.all(TAGS, async (ctx) => {
    st(ctx).kind = 'tags';
    const clientName = ctx.captures![0]!;
    const t = target(ctx, deps, clientName);
    if (!readOnly(ctx)) throw new OciError('UNSUPPORTED', `${ctx.method} is not supported on tags/list`);
    const nRaw = ctx.query.n;
    let n: number | undefined;
    if (nRaw !== undefined) {
      if (typeof nRaw !== 'string' || !/^\d{1,7}$/.test(nRaw)) throw new OciError('PAGINATION_NUMBER_INVALID', 'n must be a non-negative integer');
      n = Number(nRaw);
    }
    const last = typeof ctx.query.last === 'string' ? ctx.query.last : undefined;
    const r = await cache.tags(t, { n, last }, clientName);
    st(ctx).cache = r.cache;
    st(ctx).staleReason = r.staleReason;
    if (r.cache === 'stale') ctx.set('warning', STALE_WARNING);
    if (r.next) {
      // The client comes back here, by the name (and ns) it used.
      const q = new URLSearchParams({ n: String(r.next.n), last: r.next.last });
      if (typeof ctx.query.ns === 'string') q.set('ns', ctx.query.ns);
      ctx.set('link', `</v2/${clientName}/tags/list?${q}>; rel="next"`);
    }
    ctx.type = 'application/json';
    st(ctx).bytes = r.body.length;
    ctx.status = 200;
    ctx.length = r.body.length;
    if (ctx.method !== 'HEAD') ctx.body = r.body;
  });

  router.all(REFERRERS, async (ctx) => {
    st(ctx).kind = 'referrers';
    const t = target(ctx, deps, ctx.captures![0]!);
    const digest = parseDigest(ctx.captures![1]!).value;
    if (!readOnly(ctx)) throw new OciError('UNSUPPORTED', `${ctx.method} is not supported on referrers`);
    const artifactType = typeof ctx.query.artifactType === 'string' ? ctx.query.artifactType : undefined;
    const r = await cache.referrers(t, digest, artifactType);
    st(ctx).cache = r.cache;
    st(ctx).staleReason = r.staleReason;
    if (r.cache === 'stale') ctx.set('warning', STALE_WARNING);
    for (const [k, v] of Object.entries(r.headers)) ctx.set(k, v);
    st(ctx).bytes = r.body.length;
    ctx.status = 200;
    ctx.length = r.body.length;
    if (ctx.method !== 'HEAD') ctx.body = r.body;
  });

  router.all(/^\/v2\/.*/, async (ctx) => {
    st(ctx).kind = 'other';
    // On the TLS and CONNECT doors the client believes it talks to the registry itself: paths
    // that are not the pull API (e.g. quay.io's token endpoint /v2/auth) go to it unchanged.
    // Not while client authentication is on: the client's Authorization is pullthrough's, and it
    // has no business with the upstream's own endpoints (its token service among them).
    const registry = deps.door !== 'mirror' && deps.push && !deps.access?.authEnabled ? deps.index.lookup(ctx.get('host') || undefined) : undefined;
    if (registry) {
      st(ctx).registry = registry.name;
      return deps.push!(ctx, { registry, repo: '' });
    }
    if (ctx.path === '/v2/_catalog') throw new OciError('UNSUPPORTED', 'a pull-through mirror offers no catalog');
    throw new OciError('NAME_UNKNOWN', 'unknown endpoint');
  });

  return router;
}
