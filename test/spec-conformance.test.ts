/**
 * Issue 15 parts 2-4, on real sockets: manifests must be manifests (a scripted fault upstream
 * serves bodies that are not), references that cannot exist are 404, tag lists are collected over
 * the upstream's Link pages, sorted and paged as the spec says; and the exact requests the OCI
 * conformance suite (v1.1.1, pull and tag-list discovery) makes, replayed against pullthrough in
 * front of Debian's docker-registry. docs/spec-conformance.md tells how to run the suite itself.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { startFaultUpstream, type FaultUpstream } from './helpers/fault-upstream.js';
import { startUpstreamRegistry, type Upstream } from './helpers/upstream-registry.js';
import { startPullthrough, type Pullthrough } from './helpers/pullthrough.js';
import { startRedis } from './helpers/redis-server.js';
import { makeImage, pushImage, RegistryClient, type PushResult } from './helpers/images.js';
import { errorCode, rawRequest } from './helpers/http.js';
import { until } from './helpers/replicas.js';

const OCI = 'application/vnd.oci.image.manifest.v1+json';
const DOCKER = 'application/vnd.docker.distribution.manifest.v2+json';
const sha = (b: Buffer | string): string => 'sha256:' + createHash('sha256').update(b).digest('hex');
const goodManifest = (seed: string): Buffer =>
  Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(seed), size: seed.length }, layers: [] }));

let up: FaultUpstream; // scripted upstream: fault.test
let foreign: FaultUpstream; // another host (127.0.0.2) a hostile Link may point to
let reg: Upstream; // Debian's docker-registry: docker.io
let pt: Pullthrough;
/** upstream.tagListMaxSize for this instance: small, so an over-limit list is cheap to make. */
const LIST_LIMIT = 2048;

before(async () => {
  [up, foreign, reg] = await Promise.all([startFaultUpstream(), startFaultUpstream('127.0.0.2'), startUpstreamRegistry()]);
  pt = await startPullthrough({
    registries: { 'fault.test': { upstream: up.url }, 'docker.io': { upstream: reg.url } },
    defaultRegistry: 'fault.test',
    upstream: { tagListMaxSize: LIST_LIMIT },
  });
});
after(async () => {
  await pt?.cleanup();
  await Promise.all([up?.close(), foreign?.close(), reg?.stop()]);
});

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}
const manifestRecord = (digest: string): string => join(pt.dataDir, 'metadata', 'manifests', 'sha256', `${digest.slice(7)}.json`);

async function get(path: string, init: RequestInit = {}): Promise<{ status: number; headers: Headers; body: Buffer }> {
  const r = await fetch(`${pt.url}${path}`, init);
  return { status: r.status, headers: r.headers, body: Buffer.from(await r.arrayBuffer()) };
}

/** Bodies an upstream (or a captive portal, or a proxy in front of it) may send for a manifest. */
const NOT_MANIFESTS: Array<{ name: string; body: Buffer; type: string; headTypeIsManifest: boolean }> = [
  { name: 'text/plain', body: Buffer.from('upstream says hello'), type: 'text/plain', headTypeIsManifest: false },
  { name: 'an HTML login page', body: Buffer.from('<!doctype html><html><body><form>Sign in</form></body></html>'), type: 'text/html; charset=utf-8', headTypeIsManifest: false },
  { name: 'JSON without schemaVersion', body: Buffer.from('{"hello":"world"}'), type: 'application/json', headTypeIsManifest: false },
  { name: 'a valid manifest as application/json', body: goodManifest('ct-json'), type: 'application/json', headTypeIsManifest: false },
  { name: 'a valid manifest as application/octet-stream', body: goodManifest('ct-octet'), type: 'application/octet-stream', headTypeIsManifest: false },
  { name: 'an OCI manifest whose Content-Type says Docker', body: goodManifest('disagree'), type: DOCKER, headTypeIsManifest: true },
  {
    name: 'a Docker schema1 signed manifest',
    body: Buffer.from(JSON.stringify({ schemaVersion: 1, name: 'team/x', tag: 'v1', architecture: 'amd64', fsLayers: [], history: [], signatures: [] })),
    type: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
    headTypeIsManifest: false,
  },
];

