/**
 * pullthrough_requests_total and pullthrough_request_duration_seconds: counted on every request,
 * exported at each scrape. prom-client's `inc` and `observe` check and hash their label object on
 * every call, and the caller builds that object (and the status's string) first: ~4 µs of a new
 * TLS connection's request path under load (docs/performance.md). Here a request finds its
 * series by two Map lookups of its kind and cache result and adds to plain numbers; the
 * exposition, in the shape prom-client gives (`get()`, which /metrics and the workers' sum read),
 * is built only when scraped.
 */
import type { Metric, Registry } from 'prom-client';

/** One kind + cache result: its counts by status and its duration histogram. */
interface Series {
  readonly kind: string;
  readonly cache: string;
  readonly byStatus: Map<number, number>;
  /** Observations per bucket (not cumulative), one per upper bound; above the last only in `count`. */
  readonly buckets: Float64Array;
  count: number;
  sum: number;
}

/** One value of a metric as prom-client's `get()` gives it; a histogram's name its series (`_bucket`, `_sum`, `_count`). */
interface Value {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

/** A metric as prom-client's `get()` gives it, which /metrics and the workers' sum read. */
interface Exposition {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'histogram';
  /** How the primary combines the workers' values (prom-client's AggregatorRegistry). */
  readonly aggregator: 'sum';
  readonly values: Value[];
}

/** What a prom-client Registry reads of a metric: its name, `get()` and `reset()`. */
interface ExportedMetric extends Omit<Exposition, 'values'> {
  get(): Promise<Exposition>;
  reset(): void;
}

/** Registers a metric whose values `values()` builds at each scrape. */
function exportMetric(registry: Registry, about: Omit<Exposition, 'values'>, values: () => Value[], reset: () => void): void {
  const metric: ExportedMetric = { ...about, get: async () => ({ ...about, values: values() }), reset };
  // The Registry needs only what ExportedMetric has; its type names prom-client's classes.
  registry.registerMetric(metric as unknown as Metric);
}

export interface RequestMetricsOptions {
  readonly requestsName: string;
  readonly requestsHelp: string;
  readonly durationName: string;
  readonly durationHelp: string;
  /** The histogram's upper bounds in seconds, ascending. */
  readonly buckets: readonly number[];
}

export class RequestMetrics {
  private readonly byKind = new Map<string, Map<string, Series>>();
  private readonly bounds: readonly number[];

  constructor(registry: Registry, o: RequestMetricsOptions) {
    this.bounds = [...o.buckets];
    // The two metrics are one tally: resetting either (Registry.resetMetrics resets both) empties both.
    const reset = (): void => this.byKind.clear();
    exportMetric(registry, { name: o.requestsName, help: o.requestsHelp, type: 'counter', aggregator: 'sum' }, () => this.counts(), reset);
    exportMetric(registry, { name: o.durationName, help: o.durationHelp, type: 'histogram', aggregator: 'sum' }, () => this.histogram(o.durationName), reset);
  }

  /** Counts one finished request. */
  record(kind: string, cache: string, status: number, seconds: number): void {
    let byCache = this.byKind.get(kind);
    if (byCache === undefined) {
      byCache = new Map();
      this.byKind.set(kind, byCache);
    }
    let s = byCache.get(cache);
    if (s === undefined) {
      s = { kind, cache, byStatus: new Map(), buckets: new Float64Array(this.bounds.length), count: 0, sum: 0 };
      byCache.set(cache, s);
    }
    s.byStatus.set(status, (s.byStatus.get(status) ?? 0) + 1);
    if (!Number.isFinite(seconds)) return;
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && seconds > bounds[i]!) i++;
    if (i < bounds.length) s.buckets[i]!++;
    s.count++;
    s.sum += seconds;
  }

  private *series(): Generator<Series> {
    for (const byCache of this.byKind.values()) yield* byCache.values();
  }

  /** pullthrough_requests_total's values, as prom-client's Counter gives them. */
  private counts(): Value[] {
    const values: Value[] = [];
    for (const s of this.series()) {
      for (const [status, n] of s.byStatus) values.push({ value: n, labels: { kind: s.kind, cache: s.cache, status: String(status) } });
    }
    return values;
  }

  /** The histogram's values, as prom-client's Histogram gives them: cumulative buckets, +Inf, sum, count. */
  private histogram(name: string): Value[] {
    const values: Value[] = [];
    for (const s of this.series()) {
      let acc = 0;
      for (const [i, le] of this.bounds.entries()) {
        acc += s.buckets[i]!;
        values.push({ value: acc, labels: { le, kind: s.kind, cache: s.cache }, metricName: `${name}_bucket` });
      }
      values.push({ value: s.count, labels: { le: '+Inf', kind: s.kind, cache: s.cache }, metricName: `${name}_bucket` });
      values.push({ value: s.sum, labels: { kind: s.kind, cache: s.cache }, metricName: `${name}_sum` });
      values.push({ value: s.count, labels: { kind: s.kind, cache: s.cache }, metricName: `${name}_count` });
    }
    return values;
  }
}
