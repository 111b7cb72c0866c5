/**
 * The front (src/http/front.ts) on a real pullthrough process with Debian's docker-registry as
 * upstream: the pull routes it answers without koa give the headers and bytes a client checks,
 * every kind of request — pull route, koa route, unknown path, refused before routing — gets its
 * request log line and metric, and paths koa serves still reach it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { startUpstreamRegistry, type Upstream } from '../helpers/upstream-registry.js';
import { makeImage, pushImage, type PushResult } from '../helpers/images.js';
import { startPullthrough, metricValue, type LogLine, type Pullthrough } from '../helpers/pullthrough.js';
import { errorCode, rawRequest } from '../helpers/http.js';
import { until } from '../helpers/replicas.js';

let hub: Upstream;
let pt: Pullthrough;
let pushed: PushResult;

before(async () => {
  hub = await startUpstreamRegistry();
  pt = await startPullthrough({ registries: { 'docker.io': { upstream: hub.url } } });
  pushed = await pushImage(hub, 'library/front', 'v1', await makeImage({ format: 'oci', layers: 1, layerSize: 300_000 }));
});

after(async () => {
  await pt?.cleanup();
  await hub?.stop();
});

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** The request log line of the request to `path` made after `since` lines were logged. */
async function lineFor(path: string, since: number): Promise<LogLine> {
  let line: LogLine | undefined;
  await until(`a request log line for ${path}`, () => (line = pt.requests().slice(since).find((l) => l.path === path)) !== undefined);
  return line!;
}

test('manifest GET and HEAD: digest, media type and length headers; the body hashes to the digest', async () => {
  const path = '/v2/library/front/manifests/v1';
  const accept = { accept: pushed.mediaType };
  const get = await rawRequest(pt.url, path, { headers: accept });
  assert.equal(get.status, 200);
  assert.equal(get.headers['docker-content-digest'], pushed.manifestDigest);
  assert.equal(get.headers.etag, `"${pushed.manifestDigest}"`);
  assert.equal(get.headers['content-type'], pushed.mediaType);
  assert.equal(Number(get.headers['content-length']), get.body.length);
  assert.equal(sha256(get.body), pushed.manifestDigest);
  const head = await rawRequest(pt.url, path, { method: 'HEAD', headers: accept });
  assert.equal(head.status, 200);
  assert.equal(head.body.length, 0);
  assert.equal(head.headers['docker-content-digest'], pushed.manifestDigest);
  assert.equal(Number(head.headers['content-length']), get.body.length);
});

test('blob GET, Range and HEAD: the upstream bytes, 206 with Content-Range, the length without a body', async () => {
  const layer = pushed.manifests[0]!.layers[0]!;
  const path = `/v2/library/front/blobs/${layer.digest}`;
  const since = pt.requests().length;
  const get = await rawRequest(pt.url, path);
  assert.equal(get.status, 200);
  assert.equal(get.headers['content-type'], 'application/octet-stream');
  assert.equal(get.headers['docker-content-digest'], layer.digest);
  assert.equal(Number(get.headers['content-length']), layer.size);
  assert.equal(sha256(get.body), layer.digest);
  const line = await lineFor(path, since);
  assert.equal(line.kind, 'blob');
  assert.equal(line.status, 200);
  assert.equal(line.bytes, layer.size);

  const part = await rawRequest(pt.url, path, { headers: { range: 'bytes=100-199' } });
  assert.equal(part.status, 206);
  assert.equal(part.headers['content-range'], `bytes 100-199/${layer.size}`);
  assert.deepEqual(part.body, get.body.subarray(100, 200));

  const head = await rawRequest(pt.url, path, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.body.length, 0);
  assert.equal(Number(head.headers['content-length']), layer.size);
  assert.equal(head.headers['accept-ranges'], 'bytes');

  const metrics = await pt.metrics();
  assert.ok(metricValue(metrics, 'pullthrough_requests_total', { kind: 'blob', cache: 'hit', status: '200' }) >= 1);
  assert.ok(metricValue(metrics, 'pullthrough_requests_total', { kind: 'blob', cache: 'hit', status: '206' }) >= 1);
});

