/**
 * The admin API's endpoints (docs/admin.md, docs/admin-openapi.yaml), one route module per
 * concern, all under /api/v1. Reads never cause an upstream request: they look at the metadata
 * store and this process's downloads only.
 */
import type { Context } from 'koa';
import { parseDuration } from '../config/index.js';
import { compileGlob, GlobSyntaxError } from '../util/glob.js';
import { describeRule } from '../auth/rules.js';
import { ANONYMOUS } from '../auth/identity.js';
import type { AdminDeps, AdminRoutes } from './deps.js';
import type { AdminState } from './access.js';
import { AdminRequestError } from './errors.js';
import { Catalog } from './catalog.js';
import { parseImageRef, referenceText, type ImageRef } from './image-ref.js';
import { pin, unpin, listPins, rootsOf } from './pins.js';
import { purge, type PurgeSelector } from './purge.js';
import { PrefetchJobs } from './prefetch.js';

/** Largest JSON body accepted (a prefetch of many references fits easily). */
const MAX_BODY = 1 << 20;

/**
 * The request's JSON body (an object), or {} when there is none.
 * @throws AdminRequestError 400 INVALID_BODY, 413 BODY_TOO_LARGE
 */
async function jsonBody(ctx: Context): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of ctx.req) {
    n += (c as Buffer).length;
    if (n > MAX_BODY) throw new AdminRequestError(413, 'BODY_TOO_LARGE', `request body over ${MAX_BODY} bytes`);
    chunks.push(c as Buffer);
  }
  if (n === 0) return {};
  let v: unknown;
  try {
    v = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw new AdminRequestError(400, 'INVALID_BODY', `the body is not JSON: ${(err as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new AdminRequestError(400, 'INVALID_BODY', 'the body must be a JSON object');
  return v as Record<string, unknown>;
}

/** `platforms` of a body or query: null (all) or a list of `os/arch[/variant]`. @throws AdminRequestError 400 INVALID_PLATFORM */
function platformsOf(v: unknown): string[] | null {
  if (v === undefined || v === null) return null;
  const list = typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : v;
  if (!Array.isArray(list) || list.length === 0) throw new AdminRequestError(400, 'INVALID_PLATFORM', 'platforms: a list of os/arch[/variant], e.g. ["linux/amd64"]');
  for (const p of list) {
    if (typeof p !== 'string' || !/^[a-z0-9._-]+\/[a-z0-9._-]+(\/[a-z0-9._-]+)?$/.test(p)) {
      throw new AdminRequestError(400, 'INVALID_PLATFORM', `not a platform (os/arch[/variant], e.g. linux/arm64/v8): ${JSON.stringify(p)}`);
    }
  }
  return [...new Set(list as string[])];
}

/** `registry/repo` of a purge or listing, registry optional (defaultRegistry). @throws AdminRequestError 400/404 */
function repoOf(d: AdminDeps, v: unknown): { registry: string; repo: string } {
  if (typeof v !== 'string' || v === '') throw new AdminRequestError(400, 'INVALID_REFERENCE', 'repo: a repository, e.g. library/alpine or quay.io/org/app');
  if (v.includes('@') || /:[^/]*$/.test(v.replace(/^[^/]*:\d+\//, ''))) throw new AdminRequestError(400, 'INVALID_REFERENCE', `repo: ${v} has a tag or digest; name the repository only (or purge the reference)`);
  const r = parseImageRef(d.index, v);
  return { registry: r.registry.name, repo: r.repo };
}

const readRoutes: AdminRoutes = (router, d) => {
  /** Cached images, optionally of repositories matching a glob (`library/*`, `quay.io/org/**`). */
  router.get('/api/v1/images', async (ctx) => {
    const glob = typeof ctx.query.repo === 'string' && ctx.query.repo !== '' ? ctx.query.repo : undefined;
    let re: RegExp | undefined;
    if (glob !== undefined) {
      try {
        re = compileGlob(glob);
      } catch (err) {
        if (err instanceof GlobSyntaxError) throw new AdminRequestError(400, 'INVALID_GLOB', `repo ${JSON.stringify(glob)}: ${err.message}`);
        throw err;
      }
    }
    const images = (await Catalog.read(d.meta)).images();
    // The glob matches the repository alone or registry/repository (so `docker.io/library/*` works too).
    ctx.body = { images: re ? images.filter((i) => re.test(i.repo) || re.test(`${i.registry}/${i.repo}`)) : images };
  });

  /** Registries and repositories with their image counts and bytes. */
  router.get('/api/v1/repositories', async (ctx) => {
    const images = (await Catalog.read(d.meta)).images();
    const by = new Map<string, { registry: string; repo: string; tags: number; size: number }>();
    for (const i of images) {
      const k = `${i.registry}/${i.repo}`;
      const e = by.get(k) ?? { registry: i.registry, repo: i.repo, tags: 0, size: 0 };
      e.tags++;
      e.size += i.size;
      by.set(k, e);
    }
    ctx.body = { repositories: [...by.values()] };
  });

  /** Cache usage against cache.maxSize. */
  router.get('/api/v1/usage', async (ctx) => {
    const cat = await Catalog.read(d.meta);
    let used = 0;
    for (const b of cat.blobs.values()) used += b.size;
    let manifestBytes = 0;
    for (const m of cat.manifests.values()) manifestBytes += m.size;
    const pinned = new Set<string>();
    for (const p of cat.pins.values()) for (const b of cat.closure(rootsOf(cat, p.registry, p.repo, p.reference), p.platforms).blobs.keys()) pinned.add(b);
    let pinnedBytes = 0;
    for (const b of pinned) pinnedBytes += cat.blobs.get(b)?.size ?? 0;
    const maxSize = d.config.cache.maxSize;
    ctx.body = {
      usedBytes: used,
      maxSize,
      usedRatio: maxSize ? used / maxSize : null,
      blobs: cat.blobs.size,
      manifests: cat.manifests.size,
      manifestBytes,
      images: cat.images().length,
      pins: cat.pins.size,
      pinnedBytes,
      downloads: d.downloads.list().length,
    };
  });

  /** One reference: cached or not, which blobs are present, downloads in progress. */
  router.get('/api/v1/status', async (ctx) => {
    const ref = parseImageRef(d.index, ctx.query.ref);
    const cat = await Catalog.read(d.meta);
    const reference = referenceText(ref.reference);
    const tags = ref.reference.kind === 'tag' ? cat.tagsOf(ref.registry.name, ref.repo, ref.reference.tag) : [];
    const roots = rootsOf(cat, ref.registry.name, ref.repo, reference);
    const digest = roots.find((r) => cat.manifests.has(r)) ?? roots[0] ?? null;
    const c = digest ? cat.closure([digest]) : null;
    const blobs = c
      ? [...c.blobs.entries()].map(([b, size]) => ({
          digest: b,
          size,
          present: cat.blobs.has(b),
          downloading: d.downloads.forDigest(b).map((x) => ({ bytesDone: x.bytesDone, bytesTotal: x.bytesTotal ?? null })),
        }))
      : [];
    const manifestCached = digest !== null && cat.manifests.has(digest);
    ctx.body = {
      ref: ref.canonical,
      registry: ref.registry.name,
      repo: ref.repo,
      reference,
      digest,
      cached: manifestCached && (c?.missingManifests.size ?? 1) === 0 && blobs.every((b) => b.present),
      manifestCached,
      image: manifestCached ? cat.summary(ref.registry.name, ref.repo, ref.reference.kind === 'tag' ? ref.reference.tag : null, digest!, tags[0]?.record.checkedAt ?? null) : null,
      missingManifests: c ? [...c.missingManifests] : [],
      blobs,
      downloads: d.downloads.list().filter((x) => blobs.some((b) => b.digest === x.digest)),
    };
  });

  router.get('/api/v1/pins', async (ctx) => {
    ctx.body = { pins: await listPins(d.meta) };
  });
};

const writeRoutes: AdminRoutes = (router, d) => {
  /** Purge: { ref } | { repo } | { olderThan: "30d" } | { before: ISO time }, with dryRun. */
  router.post('/api/v1/purge', async (ctx) => {
    const b = await jsonBody(ctx);
    const given = ['ref', 'repo', 'olderThan', 'before'].filter((k) => b[k] !== undefined);
    if (given.length !== 1) throw new AdminRequestError(400, 'INVALID_BODY', 'name exactly one of ref, repo, olderThan, before');
    let sel: PurgeSelector;
    if (b.ref !== undefined) sel = { kind: 'ref', ref: parseImageRef(d.index, b.ref) };
    else if (b.repo !== undefined) sel = { kind: 'repo', ...repoOf(d, b.repo) };
    else if (b.olderThan !== undefined) {
      const ms = typeof b.olderThan === 'string' || typeof b.olderThan === 'number' ? parseDuration(b.olderThan) : null;
      if (ms === null || ms <= 0) throw new AdminRequestError(400, 'INVALID_DURATION', `olderThan: not a duration (use e.g. 12h, 30d, 2w): ${JSON.stringify(b.olderThan)}`);
      sel = { kind: 'olderThan', before: Date.now() - ms };
    } else {
      const t = typeof b.before === 'string' ? Date.parse(b.before) : NaN;
      if (!Number.isFinite(t)) throw new AdminRequestError(400, 'INVALID_TIME', `before: not an ISO time (e.g. 2026-01-31T00:00:00Z): ${JSON.stringify(b.before)}`);
      sel = { kind: 'olderThan', before: t };
    }
    ctx.body = await purge({ meta: d.meta, blobs: d.blobs, downloads: d.downloads, metrics: d.metrics, log: d.log, leaseMs: d.config.cache.fillLease }, sel, b.dryRun === true);
  });

  /** Pin { ref, platforms? }. */
  router.post('/api/v1/pins', async (ctx) => {
    const b = await jsonBody(ctx);
    const ref = parseImageRef(d.index, b.ref);
    ctx.status = 201;
    ctx.body = await pin(d.meta, ref, platformsOf(b.platforms));
    d.log.info('pinned', { ref: ref.canonical });
  });

  /** Unpin ?ref=. */
  router.delete('/api/v1/pins', async (ctx) => {
    const ref = parseImageRef(d.index, ctx.query.ref);
    await unpin(d.meta, ref);
    d.log.info('unpinned', { ref: ref.canonical });
    ctx.body = { ref: ref.canonical, pinned: false };
  });
};

const prefetchRoutes: AdminRoutes = (router, d) => {
  const jobs = new PrefetchJobs({ cache: d.cache, meta: d.meta, log: d.log });

  /** Prefetch { refs: [...], platforms?, pin? } → 202 with the job. */
  router.post('/api/v1/prefetch', async (ctx) => {
    const b = await jsonBody(ctx);
    const raw = typeof b.ref === 'string' ? [b.ref] : b.refs;
    if (!Array.isArray(raw) || raw.length === 0 || raw.length > 1000) throw new AdminRequestError(400, 'INVALID_BODY', 'refs: a list of 1 to 1000 image references');
    const refs: ImageRef[] = raw.map((r) => parseImageRef(d.index, r));
    const identity = (ctx.state as AdminState).identity ?? ANONYMOUS;
    for (const r of refs) {
      const decision = d.rules.decide(r.registry.name, r.repo, 'pull', identity);
      if (!decision.allowed) {
        const who = identity.user === undefined ? 'anonymous clients' : `user ${identity.user}`;
        throw new AdminRequestError(403, 'DENIED', `${r.canonical}: pull of ${r.registry.name}/${r.repo} denied: ${describeRule(decision.rule)} does not allow it to ${who}`);
      }
    }
    ctx.status = 202;
    const job = jobs.start(refs, platformsOf(b.platforms), b.pin === true);
    ctx.set('location', `/api/v1/jobs/${job.id}`);
    ctx.body = job;
  });

  router.get('/api/v1/jobs', (ctx) => {
    ctx.body = { jobs: jobs.list() };
  });

  router.get('/api/v1/jobs/:id', (ctx) => {
    const job = jobs.get(ctx.params.id ?? '');
    if (!job) throw new AdminRequestError(404, 'UNKNOWN_JOB', `no job ${String(ctx.params.id).slice(0, 100)} on this instance (jobs live in the process that started them)`);
    ctx.body = job;
  });
};

const offlineRoutes: AdminRoutes = (router, d) => {
  router.get('/api/v1/offline', (ctx) => {
    ctx.body = { offline: d.offline.list(), scope: 'instance' };
  });

  /** Switches a registry's offline mode: PUT { offline: true|false }. This process only. */
  router.put('/api/v1/registries/:name/offline', async (ctx) => {
    const reg = d.index.lookup(ctx.params.name);
    if (!reg) throw new AdminRequestError(404, 'UNKNOWN_REGISTRY', `registry ${String(ctx.params.name).slice(0, 255)} is not configured`);
    const b = await jsonBody(ctx);
    if (typeof b.offline !== 'boolean') throw new AdminRequestError(400, 'INVALID_BODY', 'offline: true or false');
    const changed = d.offline.set(reg.name, b.offline);
    if (changed) d.log.warn(b.offline ? 'registry switched offline' : 'registry switched online', { registry: reg.name, via: 'admin API' });
    ctx.body = { registry: reg.name, offline: b.offline, changed, scope: 'instance' };
  });
};

/** Every admin route module of issue 19 (the status page adds its own). */
export const ADMIN_ROUTES: readonly AdminRoutes[] = [readRoutes, writeRoutes, prefetchRoutes, offlineRoutes];
