import type { Readable } from 'node:stream';

/** Username/password for an upstream registry or its token service. */
export interface Credentials {
  readonly username: string;
  readonly password: string;
}

export type UpstreamKind = 'manifest' | 'blob' | 'tags' | 'referrers' | 'base' | 'token' | 'push' | 'other';

/** One request to an upstream registry's /v2 API. */
export interface UpstreamRequest {
  readonly method: 'GET' | 'HEAD';
  /** Absolute path on the registry, e.g. `/v2/library/alpine/manifests/3`. */
  readonly path: string;
  /** The repository the request is for (token scope); undefined for `/v2/`. */
  readonly repo?: string;
  readonly kind: UpstreamKind;
  readonly headers?: Readonly<Record<string, string>>;
  /** Credentials to use instead of the configured ones (null: anonymous). */
  readonly credentials?: Credentials | null;
  readonly signal?: AbortSignal;
}

/** An upstream answer. The body must be consumed or destroyed by the caller. */
export interface UpstreamResponse {
  readonly status: number;
  /** Lower-cased header names; the first value of repeated headers. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Readable;
  /** The URL that finally answered (after redirects). */
  readonly url: string;
}

/** pullthrough's User-Agent upstream. */
export const USER_AGENT = 'pullthrough/0.1';
