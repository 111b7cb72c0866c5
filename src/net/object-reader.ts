import { connect as netConnect, isIP, type LookupFunction, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { Readable } from 'node:stream';
import { BufferPool } from '../util/buffer-pool.js';

/**
 * HTTP/1.1 GETs of large objects that read the response straight into reused buffers: S3 objects
 * (presigned URLs, S3BlobStore.read) and blobs downloaded from upstream registries and their CDNs
 * (RegistryUpstream, for blob fills).
 *
 * Why not the SDK's GetObjectCommand, or undici: both receive every socket read (64 KiB) in a
 * freshly allocated buffer (undici also copies each into its parser's memory). At 1 GB/s that is
 * 1 GiB of short-lived external memory per second, and V8 answers external memory growth with a
 * full mark-compact every ~64 MB: measured with 16 clients, pullthrough spent 1.7–2.4 s of CPU per
 * GiB served (SDK; undici 1.3–1.6) against 0.6–0.7 here, ran ~120 GCs per GiB against ~4, and its
 * RSS rose by the garbage waiting for them.
 *
 * Here each socket is created with `onread`: the kernel copies into a slab (256 KiB unless the
 * reader says otherwise) taken from a small shared pool, successive reads fill the slab further,
 * and the body is handed on as slices of it. A slab goes back to the pool once its reader has
 * moved on and every slice has been handed back with `recycle()` (the response writer does that
 * once the bytes are in the kernel), so a download of any size cycles through a few slabs. A
 * consumer that never recycles just leaves the slabs to the GC.
 *
 * Scope: what object GETs need, and HEADs. No request body, no pipelining, no proxies, no
 * redirects (the caller follows them), no compression (none is asked for); Content-Length, chunked
 * and close-delimited bodies; keep-alive reuse with a transparent retry when a reused connection
 * turns out to have been closed by the server.
 *
 * HEADs are here because undici closes the connection after every HEAD (it guards against servers
 * that send a body anyway), so each tag revalidation cost the next upstream request a new
 * connection: over TLS a full handshake with the registry, every time. Here the connection is
 * kept; a server that does send a body after a HEAD is caught when those bytes arrive: on an idle
 * connection they close it, and in place of the next response's head they make the request start
 * again on a new connection.
 */

/**
 * Bytes per slab by default: one slab fills over several reads, each read going where the last
 * one ended. Larger slabs mean larger writes to the client, and over TLS each write is encrypted
 * whole into buffers of its size: with 1 MiB slabs, 16 TLS clients served from S3 peaked ~90 MB
 * higher than with 256 KiB, for no CPU saved. Downloads that are also hashed and spooled gain
 * from larger ones (`slabSize`): see ObjectReaderOptions.
 */
export const SLAB_SIZE = 256 << 10;
/** A slab with less room than this is retired: a read smaller than this is not worth a syscall. */
const MIN_ROOM = 32 << 10;
/**
 * Idle slabs kept for the next reads while reads keep coming, in bytes (128 slabs of 256 KiB, 32
 * of 1 MiB); those handed back beyond this go to the GC. Many concurrent bodies pause and resume
 * out of step (each holds the slab it fills plus those whose slices sit in its client's write
 * queue), so the count in use swings by tens: with 8 kept, 16 TLS clients reading from S3 dropped
 * and reallocated ~740 slabs a second (190 MB/s of garbage, half of what they served): 2.3 s of
 * CPU per GB served instead of 1.3–1.4, and a peak RSS ~40 MB higher.
 */
const MAX_FREE_BYTES = 32 << 20;
/** Idle slabs kept once none has been taken for a while (IDLE_MS): a burst's slabs do not stay for good. */
const MIN_FREE_BYTES = 2 << 20;
/** Where a connection reads while it has no body to read into a slab (headers on a reused connection). */
const SPARE_SIZE = 16 << 10;
const MAX_HEAD = 64 << 10;
/** Bodies up to this size are copied out, so no slab is pinned by a small read that is never recycled. */
const COPY_BELOW = 64 << 10;
/** Error bodies (S3's XML) are kept up to this size; the rest is read and dropped. */
const MAX_COLLECT = 64 << 10;
const MAX_IDLE_PER_ORIGIN = 16;

/** A network or protocol failure; `code` is what S3BlobStore reports. */
export class ObjectReadError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = 'ObjectReadError';
  }
}

