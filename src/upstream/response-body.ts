import type { Readable } from 'node:stream';
import { BodyTooLargeError, UpstreamStatusError } from './errors.js';
import type { UpstreamResponse } from './upstream-request.js';

/**
 * Collects a small body, rejecting past `limit` bytes (upstream bodies are never trusted to be small).
 * @throws BodyTooLargeError past `limit` (the body is destroyed); the stream's own error when it fails.
 */
export async function readLimited(body: Readable, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      body.destroy();
      throw new BodyTooLargeError(limit);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * Turns a non-2xx upstream response into an UpstreamStatusError carrying the upstream's own
 * message, consuming (a bounded part of) the body. Never throws: an unreadable body gives an
 * error without the upstream's message.
 */
export async function upstreamStatusError(registry: string, res: UpstreamResponse): Promise<UpstreamStatusError> {
  let code: string | undefined;
  let message: string | undefined;
  try {
    const text = (await readLimited(res.body, 64 * 1024)).toString('utf8');
    const doc = JSON.parse(text) as { errors?: Array<{ code?: unknown; message?: unknown }>; details?: unknown; message?: unknown };
    const e = doc.errors?.[0];
    if (e) {
      code = typeof e.code === 'string' ? e.code : undefined;
      message = typeof e.message === 'string' ? e.message : undefined;
    } else if (typeof doc.message === 'string') {
      message = doc.message;
    }
  } catch {
    res.body.destroy();
  }
  return new UpstreamStatusError(registry, res.status, code, message?.slice(0, 1000), res.headers['retry-after']);
}
