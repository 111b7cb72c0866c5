/**
 * The status page's data, as units with a fake clock: the per-minute history (what counts as a
 * hit, the hour rolling over, the repository table bounded), the recent-events tap on the logger,
 * upstream activity sampled from the metrics, and the summary's health and pull limit per registry.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Gauge } from 'prom-client';
import { StatusHistory } from '../../src/observability/history.js';
import { RecentEvents } from '../../src/observability/recent-events.js';
import { Metrics } from '../../src/observability/metrics.js';
import { buildStatusSummary, UpstreamActivity } from '../../src/admin/status-summary.js';
import { DownloadTracker } from '../../src/cache/downloads.js';
import type { Logger } from '../../src/observability/logger.js';
import type { Config } from '../../src/config/index.js';

const MINUTE = 60_000;
const T0 = Date.UTC(2026, 11, 5, 12, 0, 0);

test('history: pulls answered from cache (hit, revalidated, stale) against fetched (miss, pass), with their bytes; other requests left out', () => {
  let now = T0 + 5_000;
  const h = new StatusHistory({ now: () => now });
  h.request({ registry: 'docker.io', repo: 'library/alpine', kind: 'manifest', cache: 'miss', bytes: 500 });
  h.request({ registry: 'docker.io', repo: 'library/alpine', kind: 'blob', cache: 'miss', bytes: 3000 });
  h.request({ registry: 'docker.io', repo: 'library/alpine', kind: 'manifest', cache: 'revalidated', bytes: 500 });
  h.request({ registry: 'docker.io', repo: 'library/alpine', kind: 'blob', cache: 'hit', bytes: 3000 });
  h.request({ registry: 'quay.io', repo: 'org/app', kind: 'tags', cache: 'stale', bytes: 40 });
  h.request({ registry: 'quay.io', repo: 'org/app', kind: 'referrers', cache: 'pass', bytes: 60 });
  // not pulls, or not answered by the cache: never counted
  h.request({ kind: 'ops', cache: 'none', bytes: 900 });
  h.request({ registry: 'docker.io', repo: 'library/alpine', kind: 'push', cache: 'pass', bytes: 10 });
  h.request({ registry: 'docker.io', repo: 'library/alpine', kind: 'blob', cache: 'none', bytes: 0 });
  h.request({ registry: 'docker.io', repo: 'library/alpine', kind: 'blob', bytes: 0 });
  h.request({ kind: 'base', cache: 'none', bytes: 2 });
  const minutes = h.minutes();
  assert.equal(minutes.length, 60);
  assert.deepEqual(minutes.at(-1), { start: T0, hits: 3, misses: 3, cacheBytes: 3540, upstreamBytes: 3560 });
  assert.ok(minutes.slice(0, -1).every((m) => m.hits + m.misses + m.cacheBytes + m.upstreamBytes === 0));
  assert.deepEqual(
    h.topRepositories(10).map((r) => [`${r.registry}/${r.repo}`, r.requests, r.hits, r.bytes]),
    [
      ['docker.io/library/alpine', 4, 2, 7000],
      ['quay.io/org/app', 2, 1, 100],
    ],
  );
  now += MINUTE;
  h.request({ registry: 'docker.io', repo: 'library/alpine', kind: 'blob', cache: 'hit', bytes: 7 });
  assert.deepEqual(h.minutes().slice(-2).map((m) => [m.start, m.hits, m.misses]), [[T0, 3, 3], [T0 + MINUTE, 1, 0]]);
});

test('history: an hour later the old minutes are gone, also where the ring slot is reused', () => {
  let now = T0;
  const h = new StatusHistory({ now: () => now });
  h.request({ registry: 'r', repo: 'a', kind: 'blob', cache: 'hit', bytes: 10 });
  now = T0 + 59 * MINUTE;
  assert.equal(h.minutes()[0]!.hits, 1, 'still inside the hour, as the oldest minute');
  now = T0 + 60 * MINUTE;
  assert.equal(h.minutes().reduce((n, m) => n + m.hits, 0), 0, 'an hour later: gone');
  h.request({ registry: 'r', repo: 'a', kind: 'blob', cache: 'miss', bytes: 5 });
  assert.deepEqual(h.minutes().at(-1), { start: T0 + 60 * MINUTE, hits: 0, misses: 1, cacheBytes: 0, upstreamBytes: 5 }, 'the reused slot starts from zero');
  assert.equal(h.topRepositories(1)[0]!.requests, 2, 'top repositories count since start');
});

test('history: the repository table stays bounded and keeps the most pulled', () => {
  const h = new StatusHistory({ maxRepositories: 10 });
  for (let i = 0; i < 5; i++) h.request({ registry: 'r', repo: 'popular', kind: 'blob', cache: 'hit', bytes: 1 });
  for (let i = 0; i < 1000; i++) h.request({ registry: 'r', repo: `scan/${i}`, kind: 'manifest', cache: 'miss', bytes: 1 });
  const top = h.topRepositories(100);
  assert.ok(top.length <= 10, `${top.length} kept`);
  assert.equal(top[0]!.repo, 'popular');
});

test('recent events: every line goes on to the log, warn and error lines are kept newest first, bounded and cut short', () => {
  const written: string[] = [];
  const base: Logger = {
    debug: (m) => written.push(`debug ${m}`),
    info: (m) => written.push(`info ${m}`),
    warn: (m) => written.push(`warn ${m}`),
    error: (m) => written.push(`error ${m}`),
  };
  const events = new RecentEvents(3);
  const log = events.tap(base);
  log.debug('d');
  log.info('request', { path: '/v2/' });
  log.warn('upstream failing', { registry: 'docker.io', cause: 'x'.repeat(1000), status: 503, nested: { a: 1 }, none: undefined });
  log.error('internal error', { path: '/v2/a' });
  assert.deepEqual(written, ['debug d', 'info request', 'warn upstream failing', 'error internal error']);
  const [newest, older] = events.list();
  assert.equal(newest!.msg, 'internal error');
  assert.equal(newest!.level, 'error');
  assert.deepEqual(Object.keys(older!.fields), ['registry', 'cause', 'status'], 'objects and undefined left out');
  assert.equal(older!.fields.cause!.length, 300);
  assert.equal(older!.fields.status, '503');
  for (let i = 0; i < 5; i++) log.warn(`w${i}`);
  assert.deepEqual(events.list().map((e) => e.msg), ['w4', 'w3', 'w2']);
});

test('upstream activity: a registry answered when its answered count grew, failed when its 0/429/5xx count grew', async () => {
  const metrics = new Metrics();
  let now = 1000;
  const a = new UpstreamActivity(metrics, () => now);
  await a.sample();
  assert.deepEqual(a.of('docker.io'), { lastSuccessAt: null, lastFailureAt: null });
  metrics.upstreamRequests.inc({ registry: 'docker.io', method: 'GET', kind: 'manifest', status: '200' });
  metrics.upstreamRequests.inc({ registry: 'docker.io', method: 'GET', kind: 'manifest', status: '401' });
  now = 2000;
  await a.sample();
  assert.deepEqual(a.of('docker.io'), { lastSuccessAt: 2000, lastFailureAt: null });
  metrics.upstreamRequests.inc({ registry: 'docker.io', method: 'GET', kind: 'blob', status: '0' });
  now = 3000;
  await a.sample();
  assert.deepEqual(a.of('docker.io'), { lastSuccessAt: 2000, lastFailureAt: 3000 });
  metrics.upstreamRequests.inc({ registry: 'quay.io', method: 'HEAD', kind: 'manifest', status: '429' });
  metrics.upstreamRequests.inc({ registry: 'ghcr.io', method: 'HEAD', kind: 'manifest', status: '503' });
  now = 4000;
  await a.sample();
  assert.deepEqual(a.of('quay.io'), { lastSuccessAt: null, lastFailureAt: 4000 });
  assert.deepEqual(a.of('ghcr.io'), { lastSuccessAt: null, lastFailureAt: 4000 });
  assert.deepEqual(a.of('docker.io'), { lastSuccessAt: 2000, lastFailureAt: 3000 }, 'unchanged without new requests');
});

test('summary: health from traffic, or from the upstream chain when it reports; pull limit; usage; ratios', async () => {
  const metrics = new Metrics();
  const registries = { 'docker.io': {}, 'quay.io': {}, 'ghcr.io': {}, 'chain.test': {} } as unknown as Config['registries'];
  const history = new StatusHistory();
  const events = new RecentEvents();
  const downloads = new DownloadTracker();
  const activity = new UpstreamActivity(metrics);
  const src = {
    config: { instanceName: 'mirror-a', registries, cache: { maxSize: 1000 } as Config['cache'] },
    metrics,
    meta: { totalBlobSize: async () => 640 },
    downloads,
    history,
    events,
    activity,
  };
  let s = await buildStatusSummary(src);
  assert.equal(s.lastHour.requestHitRatio, null, 'no ratio without traffic');
  assert.equal(s.lastHour.byteHitRatio, null);
  assert.deepEqual(s.registries.map((r) => [r.name, r.health]), [['chain.test', 'idle'], ['docker.io', 'idle'], ['ghcr.io', 'idle'], ['quay.io', 'idle']]);

  metrics.upstreamRequests.inc({ registry: 'docker.io', method: 'GET', kind: 'manifest', status: '200' });
  metrics.upstreamRequests.inc({ registry: 'quay.io', method: 'GET', kind: 'manifest', status: '503' });
  metrics.rateLimitRemaining.set({ registry: 'docker.io' }, 97);
  events.tap({ debug() {}, info() {}, warn() {}, error() {} }).warn('upstream failing', { registry: 'quay.io', cause: 'answered 503: UNAVAILABLE' });
  const up = (metrics.registry.getSingleMetric('pullthrough_upstream_up') as Gauge<'registry' | 'upstream'> | undefined) ??
    new Gauge({ name: 'pullthrough_upstream_up', help: 'test', labelNames: ['registry', 'upstream'], registers: [metrics.registry] });
  up.set({ registry: 'chain.test', upstream: 'https://a.test' }, 0);
  up.set({ registry: 'chain.test', upstream: 'https://b.test' }, 1);
  history.request({ registry: 'docker.io', repo: 'library/alpine', kind: 'blob', cache: 'miss', bytes: 300 });
  history.request({ registry: 'docker.io', repo: 'library/alpine', kind: 'blob', cache: 'hit', bytes: 300 });
  history.request({ registry: 'docker.io', repo: 'library/alpine', kind: 'manifest', cache: 'revalidated', bytes: 100 });
  const d = downloads.start({ digest: 'sha256:' + '1'.repeat(64), registry: 'docker.io', repo: 'library/alpine' });
  d.setTotal(2000);
  d.add(500);

  s = await buildStatusSummary(src);
  const byName = Object.fromEntries(s.registries.map((r) => [r.name, r]));
  assert.equal(byName['docker.io']!.health, 'answering');
  assert.equal(byName['docker.io']!.rateLimitRemaining, 97);
  assert.equal(byName['quay.io']!.health, 'failing');
  assert.equal(byName['quay.io']!.lastCause, 'answered 503: UNAVAILABLE');
  assert.equal(byName['quay.io']!.rateLimitRemaining, null);
  assert.equal(byName['ghcr.io']!.health, 'idle');
  assert.deepEqual([byName['chain.test']!.health, byName['chain.test']!.source, byName['chain.test']!.upstreams.length], ['up', 'chain', 2], 'one entry of the chain up');
  up.set({ registry: 'chain.test', upstream: 'https://b.test' }, 0);
  s = await buildStatusSummary(src);
  assert.equal(s.registries.find((r) => r.name === 'chain.test')!.health, 'down', 'every entry down');

  assert.equal(s.instance, 'mirror-a');
  assert.deepEqual(s.usage, { bytes: 640, maxSize: 1000 });
  assert.equal(s.lastHour.requestHitRatio, 2 / 3);
  assert.equal(s.lastHour.byteHitRatio, 400 / 700);
  assert.equal(s.lastHour.bytesSaved, 400);
  assert.deepEqual(s.downloads.map((x) => [x.bytesDone, x.bytesTotal]), [[500, 2000]]);
  assert.equal(s.topRepositories[0]!.repo, 'library/alpine');
  assert.equal(s.recentErrors[0]!.msg, 'upstream failing');

  const broken = await buildStatusSummary({ ...src, meta: { totalBlobSize: () => Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:6379')) } });
  assert.deepEqual(broken.usage, { bytes: null, maxSize: 1000, error: 'metadata store: connect ECONNREFUSED 127.0.0.1:6379' }, 'an unreachable store is said, not a failed page');
});
