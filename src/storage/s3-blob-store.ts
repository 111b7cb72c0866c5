import { createReadStream } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { BlobEntry, BlobStore, ByteRange } from './blob-store.js';
import { BlobNotFoundError, StorageUnavailableError } from './errors.js';
import { PartBuffers } from './part-buffers.js';
import { ObjectReader, type BodyPlan, type GetResult, type ResponseHead } from '../net/object-reader.js';

const KEY = /^[a-z0-9][a-z0-9_.-]*(\/[a-z0-9][a-z0-9_.-]*)*$/;

/** Where warnings go; the app's Logger fits. */
export interface StoreLogger {
  warn(msg: string, fields?: Record<string, unknown>): void;
}

export interface S3BlobStoreOptions {
  bucket: string;
  /** Custom endpoint (MinIO, Ceph, R2, s3rver); default: AWS for `region`. */
  endpoint?: string;
  region?: string;
  /** Key prefix inside the bucket; a trailing `/` is added when missing. */
  prefix?: string;
  /** `http://endpoint/bucket/key` instead of `http://bucket.endpoint/key`. */
  forcePathStyle?: boolean;
  /** Static credentials; both unset = the default AWS chain (env, profile, IMDS, IRSA…). */
  accessKeyId?: string;
  secretAccessKey?: string;
  /** Offer presigned GET URLs from redirectUrl(). */
  redirect?: boolean;
  /** Lifetime of presigned URLs (S3 checks it when the GET starts). Default 20 min. */
  redirectExpiresSec?: number;
  /**
   * Files above this go multipart, in parts of this size; smaller ones are one streamed
   * PutObject. Uploads share at most 2 × queueSize part buffers (see PartBuffers), so upload
   * memory is bounded by 2 × queueSize × partSize. Default 8 MiB (S3 minimum: 5 MiB).
   */
  partSize?: number;
  /** Parts in flight per multipart upload. Default 4. */
  queueSize?: number;
  /** cleanup() aborts multipart uploads under the prefix initiated longer ago than this. Default 24 h. */
  staleUploadAgeMs?: number;
  /** Keys per ListObjectsV2 page (S3 caps it at 1000, the default). */
  listPageSize?: number;
  /** TCP connect timeout. Default 5 s. */
  connectTimeoutMs?: number;
  /** Longest socket inactivity during a request (not the whole transfer). Default 60 s. */
  idleTimeoutMs?: number;
  /** SDK attempts for non-streaming requests, and our own attempts for streamed PutObject. Default 3. */
  maxAttempts?: number;
  logger?: StoreLogger;
}

/** What the SDK attaches to its errors. */
interface SdkError {
  name?: string;
  code?: string;
  $fault?: 'client' | 'server';
  $metadata?: { httpStatusCode?: number };
}

const silent: StoreLogger = { warn() {} };

/** Whether an endpoint is reached over TLS: an https URL, or none (AWS's own endpoints, HTTPS). */
export function reachedOverTls(endpoint: string | undefined): boolean {
  return endpoint === undefined || /^https:/i.test(endpoint);
}

/** How much of a part one write hands to the TLS socket when parts are streamed (see uploadParts). */
const PART_SLICE = 256 << 10;

/** `buf` as a stream of PART_SLICE views of it (no copies). */
function slicesOf(buf: Buffer): Readable {
  return Readable.from(
    (function* () {
      for (let o = 0; o < buf.length; o += PART_SLICE) yield buf.subarray(o, o + PART_SLICE);
    })(),
  );
}

/** The wait before retrying a request after failed attempt number `attempt`: 200 ms, 400 ms, 800 ms, ... */
const backoff = (attempt: number): Promise<void> => new Promise((r) => setTimeout(r, 100 * 2 ** attempt));

/**
 * Lifetime of the presigned URLs read() fetches itself. They never leave the process; S3 checks
 * the expiry when a GET starts, so this only has to cover the retries of one read.
 */
const READ_URL_EXPIRES_SEC = 15 * 60;
const CONTENT_RANGE = /^bytes (\d+)-(\d+)\/(\d+|\*)$/;

