import type { Readable } from 'node:stream';
import type { LookupFunction } from 'node:net';

/**
 * One HTTP request to one URL. A transport adds nothing: no authentication, no redirects, no
 * User-Agent or Via (the registry client's redirect loop and token flow do all that above it).
 */
export interface TransportRequest {
  readonly url: URL;
  readonly method: string;
  /** Sent as given (lower-case names). */
  readonly headers: Record<string, string>;
  /** A request body (relayed pushes); only transports that send bodies take one. */
  readonly body?: Readable | null;
  readonly signal?: AbortSignal;
  /** Longest wait for the response head, instead of the transport's own (a relayed upload). */
  readonly headersTimeout?: number;
}

/** One exchange's answer, before redirects and authentication are looked at. */
export interface Exchange {
  readonly status: number;
  /** Lower-cased header names; one value per name. */
  readonly headers: Record<string, string>;
  /** Must be consumed or destroyed by the caller. */
  readonly body: Readable;
}

/**
 * Sends one request to one URL and returns status, headers and body: the seam between the
 * registry client (paths, challenges, tokens, redirects) and the bytes on the wire.
 * Implementations: {@link UndiciTransport} (everything) and {@link ObjectReaderTransport} (blob
 * GETs, into reused slabs). The address guard for URLs an upstream names sits in a transport's
 * `lookup`, so a guarded variant is just a transport built with the guarded lookup.
 */
export interface Transport {
  /**
   * @throws the transport's own network errors (undici's `UndiciError`s, `ObjectReadError`,
   *   socket errors with a `code`), or an `AddressRefusedError` from a guarded lookup somewhere
   *   in the cause chain; an aborted `signal` rejects with the abort. The caller turns these into
   *   typed upstream errors (see `network-error.ts`).
   */
  exchange(req: TransportRequest): Promise<Exchange>;
  /** Closes every connection; later exchanges fail. */
  close(): Promise<void>;
}

/** What a transport is built with: `upstream.*` timeouts, the registry's CAs and a lookup. */
export interface TransportOptions {
  readonly connectTimeout: number;
  readonly headersTimeout: number;
  readonly bodyTimeout: number;
  /** How long an idle connection is kept for reuse. */
  readonly keepAliveMs: number;
  /** Trusted CAs, replacing Node's default roots; undefined: the default roots. */
  readonly ca?: string[];
  /** Name resolution for the connections (net.connect's `lookup`); undefined: the system's. */
  readonly lookup?: LookupFunction;
}