/** The status and headers of a response (header names lower-case, repeats joined with `, `). */
export interface ResponseHead {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
}

/**
 * What to do with a response's body, decided from its head before any body byte is handed on:
 * stream bytes [skip, skip + take) of it (take may be Infinity), or collect it as text (errors).
 */
export type BodyPlan = { readonly skip: number; readonly take: number } | 'collect';

export interface GetResult {
  readonly head: ResponseHead;
  /** The body stream, when the plan was to stream. */
  readonly body?: ObjectBody;
  /** The body (up to 64 KiB of it), when the plan was to collect. */
  readonly text?: string;
}

export interface ObjectReaderOptions {
  /** TCP (and TLS) connect timeout. */
  connectTimeoutMs: number;
  /** Longest wait for the next bytes of a response; not counted while the consumer holds reading back. */
  idleTimeoutMs: number;
  /** Longest wait for a response's head, when it should differ from idleTimeoutMs. */
  headTimeoutMs?: number;
  /** Name resolution for the connections (net.connect's `lookup`). */
  lookup?: LookupFunction;
  /** Trusted CAs for HTTPS, replacing Node's default roots (tls.connect's `ca`). */
  ca?: string[];
  /** How long a connection is kept for reuse (below the usual server keep-alive timeouts). Default 4 s. */
  keepAliveMs?: number;
  /**
   * Bytes per slab (default SLAB_SIZE), and so the most one socket read returns. Over plain HTTP
   * a read returns whatever the socket holds, up to the slab's room, and every chunk read costs
   * the consumer a fixed amount of JavaScript: a cold download that is hashed, spooled and
   * forwarded took ~25 % less CPU with 1 MiB slabs (docs/performance.md). Over TLS each read is
   * one record (16 KiB) whatever the slab.
   */
  slabSize?: number;
}

/** Turns a failure in the middle of a body into the error the body stream is destroyed with. */
export type BodyErrorMapper = (err: Error) => Error;

class Slab {
  refs = 0;
  current = true;
  constructor(readonly buf: Buffer) {}
}

/** The slabs of one ObjectReader: handed out, taken back, kept for reuse. */
class SlabPool {
  private readonly buffers: BufferPool;

  constructor(readonly size: number) {
    this.buffers = new BufferPool(size, MAX_FREE_BYTES, MIN_FREE_BYTES);
  }

  take(): Slab {
    return new Slab(this.buffers.take());
  }

  /** A slab nobody reads into and no slice of which is still out. */
  maybeRelease(slab: Slab): void {
    if (slab.refs !== 0 || slab.current) return;
    this.buffers.put(slab.buf);
  }

  /** Slabs allocated so far: with reuse working this follows concurrency, not bytes read. */
  get allocated(): number {
    return this.buffers.allocated;
  }

  /** Slabs kept for reuse. */
  get idle(): number {
    return this.buffers.idle;
  }
}

/** An object's bytes. `recycle(chunk)` hands a chunk back once its bytes are no longer needed. */
export class ObjectBody extends Readable {
  private readonly slices = new WeakMap<Buffer, Slab>();
  private left: number;
  /** Set once the whole HTTP body has been read off the socket. */
  wireDone = false;

  constructor(
    private readonly conn: Conn,
    private skip: number,
    take: number,
    private readonly copy: boolean,
    private readonly mapError: BodyErrorMapper,
  ) {
    super({ highWaterMark: conn.reader.slabs.size });
    this.left = take;
    if (take === 0) this.push(null);
  }

  /** Every byte wanted has been pushed (the rest of the HTTP body, if any, is not needed). */
  get satisfied(): boolean {
    return this.left === 0;
  }

  /** A piece of the HTTP body, in `slab` or (slab null) in a buffer about to be reused. @returns false to stop reading */
  deliver(part: Buffer, slab: Slab | null): boolean {
    if (this.left === 0 || this.destroyed) return true;
    if (this.skip > 0) {
      if (part.length <= this.skip) {
        this.skip -= part.length;
        return true;
      }
      part = part.subarray(this.skip);
      this.skip = 0;
    }
    let last = false;
    if (part.length >= this.left) {
      part = part.subarray(0, this.left);
      last = true;
    }
    this.left -= part.length;
    let more: boolean;
    if (slab === null || this.copy) {
      more = this.push(Buffer.from(part));
    } else {
      slab.refs++;
      this.slices.set(part, slab);
      more = this.push(part);
    }
    if (last) this.push(null);
    return more;
  }

