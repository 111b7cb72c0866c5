import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { parseDigest } from '../oci/digest.js';
import { parseReadReference } from '../oci/reference.js';
import { acceptedTypes } from '../oci/media-types.js';
import type { PullThroughCache } from '../cache/pull-through.js';
import { recyclerOf } from '../util/reusable-buffers.js';
import { fileSpanOf } from '../util/file-span.js';
import { sendFileBody, unsupportedBySendfile } from '../net/send-file.js';
import { OciError } from '../oci/errors.js';
import { parseRange } from './range.js';
import type { DoorAuth } from './door-auth.js';
import type { RequestView } from './request-view.js';
import { allowedTarget, BASE, BLOB, MANIFEST, STALE_WARNING, UPLOAD, type TargetDeps } from './v2-paths.js';

/**
 * The requests a pull is made of — GET and HEAD of `/v2/`, of manifests and of blobs — answered
 * straight on Node's response, without koa: on a new TLS connection koa's per-request objects
 * and middleware chain cost more than the request itself (docs/performance.md). Every other /v2
 * request (writes, tags, referrers, the token relay) goes through koa's routes in v2-routes.ts.
 */
export interface PullDeps extends TargetDeps {
  readonly cache: PullThroughCache;
  /** The upstream's challenge on `/v2/` on doors that stand in for a registry. */
  readonly doorAuth?: DoorAuth;
}

export type PullRoute = { kind: 'base' } | { kind: 'manifest' | 'blob'; name: string; ref: string };

/** The pull route for this method and path, or undefined when koa's routes answer it. */
export function matchPull(method: string, path: string): PullRoute | undefined {
  if (method !== 'GET' && method !== 'HEAD') return undefined;
  if (BASE.test(path)) return { kind: 'base' };
  // `…/blobs/uploads` would match BLOB; it is the upload API (relayed or refused), never a pull.
  if (UPLOAD.test(path)) return undefined;
  let m = MANIFEST.exec(path);
  if (m) return { kind: 'manifest', name: m[1]!, ref: m[2]! };
  m = BLOB.exec(path);
  if (m) return { kind: 'blob', name: m[1]!, ref: m[2]! };
  return undefined;
}

/**
 * Answers `route` on `res`. Nothing is written before the answer is known, so a failure thrown
 * here leaves the response untouched for the caller's error answer.
 * @param ns the `ns` query parameter, if any
 */