test('failures on the pull routes: the OCI code and status, no digest headers of an answer that was not given', async () => {
  const bad = await rawRequest(pt.url, '/v2/library/front/blobs/sha256:nothex');
  assert.equal(bad.status, 400);
  assert.equal(errorCode(bad.body), 'DIGEST_INVALID');
  const unknown = `sha256:${'0'.repeat(64)}`;
  const since = pt.requests().length;
  const missing = await rawRequest(pt.url, `/v2/library/front/blobs/${unknown}`);
  assert.equal(missing.status, 404);
  assert.equal(errorCode(missing.body), 'BLOB_UNKNOWN');
  assert.equal(missing.headers['docker-content-digest'], undefined);
  assert.equal(missing.headers['content-type'], 'application/json; charset=utf-8');
  const line = await lineFor(`/v2/library/front/blobs/${unknown}`, since);
  assert.equal(line.error, 'BLOB_UNKNOWN');
  assert.equal(line.status, 404);
  const noManifest = await rawRequest(pt.url, '/v2/library/front/manifests/nope', { method: 'HEAD' });
  assert.equal(noManifest.status, 404);
  assert.equal(noManifest.body.length, 0);
});

test('an unknown path is a 404 NAME_UNKNOWN with its log line; paths koa serves still reach koa, in any case', async () => {
  const since = pt.requests().length;
  const unknown = await rawRequest(pt.url, '/nothing/here?x=1');
  assert.equal(unknown.status, 404);
  assert.equal(errorCode(unknown.body), 'NAME_UNKNOWN');
  const line = await lineFor('/nothing/here', since);
  assert.equal(line.kind, 'other');
  assert.equal(line.status, 404);

  assert.equal((await rawRequest(pt.url, '/healthz')).body.toString(), 'ok\n');
  // @koa/router matches its paths case-insensitively; the front must not answer these itself.
  assert.equal((await rawRequest(pt.url, '/HEALTHZ')).body.toString(), 'ok\n');
  assert.match((await rawRequest(pt.url, '/ca.crt')).body.toString(), /BEGIN CERTIFICATE/);

  // A koa route (tags) gets its log line from the front too.
  const tags = await rawRequest(pt.url, '/v2/library/front/tags/list');
  assert.equal(tags.status, 200);
  assert.deepEqual(JSON.parse(tags.body.toString()).tags, ['v1']);
  const tagLine = await lineFor('/v2/library/front/tags/list', since);
  assert.equal(tagLine.kind, 'tags');
  assert.equal(tagLine.bytes, tags.body.length);
  // Writes on the pull paths go to koa, which refuses them on the mirror door.
  const put = await rawRequest(pt.url, '/v2/library/front/manifests/v2', { method: 'PUT' });
  assert.equal(put.status, 405);
  assert.equal(errorCode(put.body), 'UNSUPPORTED');
  assert.equal((await rawRequest(pt.url, '/v2/', { method: 'DELETE' })).status, 405);
});

test('checks before routing: a looped request is refused with 508 on every path, and logged', async () => {
  const since = pt.requests().length;
  // `pullthrough` is the default instanceName.
  for (const path of ['/v2/library/front/manifests/v1', '/v2/library/front/tags/list', '/elsewhere']) {
    const r = await rawRequest(pt.url, path, { headers: { via: '1.1 pullthrough' } });
    assert.equal(r.status, 508, path);
    assert.equal(errorCode(r.body), 'LOOP_DETECTED');
  }
  assert.equal((await lineFor('/elsewhere', since)).error, 'LOOP_DETECTED');
});

test('a client that goes away during a blob: its line says aborted, and the next request is served', async () => {
  // Larger than what loopback's socket buffers take at once, so the response cannot have finished.
  const big = await pushImage(hub, 'library/front-big', 'v1', await makeImage({ format: 'oci', layers: 1, layerSize: 24 * 1024 * 1024 }));
  const layer = big.manifests[0]!.layers[0]!;
  const path = `/v2/library/front-big/blobs/${layer.digest}`;
  // Cached first, so the aborted answer is the pull route's, not a fill's; its line is waited for,
  // or it could be taken for the aborted request's (the log is read as it arrives).
  const beforeFill = pt.requests().length;
  assert.equal(sha256((await rawRequest(pt.url, path)).body), layer.digest);
  await lineFor(path, beforeFill);
  const since = pt.requests().length;
  await new Promise<void>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: pt.ports.mirror, path, agent: false }, (res) => {
      res.once('data', () => {
        req.destroy();
        resolve();
      });
    });
    req.on('error', (err) => ((err as NodeJS.ErrnoException).code === 'ECONNRESET' ? resolve() : reject(err)));
    req.end();
  });
  const line = await lineFor(path, since);
  assert.equal(line.status, 200);
  assert.equal(line.aborted, true);
  assert.ok((line.bytes as number) < layer.size, `${line.bytes} bytes of ${layer.size} sent`);
  const again = await rawRequest(pt.url, path, { headers: { range: `bytes=${layer.size - 10}-` } });
  assert.equal(again.status, 206);
  assert.equal(again.body.length, 10);
});
