/**
 * The status page on the admin listener: `GET /` is one self-contained HTML document (inline CSS
 * and script, no external asset: it works offline), `GET /api/v1/status-summary` the JSON it
 * polls every few seconds and redraws from.
 *
 * Security: a strict Content-Security-Policy allows only this response's inline style and script
 * (a fresh nonce per response) and fetches to this origin; the script writes every value with
 * textContent or as an SVG/progress attribute, never as markup, because repository names, paths
 * and upstream messages shown here come from clients and upstreams.
 */
import { randomBytes } from 'node:crypto';
import type { AdminRoutes } from './app.js';
import { buildStatusSummary, type UpstreamActivity } from './status-summary.js';
import type { StatusHistory } from '../observability/history.js';
import type { RecentEvents } from '../observability/recent-events.js';

/** How often the page refreshes itself. */
export const STATUS_REFRESH_MS = 3000;

/** What the status page needs beyond the admin deps: the process's history, recent log events and upstream activity. */
export interface StatusPageSources {
  readonly history: StatusHistory;
  readonly events: RecentEvents;
  /** Sampled by its owner (server.ts starts and stops it with the server). */
  readonly activity: UpstreamActivity;
}

/** The status page's routes: `GET /` and `GET /api/v1/status-summary`. */
export function statusPageRoutes(sources: StatusPageSources): AdminRoutes {
  return (router, deps) => {
    router.get('/api/v1/status-summary', async (ctx) => {
      ctx.set('cache-control', 'no-store');
      ctx.body = await buildStatusSummary({ config: deps.config, metrics: deps.metrics, meta: deps.meta, downloads: deps.downloads, ...sources });
    });
    router.get('/', (ctx) => {
      const nonce = randomBytes(18).toString('base64');
      ctx.set('content-security-policy', statusPageCsp(nonce));
      ctx.set('x-content-type-options', 'nosniff');
      ctx.set('referrer-policy', 'no-referrer');
      ctx.set('x-frame-options', 'DENY');
      ctx.set('cache-control', 'no-store');
      ctx.type = 'text/html; charset=utf-8';
      ctx.body = statusPageHtml(nonce, STATUS_REFRESH_MS);
    });
  };
}

/** The page's Content-Security-Policy: nothing but this response's nonce'd style and script, and fetches to itself. */
export function statusPageCsp(nonce: string): string {
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src 'nonce-${nonce}'`,
    "connect-src 'self'",
    "img-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** The page. `nonce` is base64 (no quote or angle bracket can reach the markup). */
export function statusPageHtml(nonce: string, refreshMs: number): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pullthrough status</title>
<style nonce="${nonce}">${CSS}</style>
</head>
<body>
<header>
  <h1>pullthrough status <span id="instance"></span></h1>
  <p class="sub"><span id="updated">loading…</span> <span id="problem" class="bad" hidden></span></p>
</header>
<main>
  <section id="ratios" class="card wide">
    <h2>Last hour</h2>
    <div class="figures">
      <div><span class="label">Hit ratio by requests</span><span class="big" id="hit-ratio-requests">–</span><span class="small" id="hit-counts"></span></div>
      <div><span class="label">Hit ratio by bytes</span><span class="big" id="hit-ratio-bytes">–</span><span class="small" id="byte-counts"></span></div>
      <div><span class="label">Saved upstream</span><span class="big" id="bytes-saved">–</span><span class="small">bytes served from the cache</span></div>
    </div>
    <div class="charts">
      <figure><figcaption>Hit ratio by requests, per minute</figcaption><svg id="chart-requests" class="chart" viewBox="0 0 600 100" preserveAspectRatio="none" role="img" aria-label="hit ratio by requests per minute"></svg></figure>
      <figure><figcaption>Hit ratio by bytes, per minute</figcaption><svg id="chart-bytes" class="chart" viewBox="0 0 600 100" preserveAspectRatio="none" role="img" aria-label="hit ratio by bytes per minute"></svg></figure>
      <figure><figcaption>Bytes saved upstream, per minute <span id="chart-saved-max" class="small"></span></figcaption><svg id="chart-saved" class="chart" viewBox="0 0 600 100" preserveAspectRatio="none" role="img" aria-label="bytes saved upstream per minute"></svg></figure>
    </div>
  </section>
  <section class="card">
    <h2>Cache usage</h2>
    <p class="big" id="usage-bytes">–</p>
    <progress id="usage-bar" max="1" value="0"></progress>
    <p class="small" id="usage-text"></p>
  </section>
  <section class="card">
    <h2>Upstreams</h2>
    <div class="scroll"><table id="upstreams"><thead><tr><th>registry</th><th>health</th><th>pull limit left</th></tr></thead><tbody></tbody></table></div>
  </section>
  <section class="card">
    <h2>Downloads in progress</h2>
    <ul id="downloads" class="list"></ul>
    <p class="empty" id="downloads-empty">none</p>
  </section>
  <section class="card">
    <h2>Top repositories</h2>
    <div class="scroll"><table id="top-repos"><thead><tr><th>repository</th><th>requests</th><th>hits</th><th>bytes</th></tr></thead><tbody></tbody></table></div>
    <p class="empty" id="top-repos-empty">no pulls yet</p>
  </section>
  <section class="card wide">
    <h2>Recent errors</h2>
    <ul id="recent-errors" class="list"></ul>
    <p class="empty" id="recent-errors-empty">none</p>
  </section>
</main>
<script nonce="${nonce}">
const REFRESH_MS = ${Number(refreshMs)};
${SCRIPT}
</script>
</body>
</html>
`;
}