test('manifests must be manifests: every non-manifest body is 502 UPSTREAM_ERROR by tag and by digest, never stored, never served', async () => {
  for (const [i, c] of NOT_MANIFESTS.entries()) {
    const repo = `team/bad${i}`;
    const digest = up.addManifest(repo, 'v1', c.body, c.type);
    for (const ref of ['v1', digest]) {
      const r = await get(`/v2/${repo}/manifests/${ref}`);
      assert.equal(r.status, 502, `${c.name} (${ref}): ${r.body.toString().slice(0, 200)}`);
      assert.equal(errorCode(r.body), 'UPSTREAM_ERROR', c.name);
      assert.match(r.body.toString(), /sent no manifest/, c.name);
      assert.ok(!r.body.includes(c.body), `${c.name}: the body itself is not passed on`);
    }
    // HEAD sees no body: refused when the announced Content-Type is no manifest type.
    if (!c.headTypeIsManifest) {
      const h = await get(`/v2/${repo}/manifests/v1`, { method: 'HEAD' });
      assert.equal(h.status, 502, `${c.name}: HEAD`);
    }
    // Not cached: asked again, refused again, and no record of it on disk.
    const again = await get(`/v2/${repo}/manifests/v1`);
    assert.equal(again.status, 502);
    assert.equal(up.count(`GET /v2/${repo}/manifests/v1`), 2, `${c.name}: fetched upstream each time`);
    assert.equal(up.count(`GET /v2/${repo}/manifests/${digest}`), 1);
    assert.equal(await exists(manifestRecord(digest)), false, `${c.name}: nothing stored`);
  }
  // The same tag, once upstream serves a manifest, is served and cached.
  const good = goodManifest('now-good');
  const digest = up.addManifest('team/bad0', 'v1', good, OCI);
  const ok = await get('/v2/team/bad0/manifests/v1');
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get('content-type'), OCI);
  assert.equal(ok.headers.get('docker-content-digest'), digest);
  assert.deepEqual(ok.body, good);
  assert.equal(await exists(manifestRecord(digest)), true);
  await until('the refusals in the request log', () => pt.requests().filter((l) => String(l.path).startsWith('/v2/team/bad') && l.status === 502).length >= 3 * NOT_MANIFESTS.length, 5000);
  assert.ok(pt.requests().filter((l) => String(l.path).startsWith('/v2/team/bad') && l.status === 502).every((l) => l.error === 'UPSTREAM_ERROR'));
});

test('a cached tag is served stale when upstream starts sending pages that are no manifests', async () => {
  const good = goodManifest('stale-portal');
  const digest = up.addManifest('team/portal', 'v1', good, OCI);
  assert.equal((await get('/v2/team/portal/manifests/v1')).status, 200);
  up.addManifest('team/portal', 'v1', Buffer.from('<html>captive portal</html>'), 'text/html');
  const r = await get('/v2/team/portal/manifests/v1');
  assert.equal(r.status, 200);
  assert.match(r.headers.get('warning') ?? '', /^110 /);
  assert.equal(r.headers.get('docker-content-digest'), digest);
  assert.deepEqual(r.body, good);
  // The request log line follows the response by a moment.
  await until('the stale answer in the request log', () => pt.requests().some((l) => l.path === '/v2/team/portal/manifests/v1' && l.cache === 'stale' && /sent no manifest/.test(String(l.stale))), 5000);
  // A tag never cached has nothing stale to offer.
  up.addManifest('team/portal', 'v2', Buffer.from('<html>captive portal</html>'), 'text/html');
  assert.equal((await get('/v2/team/portal/manifests/v2')).status, 502);
});

