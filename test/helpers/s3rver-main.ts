/**
 * Child-process entry for s3rver (see s3-server.ts): `node s3rver-main.js PORT DIR BUCKET [KEY CERT]`;
 * with a key and certificate (PEM files) it serves HTTPS.
 * s3rver runs in its own process so a test can SIGKILL it like a real S3 endpoint dying, and so
 * its synchronous filesystem work never stalls the test's event loop.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

interface S3rverInstance {
  run(): Promise<{ address: string; port: number }>;
  close(): Promise<void>;
}
type S3rverCtor = new (options: Record<string, unknown>) => S3rverInstance;

// s3rver is CommonJS and ships no types.
const S3rver = createRequire(import.meta.url)('s3rver') as S3rverCtor;

const [port, directory, bucket, keyFile, certFile] = process.argv.slice(2);
if (!port || !directory || !bucket || (keyFile !== undefined) !== (certFile !== undefined)) {
  console.error('usage: s3rver-main PORT DIR BUCKET [KEY CERT]');
  process.exit(2);
}

const server = new S3rver({
  address: '127.0.0.1',
  port: Number(port),
  directory,
  silent: true,
  // Path-style only, as the stores under test are configured (forcePathStyle): no Host header
  // is ever taken for a bucket name.
  vhostBuckets: false,
  resetOnClose: false,
  configureBuckets: [{ name: bucket }],
  ...(keyFile && certFile ? { key: readFileSync(keyFile), cert: readFileSync(certFile) } : {}),
});

const addr = await server.run();
console.log(`s3rver listening on ${addr.address}:${addr.port}`);

const shutdown = (): void => {
  server.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
