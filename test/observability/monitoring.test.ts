/**
 * deploy/monitoring/ against a real Prometheus (Debian's prometheus and promtool): a Prometheus
 * scrapes a real pullthrough while skopeo pulls through it from a real docker-registry; every
 * Grafana dashboard query and every alert expression is evaluated through Prometheus's HTTP API
 * (each parses and returns; those that must have data after the pulls have it), every metric
 * they name is one pullthrough exports, the rules load into Prometheus and none fires for a healthy
 * instance, `promtool check rules` passes and `promtool test rules` passes its test file (and
 * fails when a threshold is changed: the tests are not blind).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { startPullthrough, type Pullthrough } from '../helpers/pullthrough.js';
import { startUpstreamRegistry, type Upstream } from '../helpers/upstream-registry.js';
import { makeImage, pushImage } from '../helpers/images.js';
import { skopeoCopy } from '../helpers/clients.js';
import { freePort, run, startProcess, tempDir, waitForPort, type Proc } from '../helpers/process.js';

const MONITORING = resolve(import.meta.dirname, '../../../deploy/monitoring');
const DASHBOARD = join(MONITORING, 'grafana-dashboard.json');
const RULES = join(MONITORING, 'prometheus-alerts.yml');
const RULE_TESTS = join(MONITORING, 'prometheus-alerts.test.yml');

/**
 * Dashboard queries (panel title / refId) that must return data once a pullthrough has served two
 * pulls; the rest (stale answers, evictions by labels, DNS, failovers…) stay empty until it happens.
 */
const MUST_HAVE_DATA = new Set([
  'Hit ratio (requests)/A',
  'Hit ratio (bytes)/A',
  'Bytes saved upstream/A',
  'Requests by kind/A',
  'Requests by cache result/A',
  'Bytes served by source/A',
  'Request duration p95/A',
  'Upstream failure ratio/A',
  'Upstream requests/A',
  'Upstream bytes/A',
  'Cache size vs maxSize/A',
  'Cache size vs maxSize/B',
  'Downloads in progress/A',
  'Evictions/A',
  'Evictions/B',
  'Instances up/A',
  'Memory/A',
  'Event loop lag p99/A',
]);
/** Of those, the ones that must be above zero after a cold and a warm pull. */
const POSITIVE = new Set(['Hit ratio (requests)/A', 'Hit ratio (bytes)/A', 'Bytes saved upstream/A', 'Cache size vs maxSize/A', 'Cache size vs maxSize/B', 'Instances up/A']);

interface Target {
  refId: string;
  expr: string;
}
interface Panel {
  type: string;
  title: string;
  id: number;
  targets?: Target[];
  panels?: Panel[];
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { uid: string };
}
interface Dashboard {
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query?: { query: string } | string }> };
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
const rules = parse(readFileSync(RULES, 'utf8')) as { groups: Array<{ name: string; rules: Array<{ alert: string; expr: string; for?: string; labels?: Record<string, string> }> }> };
const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).filter((p) => p.type !== 'row');
const queries = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ key: `${p.title}/${t.refId}`, expr: t.expr })));
const alerts = rules.groups.flatMap((g) => g.rules);

/** Grafana's variables as a dashboard on this one job would resolve them. */
function resolveVariables(expr: string): string {
  return expr.replaceAll('$__rate_interval', '1m').replaceAll('$__range', '5m').replaceAll('$job', 'pullthrough').replaceAll('$instance', '.+');
}

/** Metric names an expression reads (histogram series mapped to their family). */
function metricNames(expr: string): string[] {
  return [...new Set([...expr.matchAll(/\b(pullthrough_[a-z0-9_]+)/g)].map((m) => m[1]!.replace(/_(bucket|sum|count)$/, '')))];
}

let hub: Upstream;
let pt: Pullthrough;
let prom: Proc;
let promUrl: string;
let promDir: { path: string; cleanup: () => Promise<void> };

interface QueryResult {
  status: string;
  error?: string;
  data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> };
}