test('while the metadata store is down (bypass), non-manifest bodies are refused the same way', async () => {
  const redis = await startRedis();
  const pt2 = await startPullthrough({ registries: { 'fault.test': { upstream: up.url } }, defaultRegistry: 'fault.test', metadata: { driver: 'redis', url: redis.url } });
  try {
    const good = goodManifest('bypass-good');
    const goodDigest = up.addManifest('team/bypass', 'good', good, OCI);
    const badDigest = up.addManifest('team/bypass', 'bad', Buffer.from('<html>nope</html>'), 'text/html');
    await redis.kill9();
    for (const ref of ['bad', badDigest]) {
      const r = await fetch(`${pt2.url}/v2/team/bypass/manifests/${ref}`);
      const body = Buffer.from(await r.arrayBuffer());
      assert.equal(r.status, 502, body.toString());
      assert.equal(errorCode(body), 'UPSTREAM_ERROR');
      assert.match(body.toString(), /sent no manifest/);
    }
    const h = await fetch(`${pt2.url}/v2/team/bypass/manifests/bad`, { method: 'HEAD' });
    assert.equal(h.status, 502);
    const ok = await fetch(`${pt2.url}/v2/team/bypass/manifests/good`);
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get('docker-content-digest'), goodDigest);
    assert.deepEqual(Buffer.from(await ok.arrayBuffer()), good);
    await until('the uncached answer in the request log', () => pt2.requests().some((l) => l.path === '/v2/team/bypass/manifests/good' && l.cache === 'pass'), 5000);
  } finally {
    await pt2.cleanup();
    await redis.stop().catch(() => {});
  }
});

test('references that cannot exist are 404 MANIFEST_UNKNOWN without asking upstream; malformed digests and names stay 400', async () => {
  const before = up.log.length;
  for (const ref of ['.INVALID_MANIFEST_NAME', '-latest', `${'a'.repeat(129)}`]) {
    for (const method of ['GET', 'HEAD']) {
      const r = await rawRequest(pt.url, `/v2/team/app/manifests/${ref}`, { method });
      assert.equal(r.status, 404, `${method} ${ref}`);
      if (method === 'GET') assert.equal(errorCode(r.body), 'MANIFEST_UNKNOWN');
    }
  }
  assert.equal(up.log.length, before, 'upstream was not asked');
  const digest = await rawRequest(pt.url, '/v2/team/app/manifests/sha256:totallywrong');
  assert.equal(digest.status, 400);
  assert.equal(errorCode(digest.body), 'DIGEST_INVALID');
  const name = await rawRequest(pt.url, '/v2/Team/App/manifests/.INVALID_MANIFEST_NAME');
  assert.equal(name.status, 400);
  assert.equal(errorCode(name.body), 'NAME_INVALID');
  assert.equal(up.log.length, before);
});

/** Follows a response's Link header on pullthrough, as a client does. */
function linkOf(headers: Headers): string | undefined {
  return /^<([^>]+)>; rel="next"$/.exec(headers.get('link') ?? '')?.[1];
}
async function tagList(path: string): Promise<{ tags: string[]; link?: string; headers: Headers }> {
  const r = await get(path);
  assert.equal(r.status, 200, `${path}: ${r.body.toString().slice(0, 300)}`);
  const doc = JSON.parse(r.body.toString()) as { name: string; tags: string[] };
  return { tags: doc.tags, link: linkOf(r.headers), headers: r.headers };
}