  /** The HTTP body ended on the wire. */
  wireEnd(): void {
    this.wireDone = true;
    if (this.left === 0 || this.destroyed) return;
    if (this.left === Infinity) {
      this.left = 0;
      this.push(null);
      return;
    }
    this.fail(new ObjectReadError(`body ended ${this.left} bytes short`, 'ESHORTBODY'));
  }

  fail(err: Error): void {
    if (this.left === 0 || this.destroyed) return;
    this.destroy(this.mapError(err));
  }

  recycle(chunk: Buffer): void {
    const slab = this.slices.get(chunk);
    if (!slab) return;
    this.slices.delete(chunk);
    slab.refs--;
    this.conn.reader.slabs.maybeRelease(slab);
  }

  override _read(): void {
    // Once the body is off the wire the connection may be serving another response already.
    if (!this.wireDone) this.conn.resume();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    // The client went away (or we are done): a connection still in the middle of this body
    // cannot be reused, and must not stay open holding the rest of it.
    if (!this.wireDone) this.conn.abandon(this);
    cb(err);
  }
}

/** The methods sent: GET, and HEAD (whose response has no body, whatever its Content-Length says). */
export type Method = 'GET' | 'HEAD';

type Framing = { kind: 'length'; left: number } | { kind: 'chunked' } | { kind: 'close' };

interface Exchange {
  readonly method: Method;
  readonly plan: (head: ResponseHead) => BodyPlan;
  readonly mapError: BodyErrorMapper;
  readonly resolve: (r: GetResult) => void;
  readonly reject: (err: Error) => void;
  settled: boolean;
  gotBytes: boolean;
  phase: 'head' | 'body';
  headAcc: Buffer | null;
  head?: ResponseHead;
  keepAlive: boolean;
  framing?: Framing;
  body?: ObjectBody;
  collected?: Buffer[];
  collectedBytes: number;
  // chunked decoding
  cstate: 'size' | 'data' | 'crlf' | 'trailer';
  cline: string;
  chunkLeft: number;
}

/** One connection, serving one exchange at a time. */
class Conn {
  readonly sock: Socket;
  private slab: Slab | null = null;
  private off = 0;
  /** The slab the socket's next read goes into (null: the spare buffer). */
  private armed: Slab | null = null;
  private readonly spare = Buffer.allocUnsafeSlow(SPARE_SIZE);
  private ex: Exchange | null = null;
  private paused = false;
  private closed = false;
  private failure: Error | null = null;
  private connected = false;
  private connectTimer: NodeJS.Timeout | undefined;
  /** Exchanges started on this connection. */
  uses = 0;
  /** The last exchange completed on this connection was a HEAD (see the class comment above). */
  private afterHead = false;

  constructor(
    readonly reader: ObjectReader,
    readonly origin: string,
    url: URL,
  ) {
    const onread = { buffer: () => this.buffer(), callback: (n: number) => this.onRead(n) };
    const port = Number(url.port) || (url.protocol === 'https:' ? 443 : 80);
    const host = url.hostname.replace(/^\[|\]$/g, '');
    if (url.protocol === 'https:') {
      // tls.connect takes net.connect's `onread` as well (the user buffer then receives the
      // decrypted bytes), though @types/node does not declare it.
      const { lookup, ca } = reader.opts;
      const options: ConnectionOptions = { host, port, servername: isIP(host) ? undefined : host, ALPNProtocols: ['http/1.1'], ...(lookup ? { lookup } : {}), ...(ca ? { ca } : {}) };
      this.sock = tlsConnect(Object.assign(options, { onread }));
      this.sock.once('secureConnect', () => this.onConnect());
    } else {
      this.sock = netConnect({ host, port, onread, ...(reader.opts.lookup ? { lookup: reader.opts.lookup } : {}) });
      this.sock.once('connect', () => this.onConnect());
    }
    this.sock.setNoDelay(true);
    this.sock.setTimeout(reader.opts.idleTimeoutMs);
    this.connectTimer = setTimeout(() => this.sock.destroy(new ObjectReadError('connect timed out', 'ETIMEDOUT')), reader.opts.connectTimeoutMs);
    this.sock.on('error', (err) => (this.failure ??= err));
    this.sock.on('end', () => this.onEnd());
    this.sock.on('close', () => this.onClose());
    this.sock.on('timeout', () => this.onTimeout());
  }

