/**
 * Child process for the upload tests: `node s3-upload-probe.js OPTIONS_JSON KEY PATH SIZE`
 * runs one S3BlobStore.putFile, reads the object back and prints one JSON line: the sha256 of
 * what the store serves, and each request's command and the x-amz-content-sha256 header it was
 * signed with. A child process, so a test can start it with NODE_EXTRA_CA_CERTS (Node reads it
 * only at startup) to trust an HTTPS s3rver, as an operator with a private CA would.
 */
import { createHash } from 'node:crypto';
import { S3BlobStore, type S3BlobStoreOptions } from '../../src/storage/s3-blob-store.js';

const [opts, key, path, size] = process.argv.slice(2);
const store = new S3BlobStore(JSON.parse(opts!) as S3BlobStoreOptions);
const sent: Array<{ command: string; payload: string | undefined }> = [];
// With PROBE_FAIL_FIRST_PART=1 the first UploadPart fails as S3 does when it sheds load (503
// SlowDown), which s3rver cannot be made to do; the store must send that part again.
let failPart = process.env.PROBE_FAIL_FIRST_PART === '1';
// The deserialize step runs last before the request goes out, after signing (and retries).
store.client.middlewareStack.add(
  (next, context) => async (args) => {
    const headers = (args.request as { headers?: Record<string, string> }).headers ?? {};
    sent.push({ command: context.commandName ?? '?', payload: headers['x-amz-content-sha256'] });
    if (failPart && context.commandName === 'UploadPartCommand') {
      failPart = false;
      throw Object.assign(new Error('Please reduce your request rate.'), { name: 'SlowDown', $fault: 'server', $metadata: { httpStatusCode: 503 } });
    }
    return next(args);
  },
  { step: 'deserialize', name: 'probeRecordPayloadHash' },
);
await store.putFile(key!, path!, Number(size));
const hash = createHash('sha256');
for await (const chunk of await store.read(key!)) hash.update(chunk as Buffer);
await store.close();
console.log(JSON.stringify({ sha256: hash.digest('hex'), sent }));