test('tag list: an unsorted list over several Link pages (relative and absolute) is served whole, sorted, paged with n/last and Link', async () => {
  const repo = 'team/paged';
  up.setTagPages(repo, [
    { tags: ['t3', 't9'], link: `</v2/${repo}/tags/list?page=1&n=2>; rel="next"` },
    { tags: ['t1', 't7'], link: `<${up.url}/v2/${repo}/tags/list?page=2>; rel="next"` },
    { tags: ['t4', 't2', 't1'], link: `</v2/${repo}/tags/list?page=3>; rel="next"` },
    { tags: null }, // distribution's answer for no tags: the end
  ]);
  const pagesRead = (): number => up.seen.filter((s) => s.path === `/v2/${repo}/tags/list`).length;
  const all = await tagList(`/v2/${repo}/tags/list`);
  assert.deepEqual(all.tags, ['t1', 't2', 't3', 't4', 't7', 't9']);
  assert.equal(all.link, undefined, 'the whole list has no next page');
  assert.equal(pagesRead(), 4, 'every upstream page read once');
  assert.deepEqual(
    up.seen.filter((s) => s.path === `/v2/${repo}/tags/list`).map((s) => s.url),
    [`/v2/${repo}/tags/list`, `/v2/${repo}/tags/list?page=1&n=2`, `/v2/${repo}/tags/list?page=2`, `/v2/${repo}/tags/list?page=3`],
    'the upstream got the Links it gave, and no n of ours',
  );

  // Paging by n, following pullthrough's own Links to the end.
  const walked: string[] = [];
  let path: string | undefined = `/v2/${repo}/tags/list?n=2`;
  const links: string[] = [];
  while (path) {
    const p = await tagList(path);
    assert.ok(p.tags.length <= 2);
    walked.push(...p.tags);
    path = p.link;
    if (path) links.push(path);
  }
  assert.deepEqual(walked, ['t1', 't2', 't3', 't4', 't7', 't9']);
  assert.deepEqual(links, [`/v2/${repo}/tags/list?n=2&last=t2`, `/v2/${repo}/tags/list?n=2&last=t4`]);

  // The example: upstream order t3,t4,t1,t2 must not hide t1 and t2 after last=t4.
  const last = await tagList(`/v2/${repo}/tags/list?n=2&last=t4`);
  assert.deepEqual(last.tags, ['t7', 't9']);
  assert.equal(last.link, undefined);
  assert.deepEqual((await tagList(`/v2/${repo}/tags/list?last=t3`)).tags, ['t4', 't7', 't9']);
  const zero = await tagList(`/v2/${repo}/tags/list?n=0`);
  assert.deepEqual(zero.tags, []);
  assert.equal(zero.headers.get('link'), null, 'n=0: an empty list and no Link');
  // The client's own ns= comes back in the Link.
  const ns = await tagList(`/v2/${repo}/tags/list?n=5&ns=fault.test`);
  assert.equal(ns.link, `/v2/${repo}/tags/list?n=5&last=t7&ns=fault.test`);
  const h = await get(`/v2/${repo}/tags/list?n=2`, { method: 'HEAD' });
  assert.equal(h.status, 200);
  assert.equal(h.body.length, 0);
});

test('tag list: a Link to another host is not followed; a Link loop and a list over upstream.tagListMaxSize are clear 502s', async () => {
  up.setTagPages('team/foreign', [{ tags: ['a'], link: `<${foreign.url}/v2/team/foreign/tags/list?page=1>; rel="next"` }]);
  foreign.setTagPages('team/foreign', [{ tags: ['a'] }, { tags: ['stolen'] }]);
  const f = await get('/v2/team/foreign/tags/list');
  assert.equal(f.status, 502);
  assert.equal(errorCode(f.body), 'UPSTREAM_ERROR');
  assert.match(f.body.toString(), /not followed/);
  assert.equal(foreign.log.length, 0, 'the other host was never contacted');

  up.setTagPages('team/other-path', [{ tags: ['a'], link: '</v2/team/elsewhere/tags/list>; rel="next"' }]);
  assert.match((await get('/v2/team/other-path/tags/list')).body.toString(), /not followed/);

  up.setTagPages('team/loop', [
    { tags: ['a'], link: '</v2/team/loop/tags/list?page=1>; rel="next"' },
    { tags: ['b'], link: '</v2/team/loop/tags/list>; rel="next"' },
  ]);
  const loop = await get('/v2/team/loop/tags/list');
  assert.equal(loop.status, 502);
  assert.match(loop.body.toString(), /already read/);
  assert.equal(up.seen.filter((s) => s.path === '/v2/team/loop/tags/list').length, 2);

  // Two pages of ~1.2 KiB each: the second crosses the 2 KiB limit.
  const page = (p: number): string[] => Array.from({ length: 100 }, (_, i) => `tag-${p}-${String(i).padStart(3, '0')}`);
  up.setTagPages('team/huge', [{ tags: page(0), link: '</v2/team/huge/tags/list?page=1>; rel="next"' }, { tags: page(1) }]);
  const huge = await get('/v2/team/huge/tags/list');
  assert.equal(huge.status, 502);
  assert.equal(errorCode(huge.body), 'UPSTREAM_ERROR');
  assert.match(huge.body.toString(), /larger than upstream\.tagListMaxSize \(2048 bytes\) after 2 page/);

  up.setTagPages('team/notalist', [{ tags: null, rawBody: '<html>not a list</html>' }]);
  const bad = await get('/v2/team/notalist/tags/list');
  assert.equal(bad.status, 502);
  assert.match(bad.body.toString(), /not JSON/);
  // An upstream 404 stays a 404.
  const none = await get('/v2/team/never-heard-of/tags/list');
  assert.equal(none.status, 404);
  assert.equal(errorCode(none.body), 'NAME_UNKNOWN');
});

