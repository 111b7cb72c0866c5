/**
 * The pure manifest check (oci/manifest-check.ts) and the read-reference rule (oci/reference.ts),
 * case by case. The same cases on real sockets, through pullthrough, are in spec-conformance.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkManifest, isServedManifestType, SERVED_MANIFEST_TYPES } from '../../src/oci/manifest-check.js';
import { MediaType } from '../../src/oci/media-types.js';
import { parseManifestReference, parseReadReference } from '../../src/oci/reference.js';
import { OciError } from '../../src/oci/errors.js';

const D = 'sha256:' + 'a'.repeat(64);
const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));
const image = (mediaType?: string): Buffer =>
  json({ schemaVersion: 2, ...(mediaType ? { mediaType } : {}), config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: D, size: 2 }, layers: [] });
const index = (mediaType?: string): Buffer => json({ schemaVersion: 2, ...(mediaType ? { mediaType } : {}), manifests: [] });

test('manifest check: the four served types pass with their own Content-Type (parameters and case ignored)', () => {
  assert.deepEqual([...SERVED_MANIFEST_TYPES].sort(), [MediaType.DockerManifestList, MediaType.DockerManifest, MediaType.OciIndex, MediaType.OciManifest].sort());
  assert.deepEqual(checkManifest(image(MediaType.OciManifest), MediaType.OciManifest), { ok: true, mediaType: MediaType.OciManifest });
  assert.deepEqual(checkManifest(image(MediaType.DockerManifest), `${MediaType.DockerManifest}; charset=utf-8`), { ok: true, mediaType: MediaType.DockerManifest });
  assert.deepEqual(checkManifest(index(MediaType.OciIndex), MediaType.OciIndex.toUpperCase()), { ok: true, mediaType: MediaType.OciIndex });
  assert.deepEqual(checkManifest(index(MediaType.DockerManifestList), MediaType.DockerManifestList), { ok: true, mediaType: MediaType.DockerManifestList });
  // OCI allows the mediaType field to be absent; the Content-Type then says what it is.
  assert.deepEqual(checkManifest(image(), MediaType.OciManifest), { ok: true, mediaType: MediaType.OciManifest });
  assert.deepEqual(checkManifest(index(), MediaType.OciIndex), { ok: true, mediaType: MediaType.OciIndex });
  // An artifact is an image manifest with an artifactType: served.
  const artifact = json({ schemaVersion: 2, mediaType: MediaType.OciManifest, artifactType: 'application/vnd.example+type', config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: D, size: 2 }, layers: [] });
  assert.equal(checkManifest(artifact, MediaType.OciManifest).ok, true);
});

test('manifest check: everything else is refused with a reason', () => {
  const cases: Array<[string, Buffer, string | undefined, RegExp]> = [
    ['text', Buffer.from('hello, world'), 'text/plain', /not JSON/],
    ['HTML login page', Buffer.from('<!doctype html><html><body>Sign in</body></html>'), 'text/html; charset=utf-8', /not JSON/],
    ['empty body', Buffer.alloc(0), MediaType.OciManifest, /not JSON/],
    ['invalid UTF-8 bytes', Buffer.from([0xff, 0xfe, 0x7b]), MediaType.OciManifest, /not JSON/],
    ['JSON array', json([1, 2]), MediaType.OciManifest, /not a JSON object/],
    ['JSON string', json('schemaVersion'), MediaType.OciManifest, /not a JSON object/],
    ['JSON without schemaVersion', json({ errors: [] }), 'application/json', /no schemaVersion/],
    ['schemaVersion 1 (Docker schema1, signed)', json({ schemaVersion: 1, name: 'a', tag: 'b', fsLayers: [], signatures: [] }), MediaType.DockerManifestV1Signed, /schemaVersion 1 is not served/],
    ['schemaVersion "2" as a string', json({ schemaVersion: '2', mediaType: MediaType.OciManifest, config: {}, layers: [] }), MediaType.OciManifest, /not served/],
    ['valid body, Content-Type application/json', image(MediaType.OciManifest), 'application/json', /not a manifest media type/],
    ['valid body, Content-Type application/octet-stream', image(MediaType.OciManifest), 'application/octet-stream', /not a manifest media type/],
    ['valid body, no Content-Type', image(MediaType.OciManifest), undefined, /not a manifest media type/],
    ['OCI manifest body served as a Docker manifest', image(MediaType.OciManifest), MediaType.DockerManifest, /declares mediaType .*oci.*Content-Type says .*docker/],
    ['index body served as an image manifest', index(MediaType.OciIndex), MediaType.OciManifest, /declares mediaType/],
    ['index without mediaType served as an image manifest', index(), MediaType.OciManifest, /without config and layers/],
    ['image without mediaType served as an index', image(), MediaType.OciIndex, /without a manifests array/],
    ['the dropped OCI artifact manifest type', json({ schemaVersion: 2, mediaType: 'application/vnd.oci.artifact.manifest.v1+json', blobs: [] }), 'application/vnd.oci.artifact.manifest.v1+json', /not a manifest media type/],
  ];
  for (const [name, body, ct, reason] of cases) {
    const r = checkManifest(body, ct);
    assert.equal(r.ok, false, name);
    assert.match((r as { reason: string }).reason, reason, name);
  }
  assert.equal(isServedManifestType('text/html'), false);
  assert.equal(isServedManifestType(`${MediaType.OciIndex};charset=utf-8`), true);
});

test('read references: neither tag nor digest is 404 MANIFEST_UNKNOWN; a bad digest stays 400 DIGEST_INVALID; writes keep TAG_INVALID', () => {
  for (const ref of ['.INVALID_MANIFEST_NAME', '-latest', 'a'.repeat(129), 'tag with space']) {
    assert.throws(() => parseReadReference(ref), (e: unknown) => e instanceof OciError && e.code === 'MANIFEST_UNKNOWN' && e.status === 404, ref);
    assert.throws(() => parseManifestReference(ref), (e: unknown) => e instanceof OciError && e.code === 'TAG_INVALID' && e.status === 400, ref);
  }
  for (const ref of ['sha256:totallywrong', `md5:${'a'.repeat(32)}`, 'foo:bar']) {
    assert.throws(() => parseReadReference(ref), (e: unknown) => e instanceof OciError && e.code === 'DIGEST_INVALID' && e.status === 400, ref);
  }
  assert.deepEqual(parseReadReference('v1.2'), { kind: 'tag', tag: 'v1.2' });
  assert.deepEqual(parseReadReference(D), { kind: 'digest', digest: D });
});
