/**
 * A tiny registry on a real socket for faults the real one cannot produce: wrong bytes for a
 * digest, a connection that dies mid-blob, a blob that stalls until released, 429/503 answers,
 * bodies that are no manifest (any body with any Content-Type: `addManifest`), and tag lists in
 * the order and pages a test scripts (`setTagPages`).
 * Everything else about pulling is tested against Debian's docker-registry.
 */
import { createServer, type Server, type IncomingMessage, type ServerResponse } from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';

export type BlobBehaviour =
  | { kind: 'ok' }
  | { kind: 'corrupt' } // same length, different bytes
  | { kind: 'truncate'; after: number } // sends `after` bytes, then destroys the socket
  | { kind: 'stall'; after: number; release: Promise<void> } // sends `after` bytes, waits, then the rest
  | { kind: 'trickle'; bytes: number; everyMs: number } // sends `bytes` at a time, `everyMs` apart
  | { kind: 'status'; status: number };

/** One page of a scripted tag list: its tags as sent, and the `Link` header to send with it. */
export interface TagListPage {
  readonly tags: readonly string[] | null;
  /** The whole `Link` header value, e.g. `</v2/r/tags/list?page=1>; rel="next"`; none when absent. */
  readonly link?: string;
  /** Sent instead of the JSON document (a page that is no tag list). */
  readonly rawBody?: string;
}

export interface FaultUpstream {
  readonly url: string;
  /** Adds a blob; returns its digest. */
  addBlob(data: Buffer, behaviour?: BlobBehaviour): string;
  setBlobBehaviour(digest: string, behaviour: BlobBehaviour): void;
  /**
   * Serves `manifest` for repo:tag (and by digest) with `mediaType` as its Content-Type, whatever
   * the bytes are (so also bodies that are no manifest); returns its digest.
   */
  addManifest(repo: string, tag: string, manifest: Buffer, mediaType: string): string;
  /**
   * Scripts `GET /v2/<repo>/tags/list`: page 0 without a query, page k for `?page=k`; `n` and
   * `last` are ignored, as some upstreams do. Pages name their own Link headers.
   */
  setTagPages(repo: string, pages: readonly TagListPage[]): void;
  /** Every tag-list request answers `status` until set back to undefined. */
  tagListStatus: number | undefined;
  /** Every manifest request answers `status` until set back to undefined; 0 = never answer. */
  manifestStatus: number | undefined;
  /** When set, manifest GETs (not HEADs) are answered this long after they arrive: a slow registry. */
  manifestDelayMs: number | undefined;
  /** When set, /v2 requests without this Authorization header get 401 with a Basic challenge. */
  requireAuthorization: string | undefined;
  /** When set, blob GETs are redirected (307) to `${redirectBlobsTo}/cdn/<digest>`, served by this server too. */
  redirectBlobsTo: string | undefined;
  /**
   * A scripted answer for any request (before everything else): return a status and headers to
   * send them with an empty body, or undefined to answer as usual. For hostile upstreams
   * (redirects and challenges naming private addresses), and with `delayMs` for an upstream that
   * answers a write only that long after it arrived (a slow registry finishing an upload).
   */
  respond: ((method: string, path: string) => { status: number; headers: Record<string, string>; delayMs?: number } | undefined) | undefined;
  /** Requests seen, as `METHOD path`. */
  readonly log: string[];
  /** Requests seen with their headers. */
  readonly seen: Array<{ method: string; path: string; url: string; headers: Record<string, string | string[] | undefined> }>;
  count(prefix: string): number;
  close(): Promise<void>;
}

