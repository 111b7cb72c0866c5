/**
 * The status page in a real browser (Debian's chromium, headless, driven by puppeteer-core): after
 * real pulls with skopeo from a real docker-registry it shows the repository among the top
 * repositories, the hit ratio the request log implies, the bytes in the cache against
 * cache.maxSize, Docker Hub's remaining pull limit, a download in progress with a progress bar
 * while a blob stalls upstream, it fits a phone's width, and markup sent by a client is shown as
 * text, never run. Saves a screenshot (docs/images/status-page.png with UPDATE_SCREENSHOTS=1).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Page } from 'puppeteer-core';
import { startPullthrough, metricValue, type Pullthrough } from '../helpers/pullthrough.js';
import { startUpstreamRegistry, type Upstream } from '../helpers/upstream-registry.js';
import { startFaultUpstream, randomBlob, type FaultUpstream } from '../helpers/fault-upstream.js';
import { makeImage, pushImage, type TestImage } from '../helpers/images.js';
import { skopeoCopy, readDirLayout } from '../helpers/clients.js';
import { rawRequest } from '../helpers/http.js';
import { tempDir } from '../helpers/process.js';
import { startBrowser, type TestBrowser } from '../helpers/browser.js';

const REPO_ROOT = resolve(import.meta.dirname, '../../..');
const MAX_SIZE = 64 << 20;

let hub: Upstream;
let fault: FaultUpstream;
let pt: Pullthrough;
let chrome: TestBrowser;
let image: TestImage;

before(async () => {
  [hub, fault, chrome] = await Promise.all([startUpstreamRegistry(), startFaultUpstream(), startBrowser()]);
  image = await makeImage({ format: 'docker', seed: 'status-page', layers: 2, layerSize: [300_000, 150_000] });
  await pushImage(hub, 'team/app', 'v1', image);
  pt = await startPullthrough({
    registries: { 'docker.io': { upstream: hub.url }, 'fault.test': { upstream: fault.url } },
    defaultRegistry: 'docker.io',
    cache: { maxSize: MAX_SIZE },
  });
});
after(async () => {
  // Each stops whatever the others do: one failing must not leave a process keeping the file alive.
  const results = await Promise.allSettled([chrome?.close(), pt?.cleanup(), fault?.close(), hub?.stop()]);
  for (const r of results) if (r.status === 'rejected') console.error('cleanup:', r.reason);
});

const adminUrl = (p: Pullthrough = pt): string => `http://127.0.0.1:${p.ports.admin}/`;

/** Opens the status page and waits for its first drawing from the summary. */
async function openPage(url = adminUrl(), viewport = { width: 1280, height: 900 }): Promise<Page> {
  const page = await chrome.browser.newPage();
  await page.setViewport(viewport);
  const res = await page.goto(url, { waitUntil: 'load' });
  assert.equal(res?.status(), 200);
  await page.waitForFunction(() => Number(document.body.dataset.refreshes ?? 0) >= 1, { timeout: 20_000 });
  return page;
}

