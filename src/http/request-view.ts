import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { RequestState } from './state.js';

/**
 * One request as the access checks, the audit log and the pull routes read it. koa's Context has
 * these members with the same meaning, so a koa handler passes its `ctx`; the front passes a
 * {@link LeanRequest}, which costs one small object instead of koa's four per request.
 */
export interface RequestView {
  readonly method: string;
  /** The path as the client sent it: no query string, not percent-decoded. */
  readonly path: string;
  readonly protocol: string;
  readonly socket: Socket;
  /** The client's address ('' once the socket is gone). */
  readonly ip: string;
  /** A request header's value, '' when absent (as koa's `ctx.get`). */
  get(name: string): string;
  readonly state: RequestState;
}

/** Where the front leaves a request's state for the koa app it hands the request to. */
const STATE = Symbol('pullthrough.requestState');

type WithState = IncomingMessage & { [STATE]?: RequestState };

export function attachState(req: IncomingMessage, state: RequestState): void {
  (req as WithState)[STATE] = state;
}

/** The state the front created for `req`; a fresh one if the request did not come through it. */
export function stateOf(req: IncomingMessage): RequestState {
  return (req as WithState)[STATE] ?? { kind: 'other', bytes: 0 };
}

/** Path and query string of a request target (origin form, or absolute form as proxies receive it). */
export function splitTarget(url: string): { path: string; query: string } {
  if (url.startsWith('/')) {
    const q = url.indexOf('?');
    return q < 0 ? { path: url, query: '' } : { path: url.slice(0, q), query: url.slice(q + 1) };
  }
  try {
    const u = new URL(url);
    return { path: u.pathname, query: u.search.slice(1) };
  } catch {
    // `*` (OPTIONS) or garbage: no route has such a path, so it is answered 404.
    return { path: url, query: '' };
  }
}

export class LeanRequest implements RequestView {
  readonly method: string;
  readonly ip: string;

  constructor(
    readonly req: IncomingMessage,
    readonly path: string,
    readonly state: RequestState,
  ) {
    this.method = req.method ?? 'GET';
    // Read now: by 'close' the socket may be gone.
    this.ip = req.socket?.remoteAddress ?? '';
  }

  get socket(): Socket {
    return this.req.socket;
  }

  get protocol(): string {
    return (this.req.socket as TLSSocket).encrypted ? 'https' : 'http';
  }

  get(name: string): string {
    const v = this.req.headers[name.toLowerCase()];
    if (v === undefined) return '';
    return Array.isArray(v) ? v.join(', ') : v;
  }
}