  get busy(): boolean {
    return this.ex !== null;
  }

  get usable(): boolean {
    return !this.closed && !this.sock.destroyed && this.ex === null;
  }

  private onConnect(): void {
    this.connected = true;
    clearTimeout(this.connectTimer);
  }

  /** Sends a GET or HEAD; resolves with the head (and a body stream) or, for 'collect', the whole body. */
  exchange(method: Method, path: string, host: string, headers: Record<string, string>, plan: (head: ResponseHead) => BodyPlan, mapError: BodyErrorMapper): Promise<GetResult> {
    return new Promise((resolve, reject) => {
      this.uses++;
      this.ex = {
        method,
        plan,
        mapError,
        resolve,
        reject,
        settled: false,
        gotBytes: false,
        phase: 'head',
        headAcc: null,
        keepAlive: false,
        collectedBytes: 0,
        cstate: 'size',
        cline: '',
        chunkLeft: 0,
      };
      if (this.uses > 1) this.sock.ref();
      this.sock.setTimeout(this.reader.opts.headTimeoutMs ?? this.reader.opts.idleTimeoutMs);
      let req = `${method} ${path} HTTP/1.1\r\nhost: ${host}\r\n`;
      if (!('user-agent' in headers)) req += 'user-agent: pullthrough\r\n';
      for (const [k, v] of Object.entries(headers)) req += `${k}: ${v}\r\n`;
      this.sock.write(req + '\r\n');
    });
  }

  /** The buffer the socket reads into next (called by net after every read, and once at the start). */
  private buffer(): Buffer {
    const ex = this.ex;
    if (ex && (ex.phase === 'head' || (ex.body !== undefined && !ex.body.satisfied))) {
      if (this.slab === null || this.slab.buf.length - this.off < MIN_ROOM) {
        this.retire();
        this.slab = this.reader.slabs.take();
        this.off = 0;
      }
      this.armed = this.slab;
      return this.slab.buf.subarray(this.off);
    }
    // Nothing to read into a slab: the one read into so far is no longer the socket's target.
    this.armed = null;
    this.retire();
    return this.spare;
  }

  private retire(): void {
    const s = this.slab;
    if (!s) return;
    this.slab = null;
    s.current = false;
    this.reader.slabs.maybeRelease(s);
  }

  /** @returns false to stop reading (backpressure) */
  private onRead(n: number): boolean {
    let data: Buffer;
    const slab = this.armed;
    if (slab) {
      data = slab.buf.subarray(this.off, this.off + n);
      this.off += n;
    } else {
      data = this.spare.subarray(0, n);
    }
    const ex = this.ex;
    if (!ex) {
      // Bytes on an idle connection: nothing was asked for; never trust it again.
      this.sock.destroy();
      return false;
    }
    ex.gotBytes = true;
    let more = true;
    try {
      more = this.consume(ex, data, slab);
    } catch (err) {
      this.sock.destroy(err as Error);
      return false;
    }
    // Done: an idle connection keeps reading, so a close (or stray bytes) is noticed.
    if (this.ex !== ex) return true;
    if (ex.body?.satisfied) {
      // All that was asked for is in (s3rver sends the whole object for `bytes=0-0`): the rest
      // of this body is not wanted, and the connection is not reusable without reading it.
      this.sock.destroy();
      return false;
    }
    if (!more) this.paused = true;
    return more;
  }