const CSS = `
:root { color-scheme: light dark; --fg: #1b1f24; --muted: #5b6470; --bg: #f4f5f7; --card: #fff; --line: #d9dde3; --good: #1a7f37; --bad: #c62828; --warn: #9a6700; --bar: #2f6fde; --bar2: #8250df; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e8eb; --muted: #9aa4b0; --bg: #111418; --card: #1b2027; --line: #2e3640; --bar: #5b93f0; --bar2: #a47ff0; } }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; font: 15px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { padding: 12px 16px 0; }
h1 { font-size: 1.3rem; margin: 0; }
h1 span { color: var(--muted); font-weight: normal; }
h2 { font-size: 1rem; margin: 0 0 8px; }
.sub { margin: 2px 0 0; color: var(--muted); font-size: .85rem; }
main { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 340px), 1fr)); gap: 12px; padding: 12px 16px 16px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px; min-width: 0; }
.wide { grid-column: 1 / -1; }
.figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 160px), 1fr)); gap: 8px; }
.figures > div { display: flex; flex-direction: column; }
.label, .small, .empty, figcaption { color: var(--muted); font-size: .8rem; }
.big { font-size: 1.6rem; font-weight: 600; margin: 0; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 260px), 1fr)); gap: 12px; margin-top: 8px; }
figure { margin: 0; min-width: 0; }
.chart { display: block; width: 100%; height: 90px; background: var(--bg); border-radius: 4px; }
.chart .hit { fill: var(--bar); }
.chart .saved { fill: var(--bar2); }
.chart .axis { stroke: var(--line); stroke-width: 1; }
progress { width: 100%; height: 14px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: .85rem; }
th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid var(--line); vertical-align: top; }
td { overflow-wrap: anywhere; }
td.num, th.num { text-align: right; white-space: nowrap; }
.list { list-style: none; margin: 0; padding: 0; }
.list li { padding: 6px 0; border-bottom: 1px solid var(--line); overflow-wrap: anywhere; font-size: .85rem; }
.mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .8rem; }
.good { color: var(--good); font-weight: 600; }
.bad { color: var(--bad); font-weight: 600; }
.warn { color: var(--warn); font-weight: 600; }
[hidden] { display: none !important; }
`;

/**
 * The page's script. Every value goes in through textContent or setAttribute on SVG/progress
 * elements: nothing the summary holds is ever parsed as HTML.
 */
