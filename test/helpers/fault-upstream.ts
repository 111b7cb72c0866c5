/**
 * A tiny registry on a real socket for faults the real one cannot produce: wrong bytes for a
 * digest, a connection that dies mid-blob, a blob that stalls until released, 429/503 answers.
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
  | { kind: 'status'; status: number };

export interface FaultUpstream {
  readonly url: string;
  /** Adds a blob; returns its digest. */
  addBlob(data: Buffer, behaviour?: BlobBehaviour): string;
  setBlobBehaviour(digest: string, behaviour: BlobBehaviour): void;
  /** Serves `manifest` for repo:tag (and by digest) with the given media type; returns its digest. */
  addManifest(repo: string, tag: string, manifest: Buffer, mediaType: string): string;
  /** Every manifest request answers `status` until set back to undefined. */
  manifestStatus: number | undefined;
  /** Requests seen, as `METHOD path`. */
  readonly log: string[];
  count(prefix: string): number;
  close(): Promise<void>;
}

export async function startFaultUpstream(): Promise<FaultUpstream> {
  const blobs = new Map<string, { data: Buffer; behaviour: BlobBehaviour }>();
  const manifests = new Map<string, { body: Buffer; mediaType: string; digest: string }>();
  const log: string[] = [];
  const state = { manifestStatus: undefined as number | undefined };

  const error = (res: ServerResponse, status: number, code: string): void => {
    res.writeHead(status, { 'content-type': 'application/json', ...(status === 429 ? { 'retry-after': '30' } : {}) });
    res.end(JSON.stringify({ errors: [{ code, message: `fault upstream says ${code}` }] }));
  };

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? '').split('?')[0]!;
    log.push(`${req.method} ${path}`);
    if (path === '/v2/') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      return;
    }
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(path);
    if (!m) return error(res, 404, 'NAME_UNKNOWN');
    const [, repo, kind, ref] = m as unknown as [string, string, string, string];
    if (kind === 'manifests') {
      if (state.manifestStatus) return error(res, state.manifestStatus, state.manifestStatus === 429 ? 'TOOMANYREQUESTS' : 'UNAVAILABLE');
      const man = manifests.get(`${repo}:${ref}`) ?? manifests.get(`${repo}@${ref}`);
      if (!man) return error(res, 404, 'MANIFEST_UNKNOWN');
      // Docker Hub's rate-limit headers, so the gauge has something to report.
      res.writeHead(200, { 'content-type': man.mediaType, 'docker-content-digest': man.digest, 'content-length': man.body.length, 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '76;w=21600' });
      res.end(req.method === 'HEAD' ? undefined : man.body);
      return;
    }
    const blob = blobs.get(ref);
    if (!blob) return error(res, 404, 'BLOB_UNKNOWN');
    const b = blob.behaviour;
    if (b.kind === 'status') return error(res, b.status, 'UNAVAILABLE');
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
    }
  };

  const server: Server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    log,
    get manifestStatus() {
      return state.manifestStatus;
    },
    set manifestStatus(v) {
      state.manifestStatus = v;
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