async function query(expr: string): Promise<QueryResult> {
  const res = await fetch(`${promUrl}/api/v1/query`, { method: 'POST', body: new URLSearchParams({ query: expr }) });
  return (await res.json()) as QueryResult;
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) assert.fail(`${what}: not within ${timeoutMs} ms\n${prom.output().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Pulls `repo:v1` through pullthrough with skopeo. */
async function pull(repo: string): Promise<void> {
  const r = await skopeoCopy(`${pt.host}/${repo}:v1`, 'dir', { tlsVerify: false });
  assert.equal(r.code, 0, r.stderr);
  await r.cleanup();
}

before(async () => {
  hub = await startUpstreamRegistry();
  await pushImage(hub, 'team/app', 'v1', await makeImage({ format: 'docker', seed: 'monitoring', layers: 2, layerSize: 100_000 }));
  await pushImage(hub, 'team/other', 'v1', await makeImage({ format: 'docker', seed: 'monitoring-other', layers: 2, layerSize: 100_000 }));
  pt = await startPullthrough({ registries: { 'docker.io': { upstream: hub.url } }, defaultRegistry: 'docker.io', cache: { maxSize: '1g' } });
  // A cold and a warm pull before Prometheus starts: a series Prometheus first sees already
  // counted has no rate, so hits, misses and upstream requests exist from its first scrape.
  await pull('team/app');
  await pull('team/app');
  promDir = await tempDir('pullthrough-prometheus-');
  await copyFile(RULES, join(promDir.path, 'alerts.yml'));
  await writeFile(
    join(promDir.path, 'prometheus.yml'),
    [
      'global: { scrape_interval: 1s, evaluation_interval: 1s }',
      'rule_files: [alerts.yml]',
      'scrape_configs:',
      '  - job_name: pullthrough',
      `    static_configs: [{ targets: ["${pt.host}"] }]`,
      '',
    ].join('\n'),
  );
  const port = await freePort();
  promUrl = `http://127.0.0.1:${port}`;
  prom = startProcess('prometheus', [
    `--config.file=${join(promDir.path, 'prometheus.yml')}`,
    `--storage.tsdb.path=${join(promDir.path, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
  ], { cwd: promDir.path });
  await waitForPort(port, '127.0.0.1', 30_000, prom);
  // It listens before its storage is open (503 until then).
  await until('Prometheus ready', async () => (await fetch(`${promUrl}/-/ready`)).status === 200);
  const hitsBefore = pt.requests().filter((l) => l.kind === 'blob' && l.cache === 'hit').length;
  await until('a first scrape', async () => Number((await query('sum(pullthrough_requests_total{kind="blob",cache="hit"})')).data?.result[0]?.value[1]) === hitsBefore);
  // Then traffic Prometheus sees happen: a warm pull (hits) and a cold one (misses, upstream bytes).
  await pull('team/app');
  await pull('team/other');
  const hits = pt.requests().filter((l) => l.kind === 'blob' && l.cache === 'hit').length;
  assert.ok(hits > hitsBefore, 'the warm pull hit the cache');
  await until('a scrape after the pulls', async () => Number((await query('sum(pullthrough_requests_total{kind="blob",cache="hit"})')).data?.result[0]?.value[1]) === hits);
});

after(async () => {
  await prom?.stop();
  await promDir?.cleanup();
  await pt?.cleanup();
  await hub?.stop();
});

test('the dashboard is well-formed: unique ids, every panel queries the Prometheus variable, inside the 24-column grid', () => {
  const ids = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'unique panel ids');
  assert.ok(panels.length >= 20, `${panels.length} panels`);
  for (const p of panels) {
    assert.ok(p.targets?.length, `${p.title} has queries`);
    assert.equal(p.datasource?.uid, '${DS_PROMETHEUS}', `${p.title} uses the data source variable`);
    assert.ok(p.gridPos.x + p.gridPos.w <= 24, `${p.title} fits the grid`);
  }
  for (const key of MUST_HAVE_DATA) assert.ok(queries.some((q) => q.key === key), `the dashboard has ${key}`);
  const covered = ['requests', 'hit ratio', 'saved', 'upstream health', 'failovers', 'downloads', 'maxsize', 'evictions', 'stale', 'errors', 'dns'];
  const titles = panels.map((p) => p.title.toLowerCase()).join(' | ');
  for (const c of covered) assert.ok(titles.includes(c), `a panel about ${c}: ${titles}`);
});

test('every metric the dashboard and the rules name is one pullthrough exports (or one the upstream chains add)', async () => {
  const exported = new Set([...(await pt.metrics()).matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]!));
  assert.ok(exported.has('pullthrough_requests_total') && exported.has('pullthrough_cache_max_size_bytes'));
  const unknown: string[] = [];
  for (const { key, expr } of [...queries, ...alerts.map((a) => ({ key: a.alert, expr: a.expr }))]) {
    for (const name of metricNames(expr)) if (!exported.has(name)) unknown.push(`${key}: ${name}`);
  }
  assert.deepEqual(unknown, []);
});

test('every dashboard query parses and returns through Prometheus; those that must have data have it', async () => {
  const problems: string[] = [];
  for (const { key, expr } of queries) {
    const r = await query(resolveVariables(expr));
    if (r.status !== 'success') {
      problems.push(`${key}: ${r.error}`);
      continue;
    }
    const result = r.data!.result;
    if (MUST_HAVE_DATA.has(key)) {
      if (result.length === 0) problems.push(`${key}: no data`);
      for (const s of result) {
        const v = Number(s.value[1]);
        if (!Number.isFinite(v)) problems.push(`${key}: ${s.value[1]}`);
        else if (POSITIVE.has(key) && !(v > 0)) problems.push(`${key}: ${v}, expected > 0`);
      }
    }
  }
  assert.deepEqual(problems, []);
  // The variables' label_values() queries, as Grafana asks them (the series API).
  for (const v of dashboard.templating.list.filter((t) => t.type === 'query')) {
    const q = typeof v.query === 'string' ? v.query : v.query!.query;
    const m = /^label_values\((.+),\s*(\w+)\)$/.exec(q);
    assert.ok(m, `${v.name}: ${q}`);
    const res = (await (await fetch(`${promUrl}/api/v1/label/${m[2]}/values?${new URLSearchParams({ 'match[]': resolveVariables(m[1]!.replace('=~"$job"', '="pullthrough"')) })}`)).json()) as { status: string; data: string[] };
    assert.equal(res.status, 'success', q);
    assert.ok(res.data.includes(v.name === 'job' ? 'pullthrough' : pt.host), `${v.name}: ${JSON.stringify(res.data)}`);
  }
});

test('every alert expression parses and returns; the rules load into Prometheus, evaluate cleanly and none fires for a healthy instance', async () => {
  const names = alerts.map((a) => a.alert);
  for (const wanted of ['PullthroughInstanceDown', 'PullthroughUpstreamDown', 'PullthroughUpstreamFailing', 'PullthroughHitRatioCollapse', 'PullthroughCacheNearMaxSize', 'PullthroughStaleAnswersRising', 'PullthroughStorageUnavailable', 'PullthroughHigh5xxRate']) {
    assert.ok(names.includes(wanted), `an alert ${wanted}`);
  }
  for (const a of alerts) {
    const r = await query(a.expr);
    assert.equal(r.status, 'success', `${a.alert}: ${r.error}`);
    assert.deepEqual(r.data!.result, [], `${a.alert} is not firing for a healthy instance`);
    assert.ok(a.labels?.severity, `${a.alert} has a severity`);
  }
  let loaded: Array<{ name: string; health: string; lastError?: string; state: string }> = [];
  await until('the rules evaluated', async () => {
    const res = (await (await fetch(`${promUrl}/api/v1/rules`)).json()) as { data: { groups: Array<{ rules: typeof loaded; lastEvaluation: string }> } };
    loaded = res.data.groups.flatMap((g) => g.rules);
    return loaded.length === alerts.length && loaded.every((r) => r.health === 'ok');
  });
  assert.deepEqual(loaded.map((r) => r.name).sort(), [...names].sort());
  assert.deepEqual(loaded.filter((r) => r.state !== 'inactive').map((r) => `${r.name}: ${r.state}`), []);
});

test('promtool check rules and promtool test rules pass; a changed threshold makes the rule tests fail', async () => {
  const check = await run('promtool', ['check', 'rules', RULES], { allowFail: true });
  assert.equal(check.code, 0, check.stdout + check.stderr);
  assert.match(check.stdout + check.stderr, new RegExp(`SUCCESS: ${alerts.length} rules found`));
  const unit = await run('promtool', ['test', 'rules', RULE_TESTS], { allowFail: true });
  assert.equal(unit.code, 0, unit.stdout + unit.stderr);
  assert.match(unit.stdout + unit.stderr, /SUCCESS/);

  // The same tests against rules with the 5xx threshold at 50% instead of 5%: they must catch it.
  const dir = await tempDir('pullthrough-promtool-');
  try {
    const changed = (await readFile(RULES, 'utf8')).replace(/\n {10}> 0\.05\n/, '\n          > 0.5\n');
    assert.notEqual(changed, await readFile(RULES, 'utf8'), 'the 5xx threshold was found');
    await writeFile(join(dir.path, 'prometheus-alerts.yml'), changed);
    await copyFile(RULE_TESTS, join(dir.path, 'prometheus-alerts.test.yml'));
    const mutated = await run('promtool', ['test', 'rules', join(dir.path, 'prometheus-alerts.test.yml')], { allowFail: true });
    assert.notEqual(mutated.code, 0, 'promtool test rules fails on the changed rule');
    assert.match(mutated.stdout + mutated.stderr, /PullthroughHigh5xxRate/);
  } finally {
    await dir.cleanup();
  }
});