/** Waits until `check` holds on the page (it refreshes every few seconds by itself). */
async function until<T>(page: Page, what: string, read: () => T | Promise<T>, check: (v: T) => boolean, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let v = await read();
  while (!check(v)) {
    if (Date.now() > deadline) assert.fail(`${what}: still ${JSON.stringify(v)} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
    v = await read();
  }
  return v;
}

const text = (page: Page, sel: string): Promise<string> => page.$eval(sel, (e) => e.textContent ?? '');

async function pull(): Promise<void> {
  const r = await skopeoCopy(`${pt.host}/team/app:v1`, 'dir', { tlsVerify: false });
  try {
    assert.equal(r.code, 0, r.stderr);
    const layout = await readDirLayout(r.path);
    assert.equal(layout.manifestDigest, image.manifestDigest);
  } finally {
    await r.cleanup();
  }
}

test('the page and its feed: strict CSP with a nonce, no external asset, JSON summary', async () => {
  const res = await fetch(adminUrl());
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
  const csp = res.headers.get('content-security-policy') ?? '';
  const html = await res.text();
  const nonce = /script-src 'nonce-([^']+)'/.exec(csp)?.[1];
  assert.ok(nonce, csp);
  assert.match(csp, /default-src 'none'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/);
  assert.ok(html.includes(`<script nonce="${nonce}">`) && html.includes(`<style nonce="${nonce}">`));
  assert.doesNotMatch(html, /\b(src|href)=["']?(https?:)?\/\//i, 'no external asset');
  assert.match(html, /<meta name="viewport" content="width=device-width/);
  const again = await fetch(adminUrl());
  assert.notEqual(/'nonce-([^']+)'/.exec(again.headers.get('content-security-policy') ?? '')?.[1], nonce, 'a fresh nonce per response');
  const summary = await fetch(`${adminUrl()}api/v1/status-summary`);
  assert.equal(summary.status, 200);
  const s = (await summary.json()) as { lastHour: { minutes: unknown[] }; usage: { maxSize: number }; registries: Array<{ name: string }> };
  assert.equal(s.lastHour.minutes.length, 60);
  assert.equal(s.usage.maxSize, MAX_SIZE);
  assert.deepEqual(s.registries.map((r) => r.name).filter((n) => n === 'docker.io' || n === 'fault.test'), ['docker.io', 'fault.test']);
  // Not on a registry door.
  const onMirror = await fetch(`${pt.url}/api/v1/status-summary`);
  assert.notEqual(onMirror.status, 200);
});

test('after two real pulls: the repository in top repositories, the hit ratio the request log implies, usage bytes, upstream answering', async () => {
  const page = await openPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  await pull();
  await pull();
  // What the request log says about the same pulls, counted as the page counts them.
  const pulls = pt.requests().filter((l) => ['manifest', 'blob', 'tags', 'referrers'].includes(String(l.kind)));
  const hits = pulls.filter((l) => ['hit', 'revalidated', 'stale'].includes(String(l.cache))).length;
  const misses = pulls.filter((l) => ['miss', 'pass'].includes(String(l.cache))).length;
  assert.ok(hits > 0 && misses > 0, `second pull hit the cache (hits ${hits}, misses ${misses})`);
  const expected = `${((hits / (hits + misses)) * 100).toFixed(1)}%`;

  const row = await until(
    page,
    'top repositories',
    () => page.$$eval('#top-repos tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? ''))),
    (rows) => rows.some((r) => r[0] === 'docker.io/team/app' && Number(r[1]) === hits + misses),
  );
  assert.equal(row[0]![0], 'docker.io/team/app', 'the only repository pulled is first');
  assert.equal(await text(page, '#hit-ratio-requests'), expected);
  const byteRatio = parseFloat(await text(page, '#hit-ratio-bytes'));
  assert.ok(byteRatio > 0 && byteRatio < 100, `byte hit ratio ${byteRatio}`);
  assert.ok(Number(await page.$eval('#bytes-saved', (e) => (e as HTMLElement).dataset.bytes)) > 0, 'bytes saved upstream');
  assert.ok((await page.$$('#chart-requests rect')).length >= 1, 'the per-minute hit ratio chart has a bar');
  assert.ok((await page.$$('#chart-saved rect')).length >= 1, 'the bytes-saved chart has a bar');

  // Usage: every blob of the image, as the cache records it and /metrics reports it.
  const blobBytes = image.blobs.reduce((n, b) => n + b.size, 0);
  const usage = await until(page, 'usage bytes', () => page.$eval('#usage-bytes', (e) => Number((e as HTMLElement).dataset.bytes)), (n) => n >= blobBytes);
  assert.equal(usage, metricValue(await pt.metrics(), 'pullthrough_cache_size_bytes'));
  const bar = await page.$eval('#usage-bar', (e) => ({ value: (e as HTMLProgressElement).value, max: (e as HTMLProgressElement).max, hidden: (e as HTMLElement).hidden }));
  assert.deepEqual(bar, { value: usage, max: MAX_SIZE, hidden: false });
  assert.match(await text(page, '#usage-text'), /of 64\.0 MiB \(cache\.maxSize\)/);

  const health = await until(
    page,
    'docker.io upstream health',
    () => page.$eval('#upstreams tr[data-registry="docker.io"] [data-health]', (e) => (e as HTMLElement).dataset.health),
    (h) => h === 'answering' || h === 'up',
  );
  assert.ok(health);
  const idle = await text(page, '#upstreams tr.idle');
  assert.match(idle, /^idle \(no upstream request yet\): .*\bfault\.test\b/, 'a registry nobody pulled from is listed as idle');
  assert.doesNotMatch(idle, /docker\.io/);
  assert.deepEqual(errors, [], 'no script error, no CSP violation');
  await page.close();
});

test("Docker Hub's remaining pull limit, from the ratelimit-remaining header of a manifest answer", async () => {
  const digest = 'sha256:' + 'ab'.repeat(32);
  fault.respond = (method, path) =>
    method === 'HEAD' && path === '/v2/library/limited/manifests/v1'
      ? { status: 200, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'docker-content-digest': digest, 'content-length': '500', 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '76;w=21600' } }
      : undefined;
  try {
    const res = await fetch(`${pt.url}/v2/fault.test/library/limited/manifests/v1`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(res.status, 200);
    assert.equal(metricValue(await pt.metrics(), 'pullthrough_upstream_ratelimit_remaining', { registry: 'fault.test' }), 76);
    const page = await openPage();
    const limit = await until(
      page,
      'pull limit left',
      () => page.$eval('#upstreams tr[data-registry="fault.test"] td[data-ratelimit]', (e) => e.textContent),
      (t) => t === '76',
    );
    assert.equal(limit, '76');
    assert.equal(await page.$eval('#upstreams tr[data-registry="docker.io"] td[data-ratelimit]', (e) => e.textContent), '–', 'a registry that never sent one shows none');
    await page.close();
  } finally {
    fault.respond = undefined;
  }
});

test('a download in progress has a progress bar at the bytes received; gone once it landed; screenshot', async () => {
  const data = randomBlob(3 << 20);
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const digest = fault.addBlob(data, { kind: 'stall', after: 1 << 20, release: released });
  const page = await openPage();
  const res = await fetch(`${pt.url}/v2/fault.test/team/big/blobs/${digest}`);
  assert.equal(res.status, 200);
  const body = res.arrayBuffer();
  try {
    const bar = await until(
      page,
      'progress bar',
      () =>
        page.$$eval('#downloads li', (lis, d) => {
          const li = lis.find((l) => (l as HTMLElement).dataset.digest === d);
          const p = li?.querySelector('progress');
          return p ? { value: p.value, max: p.max, repo: li!.querySelector('div')?.textContent, text: li!.textContent } : null;
        }, digest),
      (b) => b !== null && b.value === 1 << 20,
    );
    assert.deepEqual({ value: bar!.value, max: bar!.max, repo: bar!.repo }, { value: 1 << 20, max: data.length, repo: 'fault.test/team/big' });
    assert.match(bar!.text ?? '', /1\.00 MiB of 3\.00 MiB \(33\.3%\)/);
    assert.equal(await page.$eval('#downloads-empty', (e) => (e as HTMLElement).hidden), true);

    // The screenshot for the README: real pulls, a download in progress.
    const shot = Buffer.from(await page.screenshot({ fullPage: true, type: 'png' }));
    assert.deepEqual([...shot.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG');
    const dir = await tempDir('pullthrough-screenshot-');
    await writeFile(join(dir.path, 'status-page.png'), shot);
    await dir.cleanup();
    if (process.env.UPDATE_SCREENSHOTS === '1') await writeFile(join(REPO_ROOT, 'docs/images/status-page.png'), shot);
  } finally {
    release();
  }
  assert.equal(Buffer.from(await body).length, data.length);
  await until(
    page,
    'download list after the blob landed',
    () => page.$$eval('#downloads li', (lis) => lis.map((l) => (l as HTMLElement).dataset.digest)),
    (ds) => !ds.includes(digest),
  );
  await page.close();
});

test('on a phone: no horizontal scroll, every section visible', async () => {
  const page = await openPage(adminUrl(), { width: 360, height: 740 });
  await page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: 'light' }]);
  const m = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    width: document.documentElement.clientWidth,
    widest: Math.max(...[...document.querySelectorAll('section')].map((s) => s.getBoundingClientRect().right)),
    sections: document.querySelectorAll('section').length,
  }));
  assert.ok(m.scroll <= m.width, `page ${m.scroll}px wide in a ${m.width}px viewport`);
  assert.ok(m.widest <= m.width, `a section reaches ${m.widest}px`);
  assert.equal(m.sections, 6);
  assert.notEqual(await text(page, '#top-repos tbody'), '', 'the data is there, not an empty page');
  await page.close();
});

test('markup in a repository name is shown as text, never run (recent errors)', async () => {
  // A valid repository name cannot hold markup; a request path can, and refused requests are
  // logged with their path. The rate limit refuses the second request and logs it at warn.
  const limited = await startPullthrough({ registries: { 'fault.test': { upstream: fault.url } }, defaultRegistry: 'fault.test', rateLimit: { requestsPerSecond: 0.01, burst: 1 } });
  try {
    const payload = '<svg/onload=window.__xss=1><img/src=x/onerror=window.__xss=2>';
    const path = `/v2/team/${payload}/manifests/latest`;
    await rawRequest(limited.url, '/v2/');
    const refused = await rawRequest(limited.url, path);
    assert.equal(refused.status, 429);
    const page = await openPage(adminUrl(limited));
    const errs: string[] = [];
    page.on('pageerror', (e) => errs.push(String(e)));
    const shown = await until(page, 'recent errors', () => text(page, '#recent-errors'), (t) => t.includes('denied'));
    assert.ok(shown.includes(`path=${path}`), `the path shown verbatim: ${shown}`);
    const injected = await page.evaluate(() => ({
      elements: document.querySelectorAll('#recent-errors svg, #recent-errors img, #recent-errors script').length,
      flag: (window as unknown as { __xss?: number }).__xss ?? null,
    }));
    assert.deepEqual(injected, { elements: 0, flag: null });
    assert.deepEqual(errs, []);
    await page.close();
  } finally {
    await limited.cleanup();
  }
});
