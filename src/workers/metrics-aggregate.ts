/**
 * The primary's sum of its workers' metrics. prom-client's AggregatorRegistry combines them (sum,
 * or a metric's own `aggregator`); its clusterMetrics() is not used: it fails the whole scrape
 * when one worker is slow or still starting, and it forgets a worker the moment it exits.
 */
import { AggregatorRegistry } from 'prom-client';
import type { MetricsJson } from './protocol.js';

/** Counters and histograms that sum: those of an exited worker stay in the totals. */
function monotonic(metrics: MetricsJson): MetricsJson {
  return metrics.filter((m) => (String(m.type) === 'counter' || String(m.type) === 'histogram') && (m.aggregator ?? 'sum') === 'sum');
}

export class WorkerMetrics {
  /** Each live worker's latest metrics, by cluster worker id. */
  private readonly latest = new Map<number, MetricsJson>();
  /** Counters and histograms of exited workers, summed, as last seen. */
  private retired: MetricsJson = [];
  private pendingRetired: MetricsJson[] = [];
  /** Serializes text(): folding retired workers in is asynchronous. */
  private chain: Promise<unknown> = Promise.resolve();

  /** A worker's metrics as of now. */
  record(workerId: number, metrics: MetricsJson): void {
    this.latest.set(workerId, metrics);
  }

  /**
   * A worker exited. Its counters and histograms stay in the totals as last seen (its gauges go):
   * a summed counter that dropped when a worker was replaced would look to Prometheus like a
   * counter reset, and rate() would count the whole remaining total as new.
   */
  retire(workerId: number): void {
    const last = this.latest.get(workerId);
    this.latest.delete(workerId);
    if (last) this.pendingRetired.push(monotonic(last));
  }

  /** The Prometheus text of `workerIds`' latest metrics plus those of exited workers. */
  text(workerIds: Iterable<number>): Promise<string> {
    const ids = [...workerIds];
    const next = this.chain.then(async () => {
      if (this.pendingRetired.length) {
        const folded = await AggregatorRegistry.aggregate([this.retired, ...this.pendingRetired]).getMetricsAsJSON();
        this.retired = monotonic(folded);
        this.pendingRetired = [];
      }
      const live = ids.flatMap((id) => {
        const m = this.latest.get(id);
        return m ? [m] : [];
      });
      return AggregatorRegistry.aggregate([this.retired, ...this.pendingRetired, ...live]).metrics();
    });
    this.chain = next.catch(() => {});
    return next;
  }
}