export async function servePull(view: RequestView, res: ServerResponse, route: PullRoute, ns: string | undefined, deps: PullDeps): Promise<void> {
  const state = view.state;
  state.kind = route.kind;
  const head = view.method === 'HEAD';
  if (route.kind === 'base') {
    const host = view.get('host');
    const registry = deps.doorAuth ? deps.index.lookup(host || undefined) : undefined;
    const challenge = registry ? await deps.doorAuth!.challenge(registry, host) : null;
    if (challenge) {
      state.registry = registry!.name;
      throw new OciError('UNAUTHORIZED', 'authentication required', undefined, { 'www-authenticate': challenge });
    }
    res.writeHead(200, { 'docker-distribution-api-version': 'registry/2.0', 'content-type': 'application/json; charset=utf-8', 'content-length': 2 });
    res.end(head ? undefined : '{}');
    return;
  }
  const t = allowedTarget(view, deps, ns, route.name);
  if (route.kind === 'manifest') {
    const ref = parseReadReference(route.ref);
    const m = await deps.cache.manifest(t, ref, acceptedTypes(view.get('accept') || undefined), head);
    state.cache = m.cache;
    state.staleReason = m.staleReason;
    const headers: OutgoingHttpHeaders = { 'docker-content-digest': m.digest, etag: `"${m.digest}"`, 'content-type': m.mediaType, 'content-length': m.size };
    if (m.cache === 'stale') headers.warning = STALE_WARNING;
    if (head) {
      res.writeHead(200, headers);
      res.end();
      return;
    }
    // A GET is always answered with the bytes; only an upstream HEAD leaves them out.
    if (!m.body) throw new Error(`manifest ${m.digest} came without its body for a GET`);
    headers['content-length'] = m.body.length;
    state.bytes = m.body.length;
    res.writeHead(200, headers);
    res.end(m.body);
    return;
  }
  const digest = parseDigest(route.ref).value;
  const blob = await deps.cache.blob(t, digest, head);
  state.cache = blob.cache;
  const headers: OutgoingHttpHeaders = {
    'docker-content-digest': digest,
    etag: `"${digest}"`,
    'accept-ranges': 'bytes',
    'cache-control': 'max-age=31536000',
    'content-type': 'application/octet-stream',
  };
  if (head) {
    if (blob.size !== undefined) headers['content-length'] = blob.size;
    res.writeHead(200, headers);
    res.end();
    return;
  }
  const range = parseRange(view.get('range') || undefined, blob.size);
  const location = await blob.redirect?.();
  if (location) {
    // The object store serves the bytes (and the Range) itself; pullthrough stays off the data path.
    state.cache = 'hit';
    const text = 'Temporary Redirect';
    res.writeHead(307, { ...headers, location, 'content-type': 'text/plain; charset=utf-8', 'content-length': text.length });
    res.end(text);
    return;
  }
  const stream = await blob.open(range);
  if (range) {
    headers['content-range'] = `bytes ${range.start}-${range.end}/${blob.size}`;
    headers['content-length'] = range.end - range.start + 1;
  } else if (blob.size !== undefined) {
    headers['content-length'] = blob.size;
  }
  res.writeHead(range ? 206 : 200, headers);
  sendBody(view, res, stream, headers['content-length'] as number | undefined);
}

/**
 * Sends a blob's body: by sendfile when it is a file in the cache not read yet and the socket is
 * plain TCP (net/send-file.ts: no copy on the server's side, as nginx serves it), else streamed.
 * @param length the bytes promised in content-length, when known
 */
function sendBody(view: RequestView, res: ServerResponse, stream: Readable, length: number | undefined): void {
  const span = fileSpanOf(stream);
  if (span && length !== undefined && !res.destroyed && !view.socket.destroyed) {
    const started = sendFileBody(res, view.socket, span, length, (sent, err) => {
      view.state.bytes += sent;
      view.state.sendfileBytes = sent;
      if (err && unsupportedBySendfile(err, sent)) return streamBody(view, res, stream);
      stream.destroy();
      if (err) res.destroy();
      else res.end();
    });
    if (started) return;
  }
  streamBody(view, res, stream);
}

/**
 * Sends a stream as the body. Each chunk's write callback (the bytes are in the kernel) hands the
 * buffer back to streams that reuse them, so a big blob is served from a few buffers instead of
 * one fresh allocation per read (page faults, and garbage the GC only collects after tens of MB).
 * A failing stream aborts the connection rather than ending it cleanly; a client that goes away
 * destroys the stream.
 */
function streamBody(view: RequestView, res: ServerResponse, stream: Readable): void {
  // The client may have gone while the blob was opened: 'close' has fired already.
  if (res.destroyed || view.socket.destroyed) {
    stream.destroy();
    return;
  }
  const recycle = recyclerOf(stream);
  const state = view.state;
  // 'data' events rather than read() or async iteration: read() concatenates whatever chunks are
  // buffered into a new buffer (a copy of every byte, and an unrecyclable buffer).
  stream.on('data', (chunk: Buffer) => {
    state.bytes += chunk.length;
    if (!res.write(chunk, recycle ? () => recycle(chunk) : undefined)) stream.pause();
  });
  res.on('drain', () => stream.resume());
  stream.once('end', () => res.end());
  stream.once('error', () => res.destroy());
  res.once('close', () => stream.destroy());
}
