/**
 * The status page's data (GET /api/v1/status-summary): the last hour's hit ratios and bytes saved,
 * per registry the upstream health and Docker Hub's remaining pull limit, downloads in progress,
 * usage against cache.maxSize, top repositories and recent errors. Everything is read from what
 * the process already keeps (metrics, the download tracker, the history, the recent log events):
 * building it makes no upstream request and touches storage once (the usage total).
 */
import type { Metrics } from '../observability/metrics.js';
import type { StatusHistory, MinuteBucket, RepositoryStats } from '../observability/history.js';
import type { RecentEvents, RecentEvent } from '../observability/recent-events.js';
import type { DownloadProgress, DownloadTracker } from '../cache/downloads.js';
import type { MetadataStore } from '../storage/metadata-store.js';
import type { Config } from '../config/index.js';

/** One upstream entry's health as the upstream chain reports it (pullthrough_upstream_up). */
export interface UpstreamEntryHealth {
  readonly upstream: string;
  readonly up: boolean;
}

/** A configured registry's upstream, as the page shows it. */
export interface RegistryStatus {
  readonly name: string;
  /**
   * `up`/`down` from the upstream chain's health (pullthrough_upstream_up, when this build has
   * it); else from traffic: `answering` when the last upstream request answered, `failing` when it
   * failed (no answer, 429, 5xx), `idle` before any request.
   */
  readonly health: 'up' | 'down' | 'answering' | 'failing' | 'idle';
  /** Where `health` comes from. */
  readonly source: 'chain' | 'traffic';
  /** Per upstream entry, when the chain's health is known. */
  readonly upstreams: readonly UpstreamEntryHealth[];
  /** Last upstream request that answered / failed, as seen by sampling (ms since the epoch). */
  readonly lastSuccessAt: number | null;
  readonly lastFailureAt: number | null;
  /** The cause of the last `upstream failing` line for this registry. */
  readonly lastCause: string | null;
  /** Docker Hub's `ratelimit-remaining` as last reported (pullthrough_upstream_ratelimit_remaining). */
  readonly rateLimitRemaining: number | null;
}

export interface StatusSummary {
  readonly generatedAt: string;
  readonly instance: string;
  readonly lastHour: {
    /** Per minute, oldest first; the last is the current minute. */
    readonly minutes: readonly MinuteBucket[];
    readonly hits: number;
    readonly misses: number;
    /** hits / (hits + misses); null without traffic. */
    readonly requestHitRatio: number | null;
    readonly cacheBytes: number;
    readonly upstreamBytes: number;
    /** cacheBytes / (cacheBytes + upstreamBytes); null without bytes. */
    readonly byteHitRatio: number | null;
    /** Bytes served from the cache: what the upstream did not have to send. */
    readonly bytesSaved: number;
  };
  readonly registries: readonly RegistryStatus[];
  readonly downloads: readonly DownloadProgress[];
  readonly usage: { readonly bytes: number | null; readonly maxSize: number | null; readonly error?: string };
  readonly topRepositories: readonly RepositoryStats[];
  readonly recentErrors: readonly RecentEvent[];
}

/** What the summary reads. */
export interface StatusSources {
  readonly config: Pick<Config, 'instanceName' | 'registries' | 'cache'>;
  readonly metrics: Metrics;
  readonly meta: Pick<MetadataStore, 'totalBlobSize'>;
  readonly downloads: Pick<DownloadTracker, 'list'>;
  readonly history: StatusHistory;
  readonly events: RecentEvents;
  readonly activity: UpstreamActivity;
}

/** The chain's health gauge, added by the upstream-chains work; read by name so either build works. */
const UPSTREAM_UP = 'pullthrough_upstream_up';
const TOP_REPOSITORIES = 10;
/** Upstream answers that mean the upstream is failing (0 = no answer). */
const FAILING_STATUS = /^(0|429|5\d\d)$/;

/**
 * When each registry's upstream last answered and last failed, from pullthrough_upstream_requests_total
 * sampled every few seconds: no hook in the upstream client, at the cost of the sampling interval's
 * precision.
 */
