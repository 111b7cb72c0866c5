import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDigest, isDigest, sha256Of } from '../src/oci/digest.js';
import { isRepositoryName, parseManifestReference } from '../src/oci/reference.js';
import { acceptedTypes, isAccepted, MediaType } from '../src/oci/media-types.js';
import { OciError } from '../src/oci/errors.js';
import { parseRange } from '../src/http/range.js';
import { RegistryIndex, resolveTarget } from '../src/http/target.js';
import { loadConfig } from '../src/config/index.js';

test('digests: valid sha256/sha512 only', () => {
  const d = sha256Of(Buffer.from('x'));
  assert.equal(parseDigest(d).hex.length, 64);
  for (const bad of ['sha256:totallywrong', 'sha256:' + 'A'.repeat(64), 'md5:' + 'a'.repeat(32), 'sha256:' + 'a'.repeat(63), '', ':']) {
    assert.equal(isDigest(bad), false, bad);
    assert.throws(() => parseDigest(bad), (e: unknown) => e instanceof OciError && e.code === 'DIGEST_INVALID' && e.status === 400);
  }
});

test('repository names and references follow the distribution grammar', () => {
  for (const ok of ['library/alpine', 'a', 'org/sub/app-x', 'a__b/c.d']) assert.ok(isRepositoryName(ok), ok);
  for (const bad of ['', '..', 'a/../b', 'A', 'a//b', '-a', 'a%2fb', 'a'.repeat(256)]) assert.equal(isRepositoryName(bad), false, bad);
  assert.deepEqual(parseManifestReference('v1.2'), { kind: 'tag', tag: 'v1.2' });
  assert.throws(() => parseManifestReference('sha256:nope'), (e: unknown) => e instanceof OciError && e.code === 'DIGEST_INVALID');
  assert.throws(() => parseManifestReference('-bad'), (e: unknown) => e instanceof OciError && e.code === 'TAG_INVALID' && e.status === 400);
});

test('Accept negotiation', () => {
  assert.equal(acceptedTypes(undefined), null);
  assert.equal(acceptedTypes('*/*'), null);
  const docker = acceptedTypes(`${MediaType.DockerManifest}, ${MediaType.DockerManifestList};q=0.5`)!;
  assert.ok(isAccepted(docker, MediaType.DockerManifestList));
  assert.ok(!isAccepted(docker, MediaType.OciIndex));
  const refused = acceptedTypes(`${MediaType.OciManifest}, ${MediaType.OciIndex};q=0`)!;
  assert.ok(!isAccepted(refused, MediaType.OciIndex), 'q=0 excludes');
});

test('Range: single ranges, suffixes, unsatisfiable → 416 with Content-Range', () => {
  assert.deepEqual(parseRange('bytes=0-0', 10), { start: 0, end: 0 });
  assert.deepEqual(parseRange('bytes=5-', 10), { start: 5, end: 9 });
  assert.deepEqual(parseRange('bytes=-3', 10), { start: 7, end: 9 });
  assert.deepEqual(parseRange('bytes=8-100', 10), { start: 8, end: 9 });
  assert.equal(parseRange('bytes=0-1,3-4', 10), undefined, 'multiple ranges: whole body');
  assert.equal(parseRange('items=0-1', 10), undefined);
  assert.equal(parseRange('bytes=0-1', undefined), undefined, 'unknown size: whole body');
  assert.throws(() => parseRange('bytes=10-', 10), (e: unknown) => e instanceof OciError && e.status === 416 && e.headers['content-range'] === 'bytes */10');
});

test('choosing the upstream: Host, ?ns=, path prefix, default; library/ for docker.io; unconfigured refused', () => {
  const idx = new RegistryIndex(loadConfig({ env: {} }));
  const r = (host: string | undefined, ns: string | undefined, name: string): string => {
    const t = resolveTarget(idx, host, ns, name);
    return `${t.registry.name}/${t.repo}`;
  };
  assert.equal(r('127.0.0.1:5000', undefined, 'alpine'), 'docker.io/library/alpine');
  assert.equal(r('127.0.0.1:5000', undefined, 'org/app'), 'docker.io/org/app');
  assert.equal(r('127.0.0.1:5000', 'quay.io', 'org/app'), 'quay.io/org/app');
  assert.equal(r('127.0.0.1:5000', 'docker.io', 'alpine'), 'docker.io/library/alpine');
  assert.equal(r('127.0.0.1:5000', undefined, 'quay.io/org/app'), 'quay.io/org/app');
  assert.equal(r('quay.io', undefined, 'org/app'), 'quay.io/org/app');
  assert.equal(r('registry-1.docker.io', undefined, 'alpine'), 'docker.io/library/alpine');
  assert.equal(r('quay.io:443', undefined, 'org/app'), 'quay.io/org/app');
  for (const [ns, name] of [['evil.example', 'x'], [undefined, 'evil.example/x'], [undefined, 'localhost:5000/x']] as const) {
    assert.throws(() => resolveTarget(idx, '127.0.0.1:5000', ns, name), (e: unknown) => e instanceof OciError && e.code === 'DENIED' && /not configured/.test(e.message));
  }
});
