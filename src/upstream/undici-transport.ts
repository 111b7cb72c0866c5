import { Agent, type Dispatcher } from 'undici';
import type { Exchange, Transport, TransportOptions, TransportRequest } from './transport.js';

/** Lower-cases header names and keeps the first value of repeated headers. */
export function firstHeaders(h: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k.toLowerCase()] = Array.isArray(v) ? v[0]! : v;
  return out;
}

/** The general transport: an undici Agent (keep-alive pool, up to 64 connections per origin). */
export class UndiciTransport implements Transport {
  private readonly agent: Agent;

  constructor(opts: TransportOptions) {
    this.agent = new Agent({
      connect: { timeout: opts.connectTimeout, ...(opts.ca ? { ca: opts.ca } : {}), ...(opts.lookup ? { lookup: opts.lookup } : {}) },
      headersTimeout: opts.headersTimeout,
      bodyTimeout: opts.bodyTimeout,
      keepAliveTimeout: opts.keepAliveMs,
      connections: 64,
    });
  }

  /** @throws undici's errors (`ConnectTimeoutError`, `HeadersTimeoutError`, …), socket errors, the abort. */
  async exchange(req: TransportRequest): Promise<Exchange> {
    const { url } = req;
    const r = await this.agent.request({
      origin: url.origin,
      path: url.pathname + url.search,
      method: req.method as Dispatcher.HttpMethod,
      headers: req.headers,
      signal: req.signal,
      ...(req.body !== undefined ? { body: req.body } : {}),
      ...(req.headersTimeout !== undefined ? { headersTimeout: req.headersTimeout } : {}),
    });
    return { status: r.statusCode, headers: firstHeaders(r.headers), body: r.body };
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}
