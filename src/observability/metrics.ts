import { Counter, Gauge, Registry, collectDefaultMetrics, type CounterConfiguration, type LabelValues } from 'prom-client';
import { RequestMetrics } from './request-metrics.js';

const DNS_RESULTS = ['answered', 'forwarded', 'refused', 'failed', 'malformed', 'dropped'] as const;

/** The DNS door's running totals (its DnsStats), as the metrics read them. */
export type DnsCounters = Record<(typeof DNS_RESULTS)[number] | 'answeredByFastPath', number>;

/**
 * A counter whose values are the DNS door's own totals, copied at each scrape: the door counts on
 * its hot path (and its native thread counts in C), and a scrape costs nothing between scrapes.
 */
function dnsCounter<L extends string>(
  metrics: { dnsStats: (() => DnsCounters) | undefined },
  config: Omit<CounterConfiguration<L>, 'collect'> & { read: (s: DnsCounters) => Array<[LabelValues<L>, number]> },
): Counter<L> {
  const { read, ...rest } = config;
  return new Counter<L>({
    ...rest,
    collect() {
      const stats = metrics.dnsStats?.();
      if (!stats) return;
      this.reset();
      for (const [labels, value] of read(stats)) this.inc(labels, value);
    },
  });
}

/**
 * Every Prometheus metric pullthrough exports; one instance per process. With `workers`, the
 * primary sums the workers' metrics (prom-client's AggregatorRegistry.aggregate); metrics that
 * must not be summed say how they combine with `aggregator`.
 */
export class Metrics {
  readonly registry = new Registry();

