/**
 * How S3BlobStore sends multipart parts: over TLS as streams, so UNSIGNED-PAYLOAD (no second
 * SHA-256 of every byte) and retried by the store itself; over plain HTTP as buffers with SigV4's
 * payload hash, retried by the SDK. Real s3rver, over HTTPS with a test CA and over HTTP, driven
 * through a child process (s3-upload-probe.ts) that records the x-amz-content-sha256 header of
 * every request as it leaves, after signing.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { reachedOverTls } from '../../src/storage/s3-blob-store.js';
import { createCA, issueServerCert, type TestCA } from '../helpers/pki.js';
import { run, tempDir } from '../helpers/process.js';
import { startS3rver, storeOptions, type S3rverHandle } from '../helpers/s3-server.js';
import { sha256, spoolFiles } from './blob-store.suite.js';

const PROBE = join(fileURLToPath(new URL('.', import.meta.url)), 's3-upload-probe.js');
const PART = 5 << 20;

interface ProbeResult {
  sha256: string;
  sent: Array<{ command: string; payload: string | undefined }>;
}

/** Uploads `data` (its spool file `spool`) through a fresh S3BlobStore in a child process; what it sent and read back. */
async function probe(s3: S3rverHandle, spool: string, data: Buffer, env: Record<string, string> = {}): Promise<ProbeResult> {
  const opts = storeOptions(s3, { partSize: PART });
  const key = `blobs/sha256/${sha256(data)}`;
  const r = await run(process.execPath, [PROBE, JSON.stringify(opts), key, spool, String(data.length)], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    timeoutMs: 60_000,
  });
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as ProbeResult;
}

describe('S3BlobStore payload signing', () => {
  let tmp: { path: string; cleanup: () => Promise<void> };
  let ca: TestCA;
  let tls: S3rverHandle;
  let plain: S3rverHandle;
  const spool = spoolFiles(() => tmp.path);
  before(async () => {
    tmp = await tempDir('pullthrough-s3sig-');
    ca = await createCA({ dir: join(tmp.path, 'ca') });
    tls = await startS3rver('sig-tls', { tls: await issueServerCert(ca, { ips: ['127.0.0.1'], dnsNames: [] }) });
    plain = await startS3rver('sig-plain');
  });
  after(async () => {
    await tls?.stop();
    await plain?.stop();
    await tmp?.cleanup();
  });

  it('knows which endpoints TLS protects: https URLs and the default (AWS)', () => {
    assert.equal(reachedOverTls(undefined), true);
    assert.equal(reachedOverTls('https://s3.example:9000'), true);
    assert.equal(reachedOverTls('HTTPS://s3.example'), true);
    assert.equal(reachedOverTls('http://minio.internal:9000'), false);
  });

  it('over HTTPS, sends every part as UNSIGNED-PAYLOAD and stores the file whole', async () => {
    assert.match(tls.endpoint, /^https:/);
    const data = randomBytes(2 * PART + 12_345);
    const r = await probe(tls, await spool(data), data, { NODE_EXTRA_CA_CERTS: ca.certFile });
    assert.equal(r.sha256, sha256(data), 'the object read back');
    const parts = r.sent.filter((s) => s.command === 'UploadPartCommand');
    assert.equal(parts.length, 3);
    for (const p of parts) assert.equal(p.payload, 'UNSIGNED-PAYLOAD');
    // Everything else is signed as before: the empty or XML bodies' hashes.
    for (const s of r.sent.filter((x) => x.command !== 'UploadPartCommand')) assert.match(s.payload ?? '', /^[0-9a-f]{64}$/, s.command);
  });

  for (const scheme of ['https', 'http'] as const) {
    it(`over ${scheme.toUpperCase()}, sends a part again after S3 refused it once (503), and the object is whole`, async () => {
      const data = randomBytes(2 * PART + 99);
      const env = { PROBE_FAIL_FIRST_PART: '1', ...(scheme === 'https' ? { NODE_EXTRA_CA_CERTS: ca.certFile } : {}) };
      const r = await probe(scheme === 'https' ? tls : plain, await spool(data), data, env);
      assert.equal(r.sha256, sha256(data), 'the object read back');
      assert.equal(r.sent.filter((s) => s.command === 'UploadPartCommand').length, 4, 'three parts, one of them twice');
    });
  }

  it('over plain HTTP, signs each part with the SHA-256 of its own bytes', async () => {
    const data = randomBytes(2 * PART + 777);
    const r = await probe(plain, await spool(data), data);
    assert.equal(r.sha256, sha256(data), 'the object read back');
    const parts = r.sent.filter((s) => s.command === 'UploadPartCommand').map((s) => s.payload);
    const expected = [0, 1, 2].map((i) => sha256(data.subarray(i * PART, Math.min(data.length, (i + 1) * PART))));
    assert.deepEqual([...parts].sort(), [...expected].sort());
  });
});
