import type { Config } from '../config/index.js';
import type { BlobStore } from './blob-store.js';
import type { MetadataStore } from './metadata-store.js';
import { FsBlobStore } from './fs-blob-store.js';
import { FileMetadataStore } from './file-metadata-store.js';

/** The configured BlobStore, with leftovers of interrupted writes cleaned up. */
export async function openBlobStore(config: Config): Promise<BlobStore> {
  const s = config.storage;
  switch (s.driver) {
    case 'fs': {
      const store = new FsBlobStore(s.root ?? config.paths.blobs);
      await store.cleanup();
      return store;
    }
    case 's3':
      throw new Error('storage.driver: s3 is not implemented yet');
  }
}

/** The configured MetadataStore. */
export async function openMetadataStore(config: Config): Promise<MetadataStore> {
  const m = config.metadata;
  switch (m.driver) {
    case 'file':
      return FileMetadataStore.open(m.dir ?? config.paths.metadata);
    case 'redis':
      throw new Error('metadata.driver: redis is not implemented yet');
  }
}