test('tag list: the last good list is served stale (sorted, paged) when upstream fails or sends no list; never listed → the error', async () => {
  const repo = 'team/stale-list';
  up.setTagPages(repo, [{ tags: ['b', 'c'], link: `</v2/${repo}/tags/list?page=1>; rel="next"` }, { tags: ['a'] }]);
  assert.deepEqual((await tagList(`/v2/${repo}/tags/list`)).tags, ['a', 'b', 'c']);
  try {
    up.tagListStatus = 503;
    const s = await tagList(`/v2/${repo}/tags/list?n=2`);
    assert.deepEqual(s.tags, ['a', 'b']);
    assert.equal(s.link, `/v2/${repo}/tags/list?n=2&last=b`);
    assert.match(s.headers.get('warning') ?? '', /^110 /);
    assert.deepEqual((await tagList(s.link!)).tags, ['c']);
    await until('the stale list in the request log', () => pt.requests().some((l) => String(l.path).startsWith(`/v2/${repo}/tags/list`) && l.cache === 'stale'), 5000);
    const never = await get('/v2/team/never-listed/tags/list');
    assert.equal(never.status, 502);
    assert.equal(errorCode(never.body), 'UPSTREAM_ERROR');
  } finally {
    up.tagListStatus = undefined;
  }
  // A page that is no list is an upstream failure too: the last good list is served.
  up.setTagPages(repo, [{ tags: null, rawBody: 'oops' }]);
  const s = await tagList(`/v2/${repo}/tags/list`);
  assert.deepEqual(s.tags, ['a', 'b', 'c']);
  assert.match(s.headers.get('warning') ?? '', /^110 /);
  // And a fresh good list replaces the kept one.
  up.setTagPages(repo, [{ tags: ['z', 'y'] }]);
  assert.deepEqual((await tagList(`/v2/${repo}/tags/list`)).tags, ['y', 'z']);
  up.setTagPages(repo, [{ tags: null, rawBody: 'oops' }]);
  assert.deepEqual((await tagList(`/v2/${repo}/tags/list`)).tags, ['y', 'z']);
});

// ---- the conformance suite's own requests (v1.1.1 conformance/01_pull_test.go, 03_discovery_test.go)

/** The error codes the suite accepts in a 400 body (setup.go's errorCodes). */
const SPEC_ERROR_CODES = ['BLOB_UNKNOWN', 'BLOB_UPLOAD_INVALID', 'BLOB_UPLOAD_UNKNOWN', 'DIGEST_INVALID', 'MANIFEST_BLOB_UNKNOWN', 'MANIFEST_INVALID', 'MANIFEST_UNKNOWN', 'MANIFEST_UNVERIFIED', 'NAME_INVALID', 'NAME_UNKNOWN', 'SIZE_INVALID', 'TAG_INVALID', 'UNAUTHORIZED', 'DENIED', 'UNSUPPORTED'];