export class UpstreamActivity {
  private readonly totals = new Map<string, { ok: number; failed: number; lastSuccessAt: number | null; lastFailureAt: number | null }>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly metrics: Metrics,
    private readonly now: () => number = Date.now,
  ) {}

  /** Samples every `everyMs` until stop(); the timer never keeps the process alive. */
  start(everyMs = 5000): void {
    void this.sample();
    this.timer = setInterval(() => void this.sample(), everyMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Reads the counter once; a registry whose answered (failed) count grew answered (failed) since the last sample. Never throws. */
  async sample(): Promise<void> {
    try {
      const now = this.now();
      const seen = new Map<string, { ok: number; failed: number }>();
      for (const v of (await this.metrics.upstreamRequests.get()).values) {
        const registry = String(v.labels.registry ?? '');
        const s = seen.get(registry) ?? { ok: 0, failed: 0 };
        if (FAILING_STATUS.test(String(v.labels.status ?? ''))) s.failed += v.value;
        else s.ok += v.value;
        seen.set(registry, s);
      }
      for (const [registry, s] of seen) {
        const t = this.totals.get(registry) ?? { ok: 0, failed: 0, lastSuccessAt: null, lastFailureAt: null };
        if (s.ok > t.ok) t.lastSuccessAt = now;
        if (s.failed > t.failed) t.lastFailureAt = now;
        t.ok = s.ok;
        t.failed = s.failed;
        this.totals.set(registry, t);
      }
    } catch {
      // A sample missed is a few seconds of precision lost, nothing more.
    }
  }

  /** Last answer and failure seen for `registry`. */
  of(registry: string): { lastSuccessAt: number | null; lastFailureAt: number | null } {
    const t = this.totals.get(registry);
    return { lastSuccessAt: t?.lastSuccessAt ?? null, lastFailureAt: t?.lastFailureAt ?? null };
  }
}

/** Builds the summary. Never throws: a part that cannot be read is shown as unknown. */
export async function buildStatusSummary(src: StatusSources): Promise<StatusSummary> {
  await src.activity.sample();
  const minutes = src.history.minutes();
  let hits = 0;
  let misses = 0;
  let cacheBytes = 0;
  let upstreamBytes = 0;
  for (const m of minutes) {
    hits += m.hits;
    misses += m.misses;
    cacheBytes += m.cacheBytes;
    upstreamBytes += m.upstreamBytes;
  }
  const recentErrors = src.events.list();
  return {
    generatedAt: new Date().toISOString(),
    instance: src.config.instanceName,
    lastHour: {
      minutes,
      hits,
      misses,
      requestHitRatio: hits + misses > 0 ? hits / (hits + misses) : null,
      cacheBytes,
      upstreamBytes,
      byteHitRatio: cacheBytes + upstreamBytes > 0 ? cacheBytes / (cacheBytes + upstreamBytes) : null,
      bytesSaved: cacheBytes,
    },
    registries: await registries(src, recentErrors),
    downloads: src.downloads.list(),
    usage: await usage(src),
    topRepositories: src.history.topRepositories(TOP_REPOSITORIES),
    recentErrors,
  };
}

async function registries(src: StatusSources, events: readonly RecentEvent[]): Promise<RegistryStatus[]> {
  const limits = new Map<string, number>();
  for (const v of (await src.metrics.rateLimitRemaining.get()).values) limits.set(String(v.labels.registry), v.value);
  const chain = new Map<string, UpstreamEntryHealth[]>();
  const upGauge = src.metrics.registry.getSingleMetric(UPSTREAM_UP);
  if (upGauge) {
    for (const v of (await upGauge.get()).values) {
      const registry = String(v.labels.registry ?? '');
      chain.set(registry, [...(chain.get(registry) ?? []), { upstream: String(v.labels.upstream ?? ''), up: v.value > 0 }]);
    }
  }
  return Object.keys(src.config.registries)
    .sort()
    .map((name) => {
      const { lastSuccessAt, lastFailureAt } = src.activity.of(name);
      // events are newest first: the first `upstream failing` line for this registry is the last cause
      const cause = events.find((e) => e.msg === 'upstream failing' && e.fields.registry === name)?.fields.cause ?? null;
      const entries = chain.get(name) ?? [];
      let health: RegistryStatus['health'];
      if (entries.length) health = entries.some((e) => e.up) ? 'up' : 'down';
      else if (lastSuccessAt === null && lastFailureAt === null) health = 'idle';
      else health = (lastFailureAt ?? -1) > (lastSuccessAt ?? -1) ? 'failing' : 'answering';
      return {
        name,
        health,
        source: entries.length ? 'chain' : 'traffic',
        upstreams: entries,
        lastSuccessAt,
        lastFailureAt,
        lastCause: cause,
        rateLimitRemaining: limits.get(name) ?? null,
      };
    });
}

async function usage(src: StatusSources): Promise<StatusSummary['usage']> {
  const maxSize = src.config.cache.maxSize;
  try {
    return { bytes: await src.meta.totalBlobSize(), maxSize };
  } catch (err) {
    return { bytes: null, maxSize, error: `metadata store: ${(err as Error).message}`.slice(0, 300) };
  }
}
