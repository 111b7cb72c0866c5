import type { Context } from 'koa';
import type { Readable } from 'node:stream';
import Router from '@koa/router';
import { OciError } from '../oci/errors.js';
import { parseDigest } from '../oci/digest.js';
import { parseManifestReference, parseReadReference } from '../oci/reference.js';
import { acceptedTypes } from '../oci/media-types.js';
import type { PullThroughCache } from '../cache/pull-through.js';
import type { Target } from '../cache/results.js';
import { resolveTarget, type RegistryIndex } from './target.js';
import { parseRange } from './range.js';
import { TOKEN_RELAY_PATH, type DoorAuth } from './door-auth.js';
import type { RequestState } from './state.js';
import type { AccessControl } from './access.js';
import type { Action } from '../auth/rules.js';
import { recyclerOf } from '../util/reusable-buffers.js';

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

const NAME = '(.+?)';
const MANIFEST = new RegExp(`^/v2/${NAME}/manifests/([^/]+)$`);
const BLOB = new RegExp(`^/v2/${NAME}/blobs/([^/]+)$`);
const UPLOAD = new RegExp(`^/v2/${NAME}/blobs/uploads(?:/[^/]*)?$`);
const TAGS = new RegExp(`^/v2/${NAME}/tags/list$`);
const REFERRERS = new RegExp(`^/v2/${NAME}/referrers/([^/]+)$`);

function st(ctx: Context): RequestState {
  return ctx.state as RequestState;
}

/**
 * The registry and repository a request is for, once the rules allow `action` on it (checked
 * before anything is read from the cache or asked upstream).
 * @throws OciError for unknown registries and bad names; AccessDeniedError,
 *   AuthenticationRequiredError when the rules refuse.
 */
function target(ctx: Context, deps: V2Deps, name: string, action: Action = 'pull'): Target {
  const ns = typeof ctx.query.ns === 'string' ? ctx.query.ns : undefined;
  const t = resolveTarget(deps.index, ctx.get('host') || undefined, ns, name);
  st(ctx).registry = t.registry.name;
  st(ctx).repo = t.repo;
  deps.access?.authorize(ctx, t.registry.name, t.repo, action, name);
  return t;
}

function readOnly(ctx: Context): boolean {
  return ctx.method === 'GET' || ctx.method === 'HEAD';
}

/**
 * Sends a stream as the body, writing it to the response here rather than through koa's pipe:
 * each chunk's write callback (the bytes are in the kernel) hands the buffer back to streams that
 * reuse them, so a big blob is served from a few buffers instead of one fresh 1 MiB allocation per
 * read (page faults, and garbage the GC only collects after tens of MB). A failing stream aborts
 * the connection rather than ending it cleanly; a client that goes away destroys the stream.
 */
function streamBody(ctx: Context, stream: Readable): void {
  const res = ctx.res;
  ctx.respond = false;
  const recycle = recyclerOf(stream);
  // 'data' events rather than read() or async iteration: read() concatenates whatever chunks are
  // buffered into a new buffer (a copy of every byte, and an unrecyclable buffer).
  stream.on('data', (chunk: Buffer) => {
    st(ctx).bytes += chunk.length;
    if (!res.write(chunk, recycle ? () => recycle(chunk) : undefined)) stream.pause();
  });
  res.on('drain', () => stream.resume());
  stream.once('end', () => res.end());
  stream.once('error', () => res.destroy());
  res.once('close', () => stream.destroy());
}

/** The /v2 pull API (OCI distribution spec), answered from the pull-through cache. */
export function v2Router(deps: V2Deps): Router {
  const router = new Router();
  const { cache } = deps;

  router.all(/^\/v2\/?$/, async (ctx) => {
    st(ctx).kind = 'base';
    if (!readOnly(ctx)) throw new OciError('UNSUPPORTED', `${ctx.method} is not supported on /v2/`);
    ctx.set('docker-distribution-api-version', 'registry/2.0');
    const host = ctx.get('host');
    const registry = deps.doorAuth ? deps.index.lookup(host || undefined) : undefined;
    const challenge = registry ? await deps.doorAuth!.challenge(registry, host) : null;
    if (challenge) {
      st(ctx).registry = registry!.name;
      throw new OciError('UNAUTHORIZED', 'authentication required', undefined, { 'www-authenticate': challenge });
    }
    ctx.type = 'application/json';
    ctx.body = '{}';
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

  router.all(MANIFEST, async (ctx) => {
    st(ctx).kind = 'manifest';
    if (!readOnly(ctx)) return relayWrite(ctx, 'manifests', () => parseManifestReference(ctx.captures![1]!));
    const t = target(ctx, deps, ctx.captures![0]!);
    const ref = parseReadReference(ctx.captures![1]!);
    const head = ctx.method === 'HEAD';
    const m = await cache.manifest(t, ref, acceptedTypes(ctx.get('accept') || undefined), head);
    st(ctx).cache = m.cache;
    st(ctx).staleReason = m.staleReason;
    ctx.status = 200;
    ctx.set('docker-content-digest', m.digest);
    ctx.set('etag', `"${m.digest}"`);
    ctx.type = m.mediaType;
    if (m.cache === 'stale') ctx.set('warning', '110 pullthrough "Response is Stale"');
    if (head || !m.body) {
      ctx.length = m.size;
      return;
    }
    st(ctx).bytes = m.body.length;
    ctx.body = m.body;
  });

  router.all(BLOB, async (ctx) => {
    st(ctx).kind = 'blob';
    if (!readOnly(ctx)) return relayWrite(ctx, 'blobs', () => parseDigest(ctx.captures![1]!));
    const t = target(ctx, deps, ctx.captures![0]!);
    const digest = parseDigest(ctx.captures![1]!).value;
    const head = ctx.method === 'HEAD';
    const blob = await cache.blob(t, digest, head);
    st(ctx).cache = blob.cache;
    ctx.set('docker-content-digest', digest);
    ctx.set('etag', `"${digest}"`);
    ctx.set('accept-ranges', 'bytes');
    ctx.set('cache-control', 'max-age=31536000');
    ctx.type = 'application/octet-stream';
    const range = head ? undefined : parseRange(ctx.get('range') || undefined, blob.size);
    if (head) {
      ctx.status = 200;
      if (blob.size !== undefined) ctx.length = blob.size;
      return;
    }
    const location = await blob.redirect?.();
    if (location) {
      // The object store serves the bytes (and the Range) itself; pullthrough stays off the data path.
      st(ctx).cache = 'hit';
      ctx.status = 307;
      ctx.set('location', location);
      return;
    }
    const stream = await blob.open(range);
    if (range) {
      ctx.status = 206;
      ctx.set('content-range', `bytes ${range.start}-${range.end}/${blob.size}`);
      ctx.length = range.end - range.start + 1;
    } else {
      ctx.status = 200;
      if (blob.size !== undefined) ctx.length = blob.size;
    }
    streamBody(ctx, stream);
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
    if (r.cache === 'stale') ctx.set('warning', '110 pullthrough "Response is Stale"');
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
    if (r.cache === 'stale') ctx.set('warning', '110 pullthrough "Response is Stale"');
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