/** An S3 error answer to one of read()'s GETs, shaped like the SDK's errors for fail(). */
class S3ReadError extends Error {
  readonly $metadata: { httpStatusCode: number };
  constructor(code: string, status: number) {
    super(`${code} (HTTP ${status})`);
    this.name = code;
    this.$metadata = { httpStatusCode: status };
  }
}

/**
 * Blobs as S3 objects under `prefix`. Atomicity comes from S3 itself: a PutObject or a completed
 * multipart upload becomes visible whole, never in part, and an incomplete multipart upload is
 * not an object at all (it only costs storage until aborted: see {@link cleanup}). Nothing is
 * ever written under a final key except by one of those two calls.
 *
 * (s3rver, the test double, is weaker: it writes a PutObject body in place as it arrives; real
 * S3, MinIO, Ceph RGW and R2 do not.)
 *
 * Memory stays flat: small files stream from disk in one PutObject; large ones go multipart
 * through a bounded set of reused part buffers. Reads do not go through the SDK: they
 * fetch a presigned GET URL with {@link ObjectReader}, which reads the response into a few reused
 * 256 KiB buffers instead of a fresh buffer per socket read (see there for why). Everything else
 * (uploads, HEAD, DELETE, listing, presigning) is the SDK's.
 */
export class S3BlobStore implements BlobStore {
  readonly kind = 's3';
  readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly redirect: boolean;
  private readonly redirectExpiresSec: number;
  private readonly partSize: number;
  private readonly queueSize: number;
  private readonly partBuffers: PartBuffers;
  private readonly staleUploadAgeMs: number;
  private readonly maxAttempts: number;
  private readonly listPageSize: number | undefined;
  private readonly log: StoreLogger;
  /** putFile calls in flight, by key: a concurrent call for the same key joins the first. */
  private readonly inflight = new Map<string, Promise<void>>();
  private readonly reader: ObjectReader;
  /** Whether the endpoint is reached over TLS: parts are then sent as streams (see uploadParts). */
  private readonly tls: boolean;
  private closed = false;

  constructor(opts: S3BlobStoreOptions) {
    this.bucket = opts.bucket;
    const p = (opts.prefix ?? '').replace(/^\/+/, '');
    this.prefix = p === '' || p.endsWith('/') ? p : `${p}/`;
    this.redirect = opts.redirect ?? false;
    this.redirectExpiresSec = opts.redirectExpiresSec ?? 20 * 60;
    this.partSize = Math.max(opts.partSize ?? 8 << 20, 5 << 20);
    this.queueSize = opts.queueSize ?? 4;
    this.partBuffers = new PartBuffers(this.partSize, 2 * this.queueSize);
    this.staleUploadAgeMs = opts.staleUploadAgeMs ?? 24 * 3600_000;
    this.maxAttempts = opts.maxAttempts ?? 3;
    this.listPageSize = opts.listPageSize;
    this.log = opts.logger ?? silent;
    const config: S3ClientConfig = {
      region: opts.region ?? 'us-east-1',
      endpoint: opts.endpoint,
      forcePathStyle: opts.forcePathStyle ?? false,
      // The SDK default (WHEN_SUPPORTED) sends streamed bodies as aws-chunked with a trailing
      // CRC32. Stores that do not decode aws-chunked (s3rver, some older S3-compatibles) then keep
      // the chunk framing inside the object: silent corruption. Only checksum when an operation
      // requires it; integrity is checked by the size check in putFile and, upstream of us, by
      // the cache layer's digest verification.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: this.maxAttempts,
      // Options for the SDK's own NodeHttpHandler. socketTimeout is inactivity, which is what a
      // stalled endpoint looks like; its requestTimeout would only warn, and would also count the
      // upload time of a large part.
      requestHandler: {
        connectionTimeout: opts.connectTimeoutMs ?? 5_000,
        socketTimeout: opts.idleTimeoutMs ?? 60_000,
      },
      // The SDK warns on console when a streamed request fails (it cannot retry those); we retry
      // them ourselves, so route its chatter to our logger.
      logger: { trace() {}, debug() {}, info() {}, warn: (...a: unknown[]) => this.log.warn('s3 sdk: ' + a.map(String).join(' ')), error: (...a: unknown[]) => this.log.warn('s3 sdk: ' + a.map(String).join(' ')) },
    };
    if (opts.accessKeyId !== undefined || opts.secretAccessKey !== undefined) {
      config.credentials = { accessKeyId: opts.accessKeyId ?? '', secretAccessKey: opts.secretAccessKey ?? '' };
    }
    this.client = new S3Client(config);
    this.tls = reachedOverTls(opts.endpoint);
    this.reader = new ObjectReader({
      connectTimeoutMs: opts.connectTimeoutMs ?? 5_000,
      idleTimeoutMs: opts.idleTimeoutMs ?? 60_000,
    });
  }

