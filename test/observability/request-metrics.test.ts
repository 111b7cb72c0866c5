/**
 * The request metrics are counted outside prom-client (request-metrics.ts) but must read exactly
 * as prom-client's Counter and Histogram would: dashboards, alert rules and the workers' sum
 * depend on it. Each case feeds the same requests to both and compares what a scrape shows.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AggregatorRegistry, Counter, Histogram, Registry } from 'prom-client';
import { RequestMetrics } from '../../src/observability/request-metrics.js';
import { Metrics } from '../../src/observability/metrics.js';

const BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120];
const NAMES = {
  requestsName: 'pullthrough_requests_total',
  requestsHelp: 'requests',
  durationName: 'pullthrough_request_duration_seconds',
  durationHelp: 'duration',
};

/** Both implementations, fed through one function. */
function pair(): { ours: Registry; theirs: Registry; record(kind: string, cache: string, status: number, seconds: number): void } {
  const ours = new Registry();
  const tally = new RequestMetrics(ours, { ...NAMES, buckets: BUCKETS });
  const theirs = new Registry();
  const counter = new Counter({ name: NAMES.requestsName, help: NAMES.requestsHelp, labelNames: ['kind', 'cache', 'status'], registers: [theirs] });
  const histogram = new Histogram({ name: NAMES.durationName, help: NAMES.durationHelp, labelNames: ['kind', 'cache'], buckets: BUCKETS, registers: [theirs] });
  return {
    ours,
    theirs,
    record(kind, cache, status, seconds) {
      tally.record(kind, cache, status, seconds);
      counter.inc({ kind, cache, status: String(status) });
      histogram.observe({ kind, cache }, seconds);
    },
  };
}

/** A scrape's lines, sorted: the order of series within a metric means nothing to Prometheus. */
async function lines(registry: { metrics(): Promise<string> }): Promise<string[]> {
  return (await registry.metrics()).split('\n').sort();
}

/** getMetricsAsJSON's values as (series, labels, value), sorted, for the same reason. */
async function values(registry: Registry): Promise<string[]> {
  const metrics = (await registry.getMetricsAsJSON()) as unknown as Array<{ name: string; type: string; aggregator: string; values: Array<{ metricName?: string; labels: object; value: number }> }>;
  return metrics.flatMap((m) => m.values.map((v) => JSON.stringify([m.name, m.type, m.aggregator, v.metricName, v.labels, v.value]))).sort();
}

/** Requests of several kinds, results and statuses, with durations on, between and beyond the bounds. */
function feed(record: (kind: string, cache: string, status: number, seconds: number) => void, seed: number): void {
  const kinds = ['blob', 'manifest', 'other', 'ops'];
  const caches = ['hit', 'miss', 'none', 'stale'];
  const statuses = [200, 206, 304, 404, 503];
  const durations = [0, 0.0004, 0.001, 0.0011, 0.05, 0.7, 1, 29.9, 120, 121, 5000, ...BUCKETS];
  let x = seed;
  const next = (n: number): number => {
    x = (x * 1103515245 + 12345) % 2147483648;
    // The high bits: an LCG's low bits repeat with a short period.
    return Math.floor(x / 65536) % n;
  };
  for (let i = 0; i < 500; i++) record(kinds[next(kinds.length)]!, caches[next(caches.length)]!, statuses[next(statuses.length)]!, durations[next(durations.length)]!);
}

test('a scrape shows the same counts, buckets, sums and series as prom-client would', async () => {
  const p = pair();
  feed(p.record, 7);
  assert.deepEqual(await lines(p.ours), await lines(p.theirs));
  assert.deepEqual(await values(p.ours), await values(p.theirs));
  assert.ok((await values(p.ours)).length > 100, 'many series compared');
});

test("the workers' sum (AggregatorRegistry) combines them as it combines prom-client's", async () => {
  const [a, b] = [pair(), pair()];
  feed(a.record, 1);
  feed(b.record, 2);
  const ours = AggregatorRegistry.aggregate([await a.ours.getMetricsAsJSON(), await b.ours.getMetricsAsJSON()]);
  const theirs = AggregatorRegistry.aggregate([await a.theirs.getMetricsAsJSON(), await b.theirs.getMetricsAsJSON()]);
  assert.deepEqual(await lines(ours), await lines(theirs));
});

test('resetMetrics empties them, as it does prom-client’s', async () => {
  const p = pair();
  feed(p.record, 3);
  p.ours.resetMetrics();
  p.theirs.resetMetrics();
  assert.deepEqual(await lines(p.ours), await lines(p.theirs));
  assert.doesNotMatch(await p.ours.metrics(), /kind=/);
});

test("a duration that is not a number counts the request but stays out of the histogram (prom-client's observe would throw)", async () => {
  const registry = new Registry();
  const tally = new RequestMetrics(registry, { ...NAMES, buckets: BUCKETS });
  tally.record('blob', 'hit', 200, Number.NaN);
  tally.record('blob', 'hit', 200, 0.002);
  const text = await registry.metrics();
  assert.match(text, /^pullthrough_requests_total\{kind="blob",cache="hit",status="200"\} 2$/m);
  assert.match(text, /^pullthrough_request_duration_seconds_count\{kind="blob",cache="hit"\} 1$/m);
  assert.match(text, /^pullthrough_request_duration_seconds_sum\{kind="blob",cache="hit"\} 0\.002$/m);
});

test("pullthrough's Metrics export both under their documented names, beside the other metrics", async () => {
  const m = new Metrics();
  m.requests.record('blob', 'hit', 200, 0.003);
  const text = await m.registry.metrics();
  assert.match(text, /^# TYPE pullthrough_requests_total counter$/m);
  assert.match(text, /^pullthrough_requests_total\{kind="blob",cache="hit",status="200"\} 1$/m);
  assert.match(text, /^# TYPE pullthrough_request_duration_seconds histogram$/m);
  assert.match(text, /^pullthrough_request_duration_seconds_bucket\{le="0\.005",kind="blob",cache="hit"\} 1$/m);
  assert.match(text, /^pullthrough_request_duration_seconds_bucket\{le="0\.001",kind="blob",cache="hit"\} 0$/m);
  assert.match(text, /^# TYPE pullthrough_served_bytes_total counter$/m);
});
