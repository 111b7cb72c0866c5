/**
 * A paging front for a real registry. distribution 2.8.2 (Debian's docker-registry) ignores `n`
 * and `last` on `/v2/<name>/tags/list` and never sends a `Link` header, but Docker Hub, ghcr.io
 * and distribution 3 page their tag lists. This server forwards every request to the registry
 * unchanged (auth challenges, tokens, blobs, manifests, errors), except tag lists: it fetches the
 * registry's whole list with the client's own headers, sorts it and answers one page of it with
 * the spec's `Link: <…?n=N&last=T>; rel="next"`, so the tags themselves stay the real registry's.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface TagPager {
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  /** Page size when a request names no `n`. */
  pageSize: number;
  /**
   * How the next page is linked: a path (as distribution 3 does), an absolute URL of this server,
   * or an absolute URL on another origin (which a client must refuse to follow).
   */
  linkStyle: 'path' | 'absolute' | { origin: string };
  /** Tag list requests answered, with their query. */
  readonly pages: string[];
  close(): Promise<void>;
}

/** Starts a pager in front of the plain-HTTP registry at `registryUrl`. */
export async function startTagPager(registryUrl: string): Promise<TagPager> {
  const target = new URL(registryUrl);
  const pages: string[] = [];
  const state = { pageSize: 2, linkStyle: 'path' as TagPager['linkStyle'] };
  let own = '';

  const forward = (req: IncomingMessage, res: ServerResponse, path: string, onAnswer?: (up: IncomingMessage, body: Buffer) => void): void => {
    const headers = { ...req.headers, host: target.host };
    const up = httpRequest({ host: target.hostname, port: target.port, method: req.method, path, headers }, (answer) => {
      if (!onAnswer) {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        return;
      }
      const chunks: Buffer[] = [];
      answer.on('data', (c: Buffer) => chunks.push(c));
      answer.on('end', () => onAnswer(answer, Buffer.concat(chunks)));
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  };

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://pager');
    const m = /^\/v2\/(.+)\/tags\/list$/.exec(url.pathname);
    if (!m || req.method !== 'GET') return forward(req, res, req.url ?? '/');
    pages.push(url.search);
    forward(req, res, url.pathname, (answer, body) => {
      if (answer.statusCode !== 200) {
        res.writeHead(answer.statusCode ?? 502, answer.headers).end(body);
        return;
      }
      const doc = JSON.parse(body.toString('utf8')) as { name: string; tags: string[] | null };
      const n = url.searchParams.has('n') ? Number(url.searchParams.get('n')) : state.pageSize;
      const last = url.searchParams.get('last');
      const all = [...(doc.tags ?? [])].sort();
      const rest = last === null ? all : all.filter((t) => t > last);
      const page = rest.slice(0, n);
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (rest.length > page.length && page.length > 0) {
        const next = `/v2/${m[1]}/tags/list?${new URLSearchParams({ n: String(n), last: page[page.length - 1]! })}`;
        const s = state.linkStyle;
        headers.link = `<${s === 'path' ? next : s === 'absolute' ? own + next : s.origin + next}>; rel="next"`;
      }
      res.writeHead(200, headers).end(JSON.stringify({ name: doc.name, tags: page }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  own = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: own,
    pages,
    get pageSize() {
      return state.pageSize;
    },
    set pageSize(v) {
      state.pageSize = v;
    },
    get linkStyle() {
      return state.linkStyle;
    },
    set linkStyle(v) {
      state.linkStyle = v;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
