import { Readable } from 'node:stream';
import { ObjectReader, type BodyPlan, type ResponseHead } from '../net/object-reader.js';
import type { Exchange, Transport, TransportOptions, TransportRequest } from './transport.js';

/** A blob download streams a 200's (or a ranged 206's) body; anything else (a redirect, an error) is short text. */
const blobPlan = (head: ResponseHead): BodyPlan => (head.status === 200 || head.status === 206 ? { skip: 0, take: Infinity } : 'collect');
/** A HEAD's answer has no body: an empty one-chunk stream. */
const headPlan = (): BodyPlan => 'collect';

/**
 * Slab size for upstream bodies. A cold blob is read, hashed, spooled and forwarded chunk by chunk,
 * and each chunk costs a fixed amount of JavaScript besides its bytes: with 1 MiB slabs instead of
 * 256 KiB, a plain-HTTP upstream's reads come in ~4 times fewer chunks, and a cold 42 MB layer
 * took 80–120 ms of CPU instead of 110–150 (docs/performance.md, tenth round).
 */
const UPSTREAM_SLAB_SIZE = 1 << 20;

/**
 * Blob GETs, and HEADs, through an {@link ObjectReader}, which reads bodies into a few reused
 * slabs and keeps a connection after a HEAD (undici closes it: see object-reader.ts). undici
 * hands on each 64 KiB socket read in a fresh buffer after copying it through its parser's
 * memory: measured on a 1 GiB blob with the digest computed, 1.4–1.7 s of CPU against 1.0–1.1 s
 * for the slab reader, which also took ~30 % less time. A 200/206 body is the reader's
 * `ObjectBody` itself, so consumers can hand its slabs back (`recyclerOf`); other answers are
 * collected as text (up to 64 KiB) and come as a one-chunk stream.
 */
export class ObjectReaderTransport implements Transport {
  private readonly reader: ObjectReader;

  constructor(opts: TransportOptions) {
    this.reader = new ObjectReader({
      connectTimeoutMs: opts.connectTimeout,
      headTimeoutMs: opts.headersTimeout,
      idleTimeoutMs: opts.bodyTimeout,
      keepAliveMs: opts.keepAliveMs,
      slabSize: UPSTREAM_SLAB_SIZE,
      ...(opts.ca ? { ca: opts.ca } : {}),
      ...(opts.lookup ? { lookup: opts.lookup } : {}),
    });
  }

  /**
   * GET or HEAD, without a body (a programming error otherwise: TypeError).
   * @throws ObjectReadError, socket errors with their code, the abort.
   */
  async exchange(req: TransportRequest): Promise<Exchange> {
    const method = req.method;
    if ((method !== 'GET' && method !== 'HEAD') || (req.body !== undefined && req.body !== null)) throw new TypeError(`ObjectReaderTransport sends GETs and HEADs without a body, not ${method}`);
    const r = await this.reader.get(req.url, req.headers, method === 'HEAD' ? headPlan : blobPlan, { signal: req.signal, method });
    return { status: r.head.status, headers: r.head.headers, body: r.body ?? Readable.from([Buffer.from(r.text ?? '')]) };
  }

  async close(): Promise<void> {
    this.reader.close();
  }
}