test('conformance pull workflow (read-only), replayed against docker-registry through the mirror door', async () => {
  const ns = 'conformance/pull';
  const pushed: PushResult = await pushImage(reg, ns, 'tagtest0', await makeImage({ format: 'oci', seed: 'conformance-pull' }));
  const base = `/v2/docker.io/${ns}`; // a path-prefixed name, as a mirror client may send
  const dummyDigest = sha('hello world');
  const accept = { accept: OCI };
  const status = async (method: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; body: Buffer }> => {
    const r = await fetch(`${pt.url}${path}`, { method, headers });
    return { status: r.status, headers: r.headers, body: Buffer.from(await r.arrayBuffer()) };
  };
  // Pull blobs
  assert.equal((await status('HEAD', `${base}/blobs/${dummyDigest}`)).status, 404);
  const hb = await status('HEAD', `${base}/blobs/${pushed.configDigest}`);
  assert.equal(hb.status, 200);
  assert.equal(hb.headers.get('docker-content-digest'), pushed.configDigest);
  assert.equal((await status('GET', `${base}/blobs/${dummyDigest}`)).status, 404);
  const gb = await status('GET', `${base}/blobs/${pushed.configDigest}`);
  assert.equal(gb.status, 200);
  assert.equal(sha(gb.body), pushed.configDigest);
  // Pull manifests
  assert.equal((await status('HEAD', `${base}/manifests/.INVALID_MANIFEST_NAME`)).status, 404);
  for (const ref of [pushed.manifestDigest, 'tagtest0']) {
    const h = await status('HEAD', `${base}/manifests/${ref}`, accept);
    assert.equal(h.status, 200, `HEAD ${ref}`);
    assert.equal(h.headers.get('docker-content-digest'), pushed.manifestDigest);
  }
  assert.equal((await status('GET', `${base}/manifests/.INVALID_MANIFEST_NAME`)).status, 404);
  for (const ref of [pushed.manifestDigest, 'tagtest0']) {
    const g = await status('GET', `${base}/manifests/${ref}`, accept);
    assert.equal(g.status, 200, `GET ${ref}`);
    assert.equal(sha(g.body), pushed.manifestDigest);
    assert.equal(g.headers.get('content-type'), OCI);
  }
  // Error codes: the suite sends this GET with a Content-Type and a body; 400 or 404, a spec code in a 400.
  const wrong = await status('GET', `${base}/manifests/sha256:totallywrong`, { 'content-type': OCI });
  assert.ok(wrong.status === 400 || wrong.status === 404, String(wrong.status));
  if (wrong.status === 400) assert.ok(SPEC_ERROR_CODES.includes(errorCode(wrong.body) ?? ''), wrong.body.toString());
});

test('conformance discovery (tag list) workflow against docker-registry, whose list is not sorted and ignores n', async () => {
  const ns = 'conformance/discovery';
  const image = await makeImage({ format: 'oci', seed: 'conformance-discovery' });
  // Pushed in this order; the upstream lists them in its own order.
  for (const t of ['test3', 'test0', 'test2', 'test1']) await pushImage(reg, ns, t, image);
  const direct = new RegistryClient({ url: reg.url });
  const upstreamTags = (JSON.parse((await direct.request('GET', `/v2/${ns}/tags/list`)).body.toString()) as { tags: string[] }).tags;
  const upstreamN2 = (JSON.parse((await direct.request('GET', `/v2/${ns}/tags/list?n=2`)).body.toString()) as { tags: string[] }).tags;
  await direct.close();
  const sorted = [...upstreamTags].sort();
  assert.deepEqual(sorted, ['test0', 'test1', 'test2', 'test3']);

  // GET request to list tags should yield 200 response
  const all = await tagList(`/v2/docker.io/${ns}/tags/list`);
  assert.deepEqual(all.tags, sorted, `sorted, whatever the upstream order (${upstreamTags.join(',')}; with n=2: ${upstreamN2.join(',')})`);
  const numTags = all.tags.length;
  // GET number of tags should be limitable by `n` query parameter
  const numResults = numTags / 2;
  const first = await tagList(`/v2/docker.io/${ns}/tags/list?n=${numResults}`);
  assert.equal(first.tags.length, numResults);
  assert.deepEqual(first.tags, sorted.slice(0, numResults));
  // GET start of tag is set by `last` query parameter
  const rest = await tagList(`/v2/docker.io/${ns}/tags/list?n=${numResults}&last=${first.tags[numResults - 1]}`);
  assert.ok(rest.tags.length <= numResults);
  assert.deepEqual(rest.tags, sorted.slice(numResults), 'the tags after `last`, none lost');
  assert.equal(first.link, `/v2/docker.io/${ns}/tags/list?n=${numResults}&last=${first.tags[numResults - 1]}`);
});
