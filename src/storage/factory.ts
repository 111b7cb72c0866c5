import type { Config } from '../config/index.js';
import type { BlobStore } from './blob-store.js';
import type { MetadataStore } from './metadata-store.js';
import { FsBlobStore } from './fs-blob-store.js';
import { FileMetadataStore } from './file-metadata-store.js';
import type { StoreLogger } from './s3-blob-store.js';

// The S3 and Redis drivers are imported when configured, not at start: the AWS SDK and ioredis
// add ~25 MB of resident memory and start-up time to a process that uses neither.

export interface StoreOptions {
  /** Connection warnings (lost/restored, failed aborts); the app's Logger fits. */
  logger?: StoreLogger;
}

/** What the store factory reads: `storage`, `metadata` and the derived paths. */
export type StoreSettings = Pick<Config, 'storage' | 'metadata' | 'paths'>;

/**
 * The configured BlobStore, with leftovers of interrupted writes cleaned up.
 * @throws StorageUnavailableError when S3 cannot be reached at start.
 */
export async function openBlobStore(config: StoreSettings, opts: StoreOptions = {}): Promise<BlobStore> {
  const s = config.storage;
  switch (s.driver) {
    case 'fs': {
      const store = new FsBlobStore(s.root ?? config.paths.blobs, config.paths.blobsTmp, { sendfile: s.sendfile });
      await store.cleanup();
      return store;
    }
    case 's3': {
      const { S3BlobStore } = await import('./s3-blob-store.js');
      const store = new S3BlobStore({
        bucket: s.bucket,
        endpoint: s.endpoint,
        region: s.region,
        prefix: s.prefix,
        forcePathStyle: s.forcePathStyle,
        accessKeyId: s.accessKeyId,
        secretAccessKey: s.secretAccessKey,
        redirect: s.redirect,
        logger: opts.logger,
      });
      try {
        await store.cleanup();
      } catch (err) {
        await store.close();
        throw err;
      }
      return store;
    }
  }
}

/**
 * The configured MetadataStore.
 * @throws StorageUnavailableError when Redis cannot be reached at start.
 */
export async function openMetadataStore(config: StoreSettings, opts: StoreOptions = {}): Promise<MetadataStore> {
  const m = config.metadata;
  switch (m.driver) {
    case 'file':
      return FileMetadataStore.open(m.dir ?? config.paths.metadata);
    case 'redis': {
      const { RedisMetadataStore } = await import('./redis-metadata-store.js');
      return RedisMetadataStore.open({
        url: m.url,
        keyPrefix: m.keyPrefix,
        sentinels: m.sentinels,
        name: m.name,
        sentinelPassword: m.sentinelPassword,
        cluster: m.cluster,
        commandTimeoutMs: m.commandTimeout,
        logger: opts.logger,
      });
    }
  }
}