  /** pullthrough_requests_total and pullthrough_request_duration_seconds, counted on every request. */
  readonly requests = new RequestMetrics(this.registry, {
    requestsName: 'pullthrough_requests_total',
    requestsHelp: 'Client requests by kind (manifest, blob, tags, referrers, base, push, token, ops, other), cache result and status',
    durationName: 'pullthrough_request_duration_seconds',
    durationHelp: 'Time to complete a client request, by kind and cache result',
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120],
  });

  readonly bytesServed = new Counter({
    name: 'pullthrough_served_bytes_total',
    help: 'Bytes sent to clients, by where they came from (cache, upstream)',
    labelNames: ['source'] as const,
    registers: [this.registry],
  });

  readonly sendfileBytes = new Counter({
    name: 'pullthrough_served_sendfile_bytes_total',
    help: 'Of the bytes sent to clients from the cache, those the kernel sent from the file by sendfile (plain HTTP; storage.sendfile)',
    registers: [this.registry],
  });

  readonly upstreamRequests = new Counter({
    name: 'pullthrough_upstream_requests_total',
    help: 'Requests pullthrough made upstream, by registry, method, kind and status (0 = no answer)',
    labelNames: ['registry', 'method', 'kind', 'status'] as const,
    registers: [this.registry],
  });

  readonly upstreamBytes = new Counter({
    name: 'pullthrough_upstream_bytes_total',
    help: 'Blob bytes received from upstreams',
    labelNames: ['registry'] as const,
    registers: [this.registry],
  });

  readonly rateLimitRemaining = new Gauge({
    name: 'pullthrough_upstream_ratelimit_remaining',
    help: "Docker Hub's ratelimit-remaining as last reported by the upstream",
    labelNames: ['registry'] as const,
    // Workers share the upstream account: the lowest any of them last saw (summing would be wrong).
    aggregator: 'min',
    registers: [this.registry],
  });

  readonly upstreamUp = new Gauge({
    name: 'pullthrough_upstream_up',
    help: "1 while an entry of a registry's upstream chain is used, 0 while it is skipped (failures or 429; docs/upstream-chains.md)",
    labelNames: ['registry', 'upstream'] as const,
    // Health is tracked per process: an entry counts as up only when every worker uses it.
    aggregator: 'min',
    registers: [this.registry],
  });

  readonly upstreamFailovers = new Counter({
    name: 'pullthrough_upstream_failovers_total',
    help: 'Calls passed on to the next entry of an upstream chain, by registry and reason (unavailable, status_5xx, rate_limited, not_found, integrity, skipped)',
    labelNames: ['registry', 'reason'] as const,
    registers: [this.registry],
  });

  readonly staleServed = new Counter({
    name: 'pullthrough_stale_served_total',
    help: 'Manifests, tag lists or referrers served stale because the upstream failed',
    labelNames: ['registry'] as const,
    registers: [this.registry],
  });

  readonly staleAnswers = new Counter({
    name: 'pullthrough_stale_answers_total',
    help: 'Cached answers (tags, tag lists, referrers) served without a fresh upstream answer, by reason: upstream_error (429/5xx, unreachable, timeout), deadline (revalidation slower than cache.revalidateDeadline), offline (offline mode)',
    labelNames: ['registry', 'reason'] as const,
    registers: [this.registry],
  });

  readonly fillsInFlight = new Gauge({
    name: 'pullthrough_blob_fills_in_flight',
    help: 'Blob downloads from upstream in progress on this replica',
    registers: [this.registry],
  });

  readonly fillFailures = new Counter({
    name: 'pullthrough_blob_fill_failures_total',
    help: 'Blob downloads that failed (upstream error, digest or size mismatch, timeout)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly cacheSizeBytes = new Gauge({
    name: 'pullthrough_cache_size_bytes',
    help: 'Bytes of blobs in the cache (as recorded in metadata)',
    // Every worker reads the same shared total: summing would multiply it; max() as across replicas.
    aggregator: 'max',
    registers: [this.registry],
  });

  readonly cacheMaxSizeBytes = new Gauge({
    name: 'pullthrough_cache_max_size_bytes',
    help: 'cache.maxSize in bytes; 0 when the cache is not bounded',
    // A setting, the same in every worker: summing would multiply it.
    aggregator: 'max',
    registers: [this.registry],
  });

  readonly evictions = new Counter({
    name: 'pullthrough_evictions_total',
    help: 'Blobs evicted to stay under cache.maxSize',
    registers: [this.registry],
  });

  readonly evictedBytes = new Counter({
    name: 'pullthrough_evicted_bytes_total',
    help: 'Bytes evicted to stay under cache.maxSize',
    registers: [this.registry],
  });

  readonly pinnedBytes = new Gauge({
    name: 'pullthrough_cache_pinned_bytes',
    help: 'Bytes of cached blobs kept by pins (admin API), as of the last eviction pass that had to evict',
    aggregator: 'max',
    registers: [this.registry],
  });

  readonly pinnedOverMaxSize = new Counter({
    name: 'pullthrough_eviction_pinned_over_max_total',
    help: 'Eviction passes that found pinned content alone over cache.maxSize',
    registers: [this.registry],
  });

  readonly denied = new Counter({
    name: 'pullthrough_denied_total',
    help: 'Requests refused by client authentication, the access rules or the rate limit, by door and reason',
    labelNames: ['door', 'reason'] as const,
    registers: [this.registry],
  });

  readonly fillWaits = new Counter({
    name: 'pullthrough_blob_fill_waits_total',
    help: 'Requests that waited for a blob another replica was downloading, by outcome (landed: served once stored; took_over: the other replica stopped and this one downloaded; gave_up: answered 503 after the wait bound)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly manifestWaits = new Counter({
    name: 'pullthrough_manifest_fetch_waits_total',
    help: 'Manifest misses that waited for another replica fetching the same manifest, by outcome (landed: served once stored; fetched: the other replica failed or took over 5 s, and this one fetched it)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly fillLeaseLost = new Counter({
    name: 'pullthrough_blob_fill_lease_lost_total',
    help: 'Downloads whose cross-replica lease expired and was taken by another replica (both then download the blob)',
    registers: [this.registry],
  });

  readonly degraded = new Counter({
    name: 'pullthrough_degraded_requests_total',
    help: 'Requests answered without the cache because a store was unreachable (reason: metadata_unavailable, blob_store_unavailable)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  /** The DNS door's counters, read at each scrape (set by the server when listen.dns is on). */
  dnsStats: (() => DnsCounters) | undefined;

  readonly dnsQueries = dnsCounter(this, {
    name: 'pullthrough_dns_queries_total',
    help: 'DNS door queries by result: answered (a registry name), forwarded, refused (other names from sources outside dns.allow), failed (forwarded, no resolver answered: SERVFAIL), malformed (FORMERR or NOTIMP sent), dropped (ignored, or more than the fast path could hand over)',
    labelNames: ['result'] as const,
    registers: [this.registry],
    read: (s) => DNS_RESULTS.map((result) => [{ result }, s[result]]),
  });

  readonly dnsFastPathAnswers = dnsCounter(this, {
    name: 'pullthrough_dns_fast_path_answers_total',
    help: 'Of the DNS door answers for registry names, those its native UDP fast path sent without JavaScript',
    labelNames: [] as const,
    registers: [this.registry],
    read: (s) => [[{}, s.answeredByFastPath]],
  });

  constructor() {
    // The event-loop lag monitor samples every 100 ms, not prom-client's default 10 ms: each sample
    // wakes the loop, and at 10 ms those wakeups were two thirds of an idle pullthrough's CPU
    // (13 against 4 clock ticks in 20 s; docs/performance.md). The lag is still measured exactly,
    // from 10 samples a second instead of 100.
    collectDefaultMetrics({ register: this.registry, prefix: 'pullthrough_process_', eventLoopMonitoringPrecision: 100 });
  }
}