  /** The S3 key of a store key. */
  objectKey(key: string): string {
    // Keys come from blobKey(); the guard keeps any other caller inside the prefix.
    if (!KEY.test(key) || key.split('/').includes('..')) throw new Error(`invalid blob key: ${key.slice(0, 100)}`);
    return this.prefix + key;
  }

  /** Turns an SDK failure into the store's typed errors; 404 → null for the caller to decide. */
  private fail(err: unknown, what: string): StorageUnavailableError {
    const e = err as SdkError;
    const status = e.$metadata?.httpStatusCode;
    const why = status ? `${e.name ?? 'error'} (HTTP ${status})` : (e.code ?? e.name ?? String(err));
    // Network errors, timeouts, 5xx, throttling, and also 4xx such as AccessDenied or NoSuchBucket:
    // none of them can be fixed by the client of the registry, so all say "storage unavailable".
    return new StorageUnavailableError('s3', `${what}: ${why}`, { cause: err });
  }

  private static isNotFound(err: unknown): boolean {
    const e = err as SdkError;
    return e?.name === 'NoSuchKey' || e?.name === 'NotFound' || e?.$metadata?.httpStatusCode === 404;
  }

  async stat(key: string): Promise<{ size: number } | null> {
    const Key = this.objectKey(key);
    try {
      const h = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }));
      return { size: h.ContentLength ?? 0 };
    } catch (err) {
      if (S3BlobStore.isNotFound(err)) return null;
      throw this.fail(err, `HEAD ${Key}`);
    }
  }

  async read(key: string, range?: ByteRange): Promise<Readable> {
    const Key = this.objectKey(key);
    let url: URL;
    try {
      // Signing is local, but resolving credentials from the default chain may need the network.
      url = new URL(await getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key }), { expiresIn: READ_URL_EXPIRES_SEC }));
    } catch (err) {
      throw this.fail(err, `presign GET ${Key}`);
    }
    // The Range header is not part of the signature (S3 accepts unsigned headers on presigned URLs).
    const headers: Record<string, string> = range ? { range: `bytes=${range.start}-${range.end}` } : {};
    const plan = (head: ResponseHead): BodyPlan => this.bodyPlan(head, Key, range);
    const bodyError = (err: Error): Error =>
      (err as { code?: string }).code === 'ESHORTBODY' ? new StorageUnavailableError('s3', `GET ${Key}: ${err.message}`) : this.fail(err, `GET ${Key} (body)`);
    // Retried as the SDK retries a GET before its body: network failures, 5xx, throttling.
    for (let attempt = 1; ; attempt++) {
      let res: GetResult;
      try {
        res = await this.reader.get(url, headers, plan, { mapError: bodyError });
      } catch (err) {
        if (err instanceof StorageUnavailableError) throw err;
        if (attempt >= this.maxAttempts || this.closed) throw this.fail(err, `GET ${Key}`);
        await backoff(attempt);
        continue;
      }
      if (res.body) return res.body;
      const status = res.head.status;
      // A range starting past the end: nothing to send, as a file read past its end (FsBlobStore).
      if (range && status === 416) return Readable.from([]);
      const err = new S3ReadError(/<Code>([^<]{1,100})<\/Code>/.exec(res.text ?? '')?.[1] ?? (status === 404 ? 'NotFound' : 'UnknownError'), status);
      if (S3BlobStore.isNotFound(err)) throw new BlobNotFoundError(key);
      if ((status >= 500 || status === 429) && attempt < this.maxAttempts && !this.closed) {
        await backoff(attempt);
        continue;
      }
      throw this.fail(err, `GET ${Key}`);
    }
  }

  /**
   * Which bytes of a GET's body are the answer: all of a 200 to a plain GET; for a Range, the
   * asked-for part of whatever came. Not every S3-compatible honours ranges exactly (s3rver answers
   * `bytes=0-0`, the usual probe, with the whole object): the body is cut to what was asked, from
   * where it really starts. Anything but 200/206 is collected as an error.
   */
  private bodyPlan(head: ResponseHead, Key: string, range: ByteRange | undefined): BodyPlan {
    if (head.status !== 200 && head.status !== 206) return 'collect';
    const cl = head.headers['content-length'];
    // Unknown length (a gateway streaming chunked): relay until the body ends.
    const length = cl !== undefined ? Number(cl) : Infinity;
    if (!range) return { skip: 0, take: length };
    const cr = head.headers['content-range'];
    const m = CONTENT_RANGE.exec(cr ?? '');
    const from = m ? Number(m[1]) : 0;
    const total = m && m[3] !== '*' ? Number(m[3]) : m ? Infinity : length;
    const end = Math.min(range.end, total - 1);
    if (from > range.start) throw new StorageUnavailableError('s3', `GET ${Key}: asked for bytes from ${range.start}, got ${cr}`);
    return { skip: range.start - from, take: Math.max(0, end - range.start + 1) };
  }

  /** Connections of read(): serving a body now, and kept for reuse. */
  readConnections(): { active: number; idle: number } {
    return this.reader.stats();
  }

  async putFile(key: string, path: string, size: number): Promise<void> {
    const Key = this.objectKey(key);
    const running = this.inflight.get(Key);
    if (running) {
      // Same key means same bytes (the contract): one upload serves both. Only if it fails do we
      // try with our own copy. Either way our file is ours to delete.
      const ok = await running.then(
        () => true,
        () => false,
      );
      if (ok) {
        await rm(path, { force: true });
        return;
      }
      return this.putFile(key, path, size);
    }
    const p = this.upload(Key, path, size).finally(() => {
      if (this.inflight.get(Key) === p) this.inflight.delete(Key);
    });
    this.inflight.set(Key, p);
    try {
      await p;
    } finally {
      await rm(path, { force: true });
    }
  }

  private async upload(Key: string, path: string, size: number): Promise<void> {
    if (size > this.partSize) await this.uploadMultipart(Key, path, size);
    else await this.uploadSingle(Key, path, size);
    // Trust, but verify: a store that kept transfer framing or lost bytes would otherwise serve a
    // corrupt object forever. A wrong object is deleted so nobody reads it.
    let stored: number | undefined;
    try {
      stored = (await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }))).ContentLength;
    } catch (err) {
      throw this.fail(err, `HEAD ${Key} after upload`);
    }
    if (stored !== size) {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key })).catch(() => {});
      throw new StorageUnavailableError('s3', `stored ${Key} has ${stored} bytes, expected ${size}; deleted it`);
    }
  }

  /** One streamed PutObject; retried here with a fresh file stream, since the SDK cannot rewind one. */
  private async uploadSingle(Key: string, path: string, size: number): Promise<void> {
    // Our own spool file could not be read: not S3's fault, and no retry will fix it.
    const ownFile = (err: unknown): boolean => (err as NodeJS.ErrnoException).path === path;
    try {
      await this.retried(async () => {
        const Body = createReadStream(path);
        try {
          await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key, Body, ContentLength: size }));
        } finally {
          Body.destroy();
        }
      }, ownFile);
    } catch (err) {
      throw ownFile(err) ? err : this.fail(err, `PUT ${Key}`);
    }
  }

  /**
   * Runs `attempt` until it succeeds, S3's answer says another try cannot help (a 4xx other than
   * 429), `final(err)` says so, or maxAttempts are spent; then rethrows the last error as it is.
   * For requests with streamed bodies, which the SDK does not retry: each attempt makes its own.
   */
  private async retried<T>(attempt: () => Promise<T>, final: (err: unknown) => boolean = () => false): Promise<T> {
    for (let n = 1; ; n++) {
      try {
        return await attempt();
      } catch (err) {
        const status = (err as SdkError).$metadata?.httpStatusCode;
        const retryable = status === undefined || status >= 500 || status === 429;
        if (final(err) || !retryable || n >= this.maxAttempts) throw err;
        await backoff(n);
      }
    }
  }

  /**
   * CreateMultipartUpload, then queueSize parts at a time, each read from the file into a shared
   * part buffer (see PartBuffers) and sent as UploadPart, then CompleteMultipartUpload. On failure
   * the upload is aborted and the first error kept.
   */
  private async uploadMultipart(Key: string, path: string, size: number): Promise<void> {
    let UploadId: string | undefined;
    try {
      UploadId = (await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key }))).UploadId;
      if (!UploadId) throw new StorageUnavailableError('s3', `CreateMultipartUpload for ${Key} returned no UploadId`);
      const parts = await this.uploadParts(Key, UploadId, path, size);
      await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key,
          UploadId,
          MultipartUpload: { Parts: parts.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
        }),
      );
    } catch (err) {
      if (UploadId) await this.abortUpload(Key, UploadId);
      throw this.fail(err, `multipart PUT ${Key}`);
    }
  }

  /** The parts' ETags in order; stops taking new parts at the first failure and rethrows it. */
  private async uploadParts(Key: string, UploadId: string, path: string, size: number): Promise<string[]> {
    const count = Math.ceil(size / this.partSize);
    const etags: string[] = new Array<string>(count);
    const fh = await open(path, 'r');
    let next = 0;
    let failure: { err: unknown } | undefined;
    // Parts are read one after another from the file's current offset, not by position: the
    // file may be a pipe (the crash test feeds one), and reading is fast next to sending.
    let readTurn: Promise<unknown> = Promise.resolve();
    const readPart = async (buf: Buffer, len: number, start: number): Promise<void> => {
      for (let off = 0; off < len; ) {
        const { bytesRead } = await fh.read(buf, off, len - off, null);
        // The spool file is ours and complete: shorter means it changed under us.
        if (bytesRead === 0) throw new StorageUnavailableError('s3', `${path} ended at ${start + off} bytes, expected ${size}`);
        off += bytesRead;
      }
    };
    const worker = async (): Promise<void> => {
      for (;;) {
        const buf = await this.partBuffers.take();
        // The part number is taken after the buffer, in the same turn as the read is queued, so
        // reads are queued in part order.
        if (failure || next >= count) {
          this.partBuffers.give(buf);
          return;
        }
        const i = next++;
        const start = i * this.partSize;
        const len = Math.min(this.partSize, size - start);
        const read = readTurn.then(() => readPart(buf, len, start));
        readTurn = read.catch(() => {});
        try {
          await read;
          const part = { Bucket: this.bucket, Key, UploadId, PartNumber: i + 1, ContentLength: len };
          const body = buf.subarray(0, len);
          // Over plain HTTP the buffer itself: the SDK signs its SHA-256 (a part's only protection
          // in transit there) and retries it. Over TLS, 256 KiB views of it as a stream. Node's
          // TLS socket copies one big write's ciphertext into buffers of its own, which, with
          // glibc's mmap threshold pinned (docs/operations.md, Memory), are fresh mappings whose
          // pages fault in: 0.4-0.5 s of CPU per 120 MB in 8 MiB writes, 0.07-0.10 s in 256 KiB
          // ones. A stream also goes as UNSIGNED-PAYLOAD (TLS guards the bytes), which saves a
          // second SHA-256 of every byte, as AWS's Java SDK and minio-java do over HTTPS; the SDK
          // does not retry a stream, so retried() does (docs/performance.md, twelfth round).
          const r = this.tls
            ? await this.retried(() => this.client.send(new UploadPartCommand({ ...part, Body: slicesOf(body) })))
            : await this.client.send(new UploadPartCommand({ ...part, Body: body }));
          if (!r.ETag) throw new StorageUnavailableError('s3', `UploadPart ${i + 1} of ${Key} returned no ETag`);
          etags[i] = r.ETag;
        } catch (err) {
          failure ??= { err };
        } finally {
          this.partBuffers.give(buf);
        }
      }
    };
    try {
      // Every worker has finished (none still reads the file) before it is closed.
      await Promise.all(Array.from({ length: Math.min(this.queueSize, count) }, worker));
    } finally {
      await fh.close();
    }
    if (failure) throw failure.err;
    return etags;
  }

  /** Best effort: unsupported (s3rver) or unreachable just leaves the parts for cleanup() or a lifecycle rule. */
  private async abortUpload(Key: string, UploadId: string): Promise<boolean> {
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key, UploadId }));
      return true;
    } catch (err) {
      this.log.warn('s3: could not abort multipart upload', { key: Key, uploadId: UploadId, error: String((err as SdkError).name ?? err) });
      return false;
    }
  }

  async delete(key: string): Promise<void> {
    const Key = this.objectKey(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }));
    } catch (err) {
      if (S3BlobStore.isNotFound(err)) return;
      throw this.fail(err, `DELETE ${Key}`);
    }
  }

  /** Objects under `<prefix>blobs/`, as FsBlobStore lists: a bucket or prefix may hold other things. */
  async *list(): AsyncIterable<BlobEntry> {
    const Prefix = `${this.prefix}blobs/`;
    let ContinuationToken: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix, ContinuationToken, MaxKeys: this.listPageSize }));
      } catch (err) {
        throw this.fail(err, `LIST ${Prefix}`);
      }
      for (const o of page.Contents ?? []) {
        if (!o.Key) continue;
        const key = o.Key.slice(this.prefix.length);
        if (KEY.test(key)) yield { key, size: o.Size ?? 0 };
      }
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (ContinuationToken);
  }

  async redirectUrl(key: string): Promise<string | null> {
    if (!this.redirect) return null;
    const Key = this.objectKey(key);
    try {
      // Signing is local, but resolving credentials from the default chain may need the network.
      return await getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key }), { expiresIn: this.redirectExpiresSec });
    } catch (err) {
      throw this.fail(err, `presign GET ${Key}`);
    }
  }

  /**
   * Aborts multipart uploads that a crashed writer left behind: those under our prefix, for keys
   * of our layout, initiated more than `staleUploadAgeMs` ago (younger ones may belong to another
   * replica still uploading). Endpoints without ListMultipartUploads (s3rver) are tolerated: there
   * a bucket lifecycle rule (AbortIncompleteMultipartUpload) is the only remedy.
   */
  async cleanup(): Promise<void> {
    await this.abortStaleUploads();
  }

  /**
   * {@link cleanup} with a chosen age.
   * @returns how many uploads were aborted, or null when the endpoint cannot list them.
   */
  async abortStaleUploads(olderThanMs = this.staleUploadAgeMs): Promise<number | null> {
    const cutoff = Date.now() - olderThanMs;
    let aborted = 0;
    let KeyMarker: string | undefined;
    let UploadIdMarker: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: this.prefix || undefined, KeyMarker, UploadIdMarker }),
        );
      } catch (err) {
        const e = err as SdkError;
        if (e.name === 'NotImplemented' || e.name === 'MethodNotAllowed' || e.$metadata?.httpStatusCode === 501) {
          this.log.warn('s3: endpoint cannot list multipart uploads; incomplete uploads are left to a lifecycle rule');
          return null;
        }
        throw this.fail(err, 'LIST multipart uploads');
      }
      for (const u of page.Uploads ?? []) {
        if (!u.Key || !u.UploadId || !u.Key.startsWith(this.prefix)) continue;
        if (!KEY.test(u.Key.slice(this.prefix.length))) continue;
        if (u.Initiated && u.Initiated.getTime() > cutoff) continue;
        if (await this.abortUpload(u.Key, u.UploadId)) aborted++;
      }
      KeyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
      UploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
    } while (KeyMarker);
    return aborted;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.reader.close();
    this.client.destroy();
  }
}
