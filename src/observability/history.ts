/**
 * What the status page charts and ranks, kept in this process: a per-minute ring of the last hour
 * of pull traffic (requests answered from cache or upstream, and their bytes) and the repositories
 * pulled most since start. Fed by the request log's hook in src/http/app.ts, next to the metrics
 * it mirrors (pullthrough_requests_total, pullthrough_served_bytes_total), so the page and
 * Prometheus count the same requests the same way.
 *
 * Prometheus keeps the long history; this keeps one hour so the page works without one. Memory is
 * bounded: 60 buckets, and at most `maxRepositories` repositories (the least pulled go first).
 */

/** One answered request, as the request log sees it. */
export interface RequestSample {
  readonly registry?: string;
  readonly repo?: string;
  /** The request kind (manifest, blob, tags, referrers, push, ops, …). */
  readonly kind: string;
  /** How the cache answered (hit, revalidated, stale, miss, pass), undefined when it did not. */
  readonly cache?: string;
  /** Body bytes sent. */
  readonly bytes: number;
}

/** One minute of pull traffic. */
export interface MinuteBucket {
  /** Start of the minute (ms since the epoch). */
  readonly start: number;
  /** Requests answered from the cache (hit, revalidated, stale). */
  readonly hits: number;
  /** Requests answered by fetching upstream (miss, pass). */
  readonly misses: number;
  /** Bytes sent from the cache: bytes the upstream did not have to send. */
  readonly cacheBytes: number;
  /** Bytes sent as they came from upstream. */
  readonly upstreamBytes: number;
}

/** A repository's pull traffic since start. */
export interface RepositoryStats {
  readonly registry: string;
  readonly repo: string;
  readonly requests: number;
  readonly hits: number;
  readonly bytes: number;
  /** Last request (ms since the epoch). */
  readonly lastAt: number;
}

/** The registry traffic the page counts: what clients pull (not pushes, tokens, probes). */
const PULL_KINDS = new Set(['manifest', 'blob', 'tags', 'referrers']);
const FROM_CACHE = new Set(['hit', 'revalidated', 'stale']);
const FROM_UPSTREAM = new Set(['miss', 'pass']);
const MINUTE = 60_000;

interface Bucket {
  minute: number;
  hits: number;
  misses: number;
  cacheBytes: number;
  upstreamBytes: number;
}

export interface StatusHistoryOptions {
  /** Minutes kept (default 60). */
  readonly minutes?: number;
  /** Repositories kept (default 500). */
  readonly maxRepositories?: number;
  /** The clock (tests of the policy). */
  readonly now?: () => number;
}

/** One per process. Every method is cheap and never throws. */
export class StatusHistory {
  private readonly size: number;
  private readonly maxRepositories: number;
  private readonly now: () => number;
  private readonly ring: Bucket[];
  private readonly repos = new Map<string, { registry: string; repo: string; requests: number; hits: number; bytes: number; lastAt: number }>();

  constructor(opts: StatusHistoryOptions = {}) {
    this.size = opts.minutes ?? 60;
    this.maxRepositories = opts.maxRepositories ?? 500;
    this.now = opts.now ?? Date.now;
    this.ring = Array.from({ length: this.size }, () => ({ minute: -1, hits: 0, misses: 0, cacheBytes: 0, upstreamBytes: 0 }));
  }

  /** Counts an answered request; requests that are no pull, or that the cache did not answer, are left out. */
  request(s: RequestSample): void {
    if (!PULL_KINDS.has(s.kind) || s.cache === undefined) return;
    const hit = FROM_CACHE.has(s.cache);
    if (!hit && !FROM_UPSTREAM.has(s.cache)) return;
    const now = this.now();
    const minute = Math.floor(now / MINUTE);
    const b = this.ring[minute % this.size]!;
    if (b.minute !== minute) Object.assign(b, { minute, hits: 0, misses: 0, cacheBytes: 0, upstreamBytes: 0 });
    const bytes = Number.isFinite(s.bytes) && s.bytes > 0 ? s.bytes : 0;
    if (hit) {
      b.hits++;
      b.cacheBytes += bytes;
    } else {
      b.misses++;
      b.upstreamBytes += bytes;
    }
    if (s.registry === undefined || !s.repo) return;
    const key = `${s.registry}/${s.repo}`;
    let r = this.repos.get(key);
    if (!r) {
      if (this.repos.size >= this.maxRepositories) this.prune();
      r = { registry: s.registry, repo: s.repo, requests: 0, hits: 0, bytes: 0, lastAt: now };
      this.repos.set(key, r);
    }
    r.requests++;
    if (hit) r.hits++;
    r.bytes += bytes;
    r.lastAt = now;
  }

  /** The last `minutes` minutes, oldest first, the current (unfinished) minute last; quiet minutes are zeros. */
  minutes(): MinuteBucket[] {
    const current = Math.floor(this.now() / MINUTE);
    const out: MinuteBucket[] = [];
    for (let m = current - this.size + 1; m <= current; m++) {
      const b = this.ring[((m % this.size) + this.size) % this.size]!;
      const live = b.minute === m;
      out.push({
        start: m * MINUTE,
        hits: live ? b.hits : 0,
        misses: live ? b.misses : 0,
        cacheBytes: live ? b.cacheBytes : 0,
        upstreamBytes: live ? b.upstreamBytes : 0,
      });
    }
    return out;
  }

  /** The `n` repositories with the most requests since start (ties: most bytes, then most recent). */
  topRepositories(n: number): RepositoryStats[] {
    return [...this.repos.values()]
      .sort((a, b) => b.requests - a.requests || b.bytes - a.bytes || b.lastAt - a.lastAt)
      .slice(0, n)
      .map((r) => ({ ...r }));
  }

  /** Keeps the better half: a scan of a hostile number of names stays bounded and costs O(n log n) rarely. */
  private prune(): void {
    const keep = new Set(this.topRepositories(Math.floor(this.maxRepositories / 2)).map((r) => `${r.registry}/${r.repo}`));
    for (const key of this.repos.keys()) if (!keep.has(key)) this.repos.delete(key);
  }
}