const SCRIPT = `
'use strict';
const $ = (id) => document.getElementById(id);
const SVG = 'http://www.w3.org/2000/svg';

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function bytes(n) {
  if (n === null || n === undefined || !isFinite(n)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? String(v) : v.toFixed(v < 10 ? 2 : 1)) + ' ' + units[i];
}
function pct(r) {
  return r === null || r === undefined || !isFinite(r) ? '–' : (r * 100).toFixed(1) + '%';
}
function ago(ms) {
  if (ms === null || ms === undefined) return 'never';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 60 ? s + ' s ago' : s < 3600 ? Math.round(s / 60) + ' min ago' : Math.round(s / 3600) + ' h ago';
}
function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

/** Bars of values in [0, max] across the chart, one per minute; null draws nothing. */
function bars(svg, values, max, cls) {
  clear(svg);
  const w = 600 / values.length;
  const axis = document.createElementNS(SVG, 'line');
  axis.setAttribute('x1', '0'); axis.setAttribute('x2', '600'); axis.setAttribute('y1', '99.5'); axis.setAttribute('y2', '99.5');
  axis.setAttribute('class', 'axis');
  svg.appendChild(axis);
  values.forEach((v, i) => {
    if (v === null || !(max > 0)) return;
    const h = Math.max(v > 0 ? 1 : 0, Math.round((v / max) * 98));
    const r = document.createElementNS(SVG, 'rect');
    r.setAttribute('x', String(i * w + 0.5));
    r.setAttribute('width', String(Math.max(1, w - 1)));
    r.setAttribute('y', String(100 - h));
    r.setAttribute('height', String(h));
    r.setAttribute('class', cls);
    const t = document.createElementNS(SVG, 'title');
    t.textContent = new Date(minutesStart[i]).toLocaleTimeString() + ': ' + (max === 1 ? pct(v) : bytes(v));
    r.appendChild(t);
    svg.appendChild(r);
  });
}
let minutesStart = [];

function drawRatios(h) {
  $('hit-ratio-requests').textContent = pct(h.requestHitRatio);
  $('hit-counts').textContent = h.hits + ' from cache, ' + h.misses + ' from upstream';
  $('hit-ratio-bytes').textContent = pct(h.byteHitRatio);
  $('byte-counts').textContent = bytes(h.cacheBytes) + ' from cache, ' + bytes(h.upstreamBytes) + ' from upstream';
  $('bytes-saved').textContent = bytes(h.bytesSaved);
  $('bytes-saved').dataset.bytes = String(h.bytesSaved);
  minutesStart = h.minutes.map((m) => m.start);
  bars($('chart-requests'), h.minutes.map((m) => (m.hits + m.misses > 0 ? m.hits / (m.hits + m.misses) : null)), 1, 'hit');
  bars($('chart-bytes'), h.minutes.map((m) => (m.cacheBytes + m.upstreamBytes > 0 ? m.cacheBytes / (m.cacheBytes + m.upstreamBytes) : null)), 1, 'hit');
  const saved = h.minutes.map((m) => m.cacheBytes);
  const top = Math.max(0, ...saved);
  $('chart-saved-max').textContent = top > 0 ? '(top: ' + bytes(top) + ')' : '';
  bars($('chart-saved'), saved.map((v) => (v > 0 ? v : null)), top, 'saved');
}

function drawUsage(u) {
  const b = $('usage-bytes');
  b.textContent = bytes(u.bytes);
  b.dataset.bytes = u.bytes === null ? '' : String(u.bytes);
  const bar = $('usage-bar');
  if (u.maxSize) {
    bar.max = u.maxSize;
    bar.value = Math.min(u.bytes || 0, u.maxSize);
    bar.hidden = false;
    $('usage-text').textContent = 'of ' + bytes(u.maxSize) + ' (cache.maxSize), ' + pct((u.bytes || 0) / u.maxSize) + ' used';
  } else {
    bar.hidden = true;
    $('usage-text').textContent = 'no cache.maxSize: the cache is not bounded';
  }
  if (u.error) $('usage-text').textContent += ' — ' + u.error;
}

function drawUpstreams(list) {
  const body = $('upstreams').tBodies[0];
  clear(body);
  // Registries nobody pulled from yet share one line: the built-in ones would fill the card.
  const idle = list.filter((r) => r.health === 'idle' && r.rateLimitRemaining === null);
  for (const r of list.filter((x) => !idle.includes(x))) {
    const tr = el('tr');
    tr.dataset.registry = r.name;
    tr.appendChild(el('td', r.name, 'mono'));
    const health = el('td');
    const word = el('span', r.health, r.health === 'up' || r.health === 'answering' ? 'good' : r.health === 'idle' ? '' : 'bad');
    word.dataset.health = r.health;
    health.appendChild(word);
    if (r.source === 'chain') {
      for (const e of r.upstreams) health.appendChild(el('div', (e.up ? 'up: ' : 'down: ') + e.upstream, 'small mono'));
    } else {
      health.appendChild(el('div', 'answered ' + ago(r.lastSuccessAt) + ', failed ' + ago(r.lastFailureAt), 'small'));
    }
    if (r.lastCause) health.appendChild(el('div', 'last cause: ' + r.lastCause, 'small'));
    tr.appendChild(health);
    const limit = el('td', r.rateLimitRemaining === null ? '–' : String(r.rateLimitRemaining), 'num');
    limit.dataset.ratelimit = r.rateLimitRemaining === null ? '' : String(r.rateLimitRemaining);
    tr.appendChild(limit);
    body.appendChild(tr);
  }
  if (idle.length) {
    const tr = el('tr', undefined, 'idle');
    const td = el('td', 'idle (no upstream request yet): ' + idle.map((r) => r.name).join(', '), 'small');
    td.colSpan = 3;
    tr.appendChild(td);
    body.appendChild(tr);
  }
}

function drawDownloads(list) {
  const ul = $('downloads');
  clear(ul);
  $('downloads-empty').hidden = list.length > 0;
  for (const d of list) {
    const li = el('li');
    li.dataset.digest = d.digest;
    li.appendChild(el('div', d.registry + '/' + d.repo, 'mono'));
    li.appendChild(el('div', d.digest.slice(0, 19) + '…' + (d.uncached ? ' (not kept: storage unreachable)' : ''), 'small mono'));
    const bar = document.createElement('progress');
    if (d.bytesTotal) { bar.max = d.bytesTotal; bar.value = Math.min(d.bytesDone, d.bytesTotal); }
    li.appendChild(bar);
    li.appendChild(el('div', bytes(d.bytesDone) + ' of ' + (d.bytesTotal ? bytes(d.bytesTotal) + ' (' + pct(d.bytesDone / d.bytesTotal) + ')' : 'unknown size') + ', started ' + ago(d.startedAt), 'small'));
    ul.appendChild(li);
  }
}

function drawTop(list) {
  const body = $('top-repos').tBodies[0];
  clear(body);
  $('top-repos-empty').hidden = list.length > 0;
  for (const r of list) {
    const tr = el('tr');
    tr.appendChild(el('td', r.registry + '/' + r.repo, 'mono'));
    tr.appendChild(el('td', r.requests, 'num'));
    tr.appendChild(el('td', pct(r.requests ? r.hits / r.requests : null), 'num'));
    tr.appendChild(el('td', bytes(r.bytes), 'num'));
    body.appendChild(tr);
  }
}

function drawErrors(list) {
  const ul = $('recent-errors');
  clear(ul);
  $('recent-errors-empty').hidden = list.length > 0;
  for (const e of list) {
    const li = el('li');
    const head = el('div');
    head.appendChild(el('span', e.level, e.level === 'error' ? 'bad' : 'warn'));
    head.appendChild(document.createTextNode(' ' + new Date(e.time).toLocaleTimeString() + ' '));
    head.appendChild(el('strong', e.msg));
    li.appendChild(head);
    const detail = Object.entries(e.fields).map(([k, v]) => k + '=' + v).join('  ');
    if (detail) li.appendChild(el('div', detail, 'small mono'));
    ul.appendChild(li);
  }
}

let drawn = 0;
async function refresh() {
  try {
    const res = await fetch('api/v1/status-summary', { cache: 'no-store' });
    if (!res.ok) throw new Error('status summary answered ' + res.status);
    const s = await res.json();
    $('instance').textContent = 'instance ' + s.instance;
    drawRatios(s.lastHour);
    drawUsage(s.usage);
    drawUpstreams(s.registries);
    drawDownloads(s.downloads);
    drawTop(s.topRepositories);
    drawErrors(s.recentErrors);
    drawn++;
    document.body.dataset.refreshes = String(drawn);
    $('updated').textContent = 'updated ' + new Date(s.generatedAt).toLocaleTimeString() + ', every ' + REFRESH_MS / 1000 + ' s';
    $('problem').hidden = true;
  } catch (err) {
    $('problem').textContent = 'cannot refresh: ' + (err && err.message ? err.message : String(err));
    $('problem').hidden = false;
  }
}
refresh();
setInterval(refresh, REFRESH_MS);
`;