/** Starts a fault upstream on `host` (a second loopback address makes a different host, e.g. a CDN). */
export async function startFaultUpstream(host = '127.0.0.1'): Promise<FaultUpstream> {
  const blobs = new Map<string, { data: Buffer; behaviour: BlobBehaviour }>();
  const manifests = new Map<string, { body: Buffer; mediaType: string; digest: string }>();
  const tagPages = new Map<string, readonly TagListPage[]>();
  const log: string[] = [];
  const seen: FaultUpstream['seen'] = [];
  const state = {
    manifestStatus: undefined as number | undefined,
    manifestDelayMs: undefined as number | undefined,
    tagListStatus: undefined as number | undefined,
    requireAuthorization: undefined as string | undefined,
    redirectBlobsTo: undefined as string | undefined,
    respond: undefined as FaultUpstream['respond'],
  };

  const error = (res: ServerResponse, status: number, code: string): void => {
    res.writeHead(status, { 'content-type': 'application/json', ...(status === 429 ? { 'retry-after': '30' } : {}) });
    res.end(JSON.stringify({ errors: [{ code, message: `fault upstream says ${code}` }] }));
  };

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? '').split('?')[0]!;
    log.push(`${req.method} ${path}`);
    seen.push({ method: req.method ?? '', path, url: req.url ?? '', headers: req.headers });
    const scripted = state.respond?.(req.method ?? '', path);
    if (scripted) {
      req.resume();
      const answer = (): void => void res.writeHead(scripted.status, { 'content-length': '0', ...scripted.headers }).end();
      if (scripted.delayMs) setTimeout(answer, scripted.delayMs);
      else answer();
      return;
    }
    const cdn = /^\/cdn\/(sha256:[a-f0-9]{64})$/.exec(path);
    if (cdn) {
      const b = blobs.get(cdn[1]!);
      if (!b) return error(res, 404, 'BLOB_UNKNOWN');
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': b.data.length }).end(b.data);
      return;
    }
    if (state.requireAuthorization && req.headers.authorization !== state.requireAuthorization) {
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Basic realm="fault"' });
      res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'fault upstream wants credentials' }] }));
      return;
    }
    if (path === '/v2/') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      return;
    }
    const list = /^\/v2\/(.+)\/tags\/list$/.exec(path);
    if (list) {
      if (state.tagListStatus) return error(res, state.tagListStatus, state.tagListStatus === 429 ? 'TOOMANYREQUESTS' : 'UNAVAILABLE');
      const pages = tagPages.get(list[1]!);
      if (!pages) return error(res, 404, 'NAME_UNKNOWN');
      const k = Number(new URL(req.url ?? '', 'http://x').searchParams.get('page') ?? '0');
      const p = pages[k];
      if (!p) return error(res, 404, 'NAME_UNKNOWN');
      const body = p.rawBody ?? JSON.stringify({ name: list[1], tags: p.tags });
      res.writeHead(200, { 'content-type': 'application/json', ...(p.link ? { link: p.link } : {}) }).end(body);
      return;
    }
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(path);
    if (!m) return error(res, 404, 'NAME_UNKNOWN');
    const [, repo, kind, ref] = m as unknown as [string, string, string, string];
    if (kind === 'manifests') {
      if (state.manifestStatus === 0) return; // never answers: a hung upstream
      if (state.manifestStatus) {
        const code = state.manifestStatus === 429 ? 'TOOMANYREQUESTS' : state.manifestStatus === 403 ? 'DENIED' : 'UNAVAILABLE';
        return error(res, state.manifestStatus, code);
      }
      const man = manifests.get(`${repo}:${ref}`) ?? manifests.get(`${repo}@${ref}`);
      if (!man) return error(res, 404, 'MANIFEST_UNKNOWN');
      // Docker Hub's rate-limit headers, so the gauge has something to report.
      const answer = (): void => {
        res.writeHead(200, { 'content-type': man.mediaType, 'docker-content-digest': man.digest, 'content-length': man.body.length, 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '76;w=21600' });
        res.end(req.method === 'HEAD' ? undefined : man.body);
      };
      if (state.manifestDelayMs && req.method === 'GET') setTimeout(answer, state.manifestDelayMs);
      else answer();
      return;
    }
    const blob = blobs.get(ref);
    if (!blob) return error(res, 404, 'BLOB_UNKNOWN');
    const b = blob.behaviour;
    if (b.kind === 'status') return error(res, b.status, 'UNAVAILABLE');
    if (state.redirectBlobsTo && req.method === 'GET') {
      res.writeHead(307, { location: `${state.redirectBlobsTo}/cdn/${ref}` }).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': blob.data.length, 'docker-content-digest': ref });
    if (req.method === 'HEAD') return void res.end();
    switch (b.kind) {
      case 'ok':
        res.end(blob.data);
        return;
      case 'corrupt': {
        const bad = Buffer.from(blob.data);
        bad[bad.length - 1] ^= 0xff;
        res.end(bad);
        return;
      }
      case 'truncate':
        res.write(blob.data.subarray(0, b.after), () => setTimeout(() => res.socket?.destroy(), 50));
        return;
      case 'stall':
        res.write(blob.data.subarray(0, b.after));
        void b.release.then(() => res.end(blob.data.subarray(b.after)));
        return;
      case 'trickle': {
        let off = 0;
        const next = (): void => {
          if (res.destroyed) return;
          const part = blob.data.subarray(off, off + b.bytes);
          off += part.length;
          if (off >= blob.data.length) return void res.end(part);
          res.write(part);
          setTimeout(next, b.everyMs);
        };
        next();
        return;
      }
    }
  };

  const server: Server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, host, r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host}:${port}`,
    log,
    seen,
    get requireAuthorization() {
      return state.requireAuthorization;
    },
    set requireAuthorization(v) {
      state.requireAuthorization = v;
    },
    get redirectBlobsTo() {
      return state.redirectBlobsTo;
    },
    set redirectBlobsTo(v) {
      state.redirectBlobsTo = v;
    },
    get respond() {
      return state.respond;
    },
    set respond(v) {
      state.respond = v;
    },
    get tagListStatus() {
      return state.tagListStatus;
    },
    set tagListStatus(v) {
      state.tagListStatus = v;
    },
    setTagPages(repo, pages) {
      tagPages.set(repo, pages);
    },
    get manifestStatus() {
      return state.manifestStatus;
    },
    set manifestStatus(v) {
      state.manifestStatus = v;
    },
    get manifestDelayMs() {
      return state.manifestDelayMs;
    },
    set manifestDelayMs(v) {
      state.manifestDelayMs = v;
    },
    addBlob(data, behaviour = { kind: 'ok' }) {
      const digest = 'sha256:' + createHash('sha256').update(data).digest('hex');
      blobs.set(digest, { data, behaviour });
      return digest;
    },
    setBlobBehaviour(digest, behaviour) {
      blobs.get(digest)!.behaviour = behaviour;
    },
    addManifest(repo, tag, body, mediaType) {
      const digest = 'sha256:' + createHash('sha256').update(body).digest('hex');
      const entry = { body, mediaType, digest };
      manifests.set(`${repo}:${tag}`, entry);
      manifests.set(`${repo}@${digest}`, entry);
      return digest;
    },
    count(prefix) {
      return log.filter((l) => l.startsWith(prefix)).length;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** Deterministic-enough random bytes for a test blob. */
export function randomBlob(size: number): Buffer {
  return randomBytes(size);
}