  private consume(ex: Exchange, data: Buffer, slab: Slab | null): boolean {
    if (ex.phase === 'head') {
      let buf = data;
      let inSlab = slab;
      if (ex.headAcc) {
        buf = Buffer.concat([ex.headAcc, data]);
        inSlab = null;
      }
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) {
        if (buf.length > MAX_HEAD) throw new ObjectReadError('response head too large', 'EPROTO');
        // `data` is in a slab or the spare buffer, both read into again: keep a copy.
        ex.headAcc = ex.headAcc ? buf : Buffer.from(data);
        return true;
      }
      ex.headAcc = null;
      const head = parseHead(buf.subarray(0, end).toString('latin1'));
      const rest = buf.subarray(end + 4);
      if (head.status >= 100 && head.status < 200) {
        // 100 Continue and friends: the real head follows.
        return rest.length ? this.consume(ex, rest, inSlab) : true;
      }
      this.startBody(ex, head, rest.length);
      if (this.ex !== ex) return true; // no body, done
      return rest.length ? this.consumeBody(ex, rest, inSlab) : true;
    }
    return this.consumeBody(ex, data, slab);
  }

  /** `extra`: bytes that came after the head in the same read. */
  private startBody(ex: Exchange, head: ResponseHead, extra: number): void {
    ex.head = head;
    ex.phase = 'body';
    if (this.reader.opts.headTimeoutMs !== undefined) this.sock.setTimeout(this.reader.opts.idleTimeoutMs);
    const h = head.headers;
    const conn = (h['connection'] ?? '').toLowerCase();
    ex.keepAlive = !/\bclose\b/.test(conn);
    const te = (h['transfer-encoding'] ?? '').toLowerCase();
    const cl = h['content-length'];
    if (ex.method === 'HEAD') {
      ex.framing = { kind: 'length', left: 0 };
    } else if (te !== '') {
      if (!/(^|,)\s*chunked\s*$/.test(te)) throw new ObjectReadError(`unsupported transfer-encoding ${te.slice(0, 50)}`, 'EPROTO');
      ex.framing = { kind: 'chunked' };
      if (cl !== undefined) ex.keepAlive = false;
    } else if (cl !== undefined) {
      if (!/^\d{1,15}$/.test(cl)) throw new ObjectReadError('bad content-length', 'EPROTO');
      ex.framing = { kind: 'length', left: Number(cl) };
    } else if (head.status === 204 || head.status === 304) {
      ex.framing = { kind: 'length', left: 0 };
    } else {
      ex.framing = { kind: 'close' };
      ex.keepAlive = false;
    }
    const plan = ex.plan(head);
    if (plan === 'collect') {
      ex.collected = [];
    } else {
      const small = ex.framing.kind === 'length' ? ex.framing.left <= COPY_BELOW : plan.take <= COPY_BELOW;
      ex.body = new ObjectBody(this, plan.skip, plan.take, small, ex.mapError);
      ex.settled = true;
      ex.resolve({ head, body: ex.body });
    }
    if (ex.framing.kind === 'length' && ex.framing.left === 0) {
      // Bytes after a response without a body (a HEAD's body sent anyway): do not trust the connection.
      if (extra > 0) ex.keepAlive = false;
      this.wireEnd(ex);
    }
  }

  private consumeBody(ex: Exchange, data: Buffer, slab: Slab | null): boolean {
    const f = ex.framing!;
    if (f.kind === 'length') {
      const n = Math.min(f.left, data.length);
      f.left -= n;
      const more = this.deliver(ex, data.subarray(0, n), slab);
      if (n < data.length) ex.keepAlive = false; // more than announced: do not trust the connection
      if (f.left === 0) this.wireEnd(ex);
      return more;
    }
    if (f.kind === 'close') return this.deliver(ex, data, slab);
    // chunked
    let more = true;
    let i = 0;
    while (i < data.length && this.ex === ex) {
      if (ex.cstate === 'data') {
        const n = Math.min(ex.chunkLeft, data.length - i);
        more = this.deliver(ex, data.subarray(i, i + n), slab) && more;
        i += n;
        ex.chunkLeft -= n;
        if (ex.chunkLeft === 0) ex.cstate = 'crlf';
        continue;
      }
      const nl = data.indexOf(10, i);
      const stop = nl < 0 ? data.length : nl;
      ex.cline += data.toString('latin1', i, stop);
      if (ex.cline.length > 4096) throw new ObjectReadError('chunk header too long', 'EPROTO');
      i = stop;
      if (nl < 0) break;
      i++;
      const line = ex.cline.replace(/\r$/, '');
      ex.cline = '';
      if (ex.cstate === 'size') {
        const m = /^([0-9a-fA-F]{1,12})\s*(;.*)?$/.exec(line);
        if (!m) throw new ObjectReadError('bad chunk size', 'EPROTO');
        ex.chunkLeft = parseInt(m[1]!, 16);
        ex.cstate = ex.chunkLeft === 0 ? 'trailer' : 'data';
      } else if (ex.cstate === 'crlf') {
        if (line !== '') throw new ObjectReadError('missing CRLF after chunk', 'EPROTO');
        ex.cstate = 'size';
      } else if (line === '') {
        // trailer section ended
        if (i < data.length) ex.keepAlive = false;
        this.wireEnd(ex);
      }
    }
    return more;
  }

  private deliver(ex: Exchange, part: Buffer, slab: Slab | null): boolean {
    if (part.length === 0) return true;
    if (ex.body) return ex.body.deliver(part, slab);
    if (ex.collectedBytes < MAX_COLLECT) {
      const keep = part.subarray(0, MAX_COLLECT - ex.collectedBytes);
      ex.collected!.push(Buffer.from(keep));
      ex.collectedBytes += keep.length;
    }
    return true;
  }

  /** The response is complete on the wire. */
  private wireEnd(ex: Exchange): void {
    this.ex = null;
    this.afterHead = ex.method === 'HEAD';
    if (ex.body) {
      ex.body.wireEnd();
    } else if (!ex.settled) {
      ex.settled = true;
      ex.resolve({ head: ex.head!, text: Buffer.concat(ex.collected ?? []).toString('utf8') });
    }
    if (ex.keepAlive) this.reader.idle(this);
    else this.sock.destroy();
  }

  /** Reading was held back for the consumer; it wants more now. */
  resume(): void {
    if (!this.paused || this.closed) return;
    this.paused = false;
    // Inactivity while paused was the consumer's, not the server's: count afresh.
    this.sock.setTimeout(this.reader.opts.idleTimeoutMs);
    this.sock.resume();
  }

  /** The body's consumer is gone before the body ended. */
  abandon(body: ObjectBody): void {
    if (this.ex?.body === body) this.sock.destroy();
  }

  /** Leaves the pool (idle timeout, or the reader closes), or ends an exchange with `err`. */
  destroy(err?: Error): void {
    this.sock.destroy(err);
  }

  /** Between exchanges, in the pool. */
  parkIdle(): void {
    this.paused = false;
    this.sock.setTimeout(this.reader.opts.keepAliveMs ?? 4000);
    this.sock.unref();
  }

  private onEnd(): void {
    const ex = this.ex;
    if (ex?.phase === 'body' && ex.framing?.kind === 'close') this.wireEnd(ex);
  }

  private onTimeout(): void {
    if (this.ex === null) {
      this.sock.destroy();
      return;
    }
    // Held back by a slow consumer: not the server's fault (re-armed on resume).
    if (this.paused) return;
    const what = !this.connected ? 'connect timed out' : this.ex.phase === 'head' ? 'timed out waiting for response headers' : 'timed out waiting for the response body';
    this.sock.destroy(new ObjectReadError(what, 'ETIMEDOUT'));
  }

  private onClose(): void {
    this.closed = true;
    clearTimeout(this.connectTimer);
    this.armed = null;
    this.retire();
    this.reader.closed(this);
    const ex = this.ex;
    this.ex = null;
    if (!ex) return;
    const err = this.failure ?? new ObjectReadError('connection closed before the response ended', 'ECONNRESET');
    if (!ex.settled) {
      ex.settled = true;
      // Nothing came back on a reused connection (the server had closed it), or what came in
      // place of the head may be the body a server sent after a HEAD: worth a new connection.
      const stale = this.uses > 1 && (!ex.gotBytes || (this.afterHead && ex.phase === 'head'));
      ex.reject(stale ? Object.assign(err, { staleConnection: true }) : err);
    } else {
      ex.body?.fail(err);
    }
  }
}

