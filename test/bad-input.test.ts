/**
 * A table of hostile and mistaken requests: each gets the right status and OCI code, never a
 * 500, and the process keeps serving.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startFaultUpstream, type FaultUpstream } from './helpers/fault-upstream.js';
import { startPullthrough, type Pullthrough } from './helpers/pullthrough.js';
import { rawRequest, rawBytes, errorCode } from './helpers/http.js';

let up: FaultUpstream;
let pt: Pullthrough;

before(async () => {
  up = await startFaultUpstream();
  pt = await startPullthrough({ registries: { 'docker.io': { upstream: up.url, aliases: ['registry-1.docker.io'] } } });
});
after(async () => {
  await pt?.cleanup();
  await up?.close();
});

const D = 'sha256:' + 'a'.repeat(64);
const cases: Array<{ name: string; path: string; method?: string; headers?: Record<string, string>; status: number; code?: string }> = [
  { name: 'percent-encoded traversal in the name', path: '/v2/..%2f..%2fetc/passwd/manifests/latest', status: 400, code: 'NAME_INVALID' },
  { name: 'dot-dot segments in the name', path: '/v2/library/../../etc/manifests/latest', status: 400, code: 'NAME_INVALID' },
  { name: 'encoded slash in a component', path: '/v2/library%2falpine/manifests/latest', status: 400, code: 'NAME_INVALID' },
  { name: 'upper-case name', path: '/v2/Library/Alpine/manifests/latest', status: 400, code: 'NAME_INVALID' },
  { name: 'name longer than 255', path: `/v2/${'a'.repeat(300)}/manifests/latest`, status: 400, code: 'NAME_INVALID' },
  { name: 'invalid blob digest', path: '/v2/library/alpine/blobs/sha256:totallywrong', status: 400, code: 'DIGEST_INVALID' },
  { name: 'invalid manifest digest', path: '/v2/library/alpine/manifests/sha256:totallywrong', status: 400, code: 'DIGEST_INVALID' },
  { name: 'unsupported digest algorithm', path: `/v2/library/alpine/blobs/md5:${'a'.repeat(32)}`, status: 400, code: 'DIGEST_INVALID' },
  { name: 'traversal in a digest', path: '/v2/library/alpine/blobs/sha256:..%2f..%2f', status: 400, code: 'DIGEST_INVALID' },
  { name: 'a reference neither tag nor digest is not there', path: '/v2/library/alpine/manifests/-latest', status: 404, code: 'MANIFEST_UNKNOWN' },
  { name: 'unconfigured registry by path', path: '/v2/evil.example/x/manifests/latest', status: 403, code: 'DENIED' },
  { name: 'unconfigured registry by ns', path: '/v2/x/manifests/latest?ns=evil.example', status: 403, code: 'DENIED' },
  { name: 'unconfigured registry by Host', path: '/v2/evil.example:443/x/manifests/latest', status: 403, code: 'DENIED' },
  { name: 'bad pagination', path: '/v2/library/alpine/tags/list?n=abc', status: 400, code: 'PAGINATION_NUMBER_INVALID' },
  { name: 'oversized query string', path: `/v2/library/alpine/manifests/latest?x=${'q'.repeat(5000)}`, status: 400, code: 'REQUEST_INVALID' },
  { name: 'unknown blob', path: `/v2/library/alpine/blobs/${D}`, status: 404, code: 'BLOB_UNKNOWN' },
  { name: 'unknown manifest', path: '/v2/library/alpine/manifests/nope', status: 404, code: 'MANIFEST_UNKNOWN' },
  { name: 'unknown endpoint under /v2', path: '/v2/library/alpine/what/ever', status: 404, code: 'NAME_UNKNOWN' },
  { name: 'catalog', path: '/v2/_catalog', status: 405, code: 'UNSUPPORTED' },
  { name: 'push: start upload', path: '/v2/library/alpine/blobs/uploads/', method: 'POST', status: 405, code: 'UNSUPPORTED' },
  { name: 'push: manifest PUT', path: '/v2/library/alpine/manifests/latest', method: 'PUT', status: 405, code: 'UNSUPPORTED' },
  { name: 'delete a blob', path: `/v2/library/alpine/blobs/${D}`, method: 'DELETE', status: 405, code: 'UNSUPPORTED' },
  { name: 'a loop back into this pullthrough', path: '/v2/library/alpine/manifests/latest', headers: { via: '1.1 pullthrough' }, status: 508, code: 'LOOP_DETECTED' },
  { name: 'unsatisfiable range on an unknown blob still 404', path: `/v2/library/alpine/blobs/${D}`, headers: { range: 'bytes=99-' }, status: 404, code: 'BLOB_UNKNOWN' },
];

for (const c of cases) {
  test(`bad input: ${c.name} → ${c.status} ${c.code ?? ''}`, async () => {
    const r = await rawRequest(pt.url, c.path, { method: c.method, headers: c.headers });
    assert.equal(r.status, c.status, r.body.toString().slice(0, 300));
    if (c.code) {
      assert.equal(errorCode(r.body), c.code);
      assert.match(String(r.headers['content-type']), /application\/json/);
    }
  });
}

test('bad input: HEAD of an error has the status and no body', async () => {
  const r = await rawRequest(pt.url, '/v2/library/alpine/blobs/sha256:totallywrong', { method: 'HEAD' });
  assert.equal(r.status, 400);
  assert.equal(r.body.length, 0);
});

test('bad input: oversized headers → 431, a TLS hello on the plain port → 400, raw garbage → 400', async () => {
  const big = await rawBytes(pt.ports.mirror!, `GET /v2/ HTTP/1.1\r\nhost: x\r\nx-big: ${'h'.repeat(20_000)}\r\n\r\n`);
  assert.match(big, /^HTTP\/1\.1 431/);
  const hello = Buffer.from('16030100a5010000a10303' + '00'.repeat(64), 'hex');
  assert.match(await rawBytes(pt.ports.mirror!, hello), /^HTTP\/1\.1 400/);
  assert.match(await rawBytes(pt.ports.mirror!, '\x00\x01\x02 nonsense\r\n\r\n'), /^HTTP\/1\.1 400/);
});

test('bad input: after all of it the process still serves and never answered 500', async () => {
  const r = await fetch(`${pt.url}/v2/`);
  assert.equal(r.status, 200);
  assert.equal(pt.proc.child.exitCode, null);
  const fives = pt.requests().filter((l) => l.status === 500);
  assert.deepEqual(fives, []);
  assert.ok(!pt.logs().some((l) => l.level === 'error'), 'no internal errors logged');
});
