/**
 * Child process for the S3 crash test: `node s3-crash-writer.js OPTIONS_JSON KEY PATH SIZE` runs
 * one S3BlobStore.putFile and is SIGKILLed by the test while the upload is under way.
 */
import { S3BlobStore, type S3BlobStoreOptions } from '../../src/storage/s3-blob-store.js';

const [opts, key, path, size] = process.argv.slice(2);
const store = new S3BlobStore(JSON.parse(opts!) as S3BlobStoreOptions);
await store.putFile(key!, path!, Number(size));
console.log('finished (the test should have killed this process before)');