function parseHead(text: string): ResponseHead {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.([01]) (\d{3})(?: |$)/.exec(lines[0] ?? '');
  if (!m) throw new ObjectReadError('not an HTTP/1.x response', 'EPROTO');
  const headers: Record<string, string> = {};
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const c = line.indexOf(':');
    if (c <= 0) throw new ObjectReadError('bad header line', 'EPROTO');
    const name = line.slice(0, c).trim().toLowerCase();
    const value = line.slice(c + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  // HTTP/1.0 closes unless it says otherwise.
  if (m[1] === '0' && !/keep-alive/i.test(headers['connection'] ?? '')) headers['connection'] = 'close';
  return { status: Number(m[2]), headers };
}

/** GETs (and HEADs) over a small keep-alive pool per origin. */
export class ObjectReader {
  readonly slabs: SlabPool;
  private readonly idleConns = new Map<string, Conn[]>();
  private readonly all = new Set<Conn>();
  private shut = false;

  constructor(readonly opts: ObjectReaderOptions) {
    this.slabs = new SlabPool(opts.slabSize ?? SLAB_SIZE);
  }

  /**
   * GET (or `method`) `url` with `headers`; `plan` decides from the head what becomes of the body.
   * A reused connection the server had already closed is replaced transparently (as is one whose
   * previous HEAD answer turns out to have had a body after all); any other failure
   * (ObjectReadError, or a socket error with its code) is the caller's to retry. `signal` aborts
   * the exchange, the body included, with the signal's reason.
   */
  async get(url: URL, headers: Record<string, string>, plan: (head: ResponseHead) => BodyPlan, opts: { mapError?: BodyErrorMapper; signal?: AbortSignal; method?: Method } = {}): Promise<GetResult> {
    if (this.shut) throw new ObjectReadError('reader closed', 'ECLOSED');
    const { mapError = (e: Error) => e, signal, method = 'GET' } = opts;
    signal?.throwIfAborted();
    const origin = `${url.protocol}//${url.host}`;
    const path = url.pathname + url.search;
    let conn: Conn | undefined;
    let body: ObjectBody | undefined;
    const onAbort = (): void => {
      const why = signal!.reason instanceof Error ? signal!.reason : new ObjectReadError('aborted', 'ABORT_ERR');
      if (body) body.destroy(why);
      else conn?.destroy(why);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for (;;) {
        const reused = this.takeIdle(origin);
        conn = reused ?? this.open(origin, url);
        try {
          const res = await conn.exchange(method, path, url.host, headers, plan, mapError);
          body = res.body;
          // The signal is let go with the body (or at once when there is none to abort).
          if (body) body.once('close', () => signal?.removeEventListener('abort', onAbort));
          else signal?.removeEventListener('abort', onAbort);
          return res;
        } catch (err) {
          if (reused && !signal?.aborted && (err as { staleConnection?: boolean }).staleConnection) continue;
          throw err;
        }
      }
    } catch (err) {
      signal?.removeEventListener('abort', onAbort);
      throw err;
    }
  }

  /** Connections serving a response now, and kept for reuse. */
  stats(): { active: number; idle: number } {
    let idle = 0;
    for (const list of this.idleConns.values()) idle += list.length;
    let active = 0;
    for (const c of this.all) if (c.busy) active++;
    return { active, idle };
  }

  /** Closes every connection; later GETs fail. */
  close(): void {
    this.shut = true;
    for (const c of this.all) c.destroy();
    this.idleConns.clear();
  }

  private open(origin: string, url: URL): Conn {
    const c = new Conn(this, origin, url);
    this.all.add(c);
    return c;
  }

  private takeIdle(origin: string): Conn | undefined {
    const list = this.idleConns.get(origin);
    while (list && list.length) {
      const c = list.pop()!;
      if (c.usable) return c;
    }
    return undefined;
  }

  /** @internal a connection whose exchange completed and that may be reused. */
  idle(c: Conn): void {
    if (this.shut) return c.destroy();
    let list = this.idleConns.get(c.origin);
    if (!list) this.idleConns.set(c.origin, (list = []));
    if (list.length >= MAX_IDLE_PER_ORIGIN) return c.destroy();
    c.parkIdle();
    list.push(c);
  }

  /** @internal */
  closed(c: Conn): void {
    this.all.delete(c);
    const list = this.idleConns.get(c.origin);
    if (!list) return;
    const i = list.indexOf(c);
    if (i >= 0) list.splice(i, 1);
  }
}
