/**
 * A real S3-compatible endpoint for tests: s3rver@3.7.1 in a child process on 127.0.0.1, a free
 * port and a temp dir, with one bucket created. Path-style, keys S3RVER/S3RVER (s3rver's own).
 */
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { S3BlobStoreOptions } from '../../src/storage/s3-blob-store.js';
import { freePort, startProcess, tempDir, waitForPort, type Proc } from './process.js';
import type { CertFiles } from './pki.js';

export interface S3rverHandle {
  /** `http://127.0.0.1:PORT`, or `https://` when started with a certificate */
  readonly endpoint: string;
  readonly bucket: string;
  readonly port: number;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** The directory s3rver stores objects in (kept across restart()). */
  readonly dir: string;
  readonly pid: () => number;
  /** SIGTERM by PID; the data dir is removed. */
  stop(): Promise<void>;
  /** SIGKILL by PID; the data dir is kept so restart() serves the same objects. */
  kill9(): Promise<void>;
  /** Starts s3rver again on the same port and data dir (after kill9(), or while running). */
  restart(): Promise<void>;
}

const MAIN = join(fileURLToPath(new URL('.', import.meta.url)), 's3rver-main.js');

export async function startS3rver(bucket = 'pullthrough-test', opts: { tls?: CertFiles } = {}): Promise<S3rverHandle> {
  const port = await freePort();
  const tmp = await tempDir('pullthrough-s3rver-');
  let proc: Proc | undefined;
  const launch = async (): Promise<void> => {
    // s3rver encrypts ListObjectsV2 continuation tokens with DES, which OpenSSL 3 only has in its
    // legacy provider: without it every truncated listing is a 500.
    const tls = opts.tls ? [opts.tls.keyFile, opts.tls.certFile] : [];
    proc = startProcess(process.execPath, ['--openssl-legacy-provider', MAIN, String(port), tmp.path, bucket, ...tls]);
    await waitForPort(port, '127.0.0.1', 20_000, proc);
  };
  await launch();
  return {
    endpoint: `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    bucket,
    port,
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    dir: tmp.path,
    pid: () => proc!.pid,
    async stop() {
      await proc?.stop();
      await tmp.cleanup();
    },
    async kill9() {
      await proc?.kill9();
    },
    async restart() {
      await proc?.kill9();
      await launch();
    },
  };
}

/** S3BlobStore options for `s3`: its bucket and keys, path-style, a fresh key prefix; then `extra`. */
export function storeOptions(s3: S3rverHandle, extra: Partial<S3BlobStoreOptions> = {}): S3BlobStoreOptions {
  return {
    bucket: s3.bucket,
    endpoint: s3.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    accessKeyId: s3.accessKeyId,
    secretAccessKey: s3.secretAccessKey,
    prefix: `t-${randomUUID().slice(0, 8)}`,
    ...extra,
  };
}
