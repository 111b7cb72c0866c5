import { test } from 'node:test';
import assert from 'node:assert/strict';
import { referencedBlobs } from '../../src/cache/manifest-refs.js';

const d = (c: string): string => `sha256:${c.repeat(64)}`;

test('referencedBlobs: config and layers of an image manifest; nothing for an index, junk or bad digests', () => {
  const image = { schemaVersion: 2, config: { digest: d('a') }, layers: [{ digest: d('b') }, { digest: d('c') }, { digest: 'sha256:../../etc' }, null] };
  assert.deepEqual(referencedBlobs(Buffer.from(JSON.stringify(image))), [d('a'), d('b'), d('c')]);
  const index = { schemaVersion: 2, manifests: [{ digest: d('d') }] };
  assert.deepEqual(referencedBlobs(Buffer.from(JSON.stringify(index))), []);
  assert.deepEqual(referencedBlobs(Buffer.from('not json')), []);
  assert.deepEqual(referencedBlobs(Buffer.from('null')), []);
  const many = { config: { digest: d('a') }, layers: Array.from({ length: 5000 }, () => ({ digest: d('e') })) };
  assert.equal(referencedBlobs(Buffer.from(JSON.stringify(many))).length, 1000);
});
