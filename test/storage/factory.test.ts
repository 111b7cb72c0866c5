/** The factory opens S3 and Redis stores from a YAML configuration, as `serve` will. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../../src/config/index.js';
import { openBlobStore, openMetadataStore } from '../../src/storage/factory.js';
import { StorageUnavailableError } from '../../src/storage/errors.js';
import { tempDir } from '../helpers/process.js';
import { startRedis, type RedisHandle } from '../helpers/redis-server.js';
import { startS3rver, type S3rverHandle } from '../helpers/s3-server.js';
import { randomKey, readAll } from './blob-store.suite.js';

describe('storage factory: s3 and redis drivers', () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let s3: S3rverHandle;
  let redis: RedisHandle;
  const configFile = async (yaml: string): Promise<string> => {
    const p = join(dir.path, `config-${randomBytes(4).toString('hex')}.yaml`);
    await writeFile(p, yaml);
    return p;
  };
  before(async () => {
    dir = await tempDir('pullthrough-factory-');
    [s3, redis] = await Promise.all([startS3rver(), startRedis()]);
  });
  after(async () => {
    await s3?.stop();
    await redis?.stop();
    await dir?.cleanup();
  });

  it('opens working stores from the configuration', async () => {
    const file = await configFile(`
dataDir: ${dir.path}/data
storage:
  driver: s3
  bucket: ${s3.bucket}
  endpoint: ${s3.endpoint}
  forcePathStyle: true
  prefix: factory
  accessKeyId: ${s3.accessKeyId}
  secretAccessKey: ${s3.secretAccessKey}
  redirect: true
metadata:
  driver: redis
  url: ${redis.url}
  keyPrefix: 'factory:'
  commandTimeout: 500ms
`);
    const config = loadConfig({ file, env: {} });
    const blobs = await openBlobStore(config);
    const meta = await openMetadataStore(config);
    try {
      assert.equal(blobs.kind, 's3');
      assert.equal(meta.kind, 'redis');
      const key = randomKey();
      const data = randomBytes(1000);
      const spool = join(dir.path, 'spool');
      await writeFile(spool, data);
      await blobs.putFile(key, spool, data.length);
      assert.ok((await readAll(await blobs.read(key))).equals(data));
      assert.match((await blobs.redirectUrl?.(key)) ?? '', new RegExp(`^${s3.endpoint}/${s3.bucket}/factory/blobs/`));
      await meta.putBlob('sha256:' + 'a'.repeat(64), { size: 1000, lastAccess: 1 });
      assert.equal(await meta.totalBlobSize(), 1000);
    } finally {
      await blobs.close();
      await meta.close();
    }
  });

  it('fails at open with StorageUnavailableError when Redis or S3 cannot be reached', async () => {
    const file = await configFile(`
storage: { driver: s3, bucket: b, endpoint: 'http://127.0.0.1:9', forcePathStyle: true, accessKeyId: k, secretAccessKey: s }
metadata: { driver: redis, url: 'redis://127.0.0.1:9' }
`);
    const config = loadConfig({ file, env: {} });
    await assert.rejects(openBlobStore(config), StorageUnavailableError);
    await assert.rejects(openMetadataStore(config), StorageUnavailableError);
  });

  it('validates the redis topology keys', async () => {
    const bad = async (metadata: string, message: RegExp): Promise<void> => {
      const file = await configFile(`metadata: ${metadata}\n`);
      assert.throws(() => loadConfig({ file, env: {} }), (e: unknown) => e instanceof ConfigError && message.test(e.message));
    };
    await bad(`{ driver: redis }`, /metadata\.url.*required/);
    await bad(`{ driver: redis, sentinels: ['127.0.0.1:26379'] }`, /metadata\.name.*required with sentinels/);
    await bad(`{ driver: redis, cluster: ['redis://a:1'], url: 'redis://b:2' }`, /metadata\.cluster/);
    await bad(`{ driver: redis, sentinels: ['no-port'], name: m }`, /host:port/);
    const ok = loadConfig({ file: await configFile(`metadata: { driver: redis, sentinels: ['10.0.0.1:26379'], name: m, url: 'rediss://:pw@ignored/2' }\n`), env: {} });
    assert.equal(ok.metadata.driver, 'redis');
  });
});
