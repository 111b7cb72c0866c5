/**
 * The HTTP doors' common bookkeeping, kept by the server across all of them: malformed requests get
 * a short answer instead of Node's default, and requests in progress are counted so a shutdown can
 * wait for them (the drain).
 */
import type { EventEmitter } from 'node:events';
import type { Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import type { LogSink } from '../util/log-sink.js';

/** Counts the requests in progress on the HTTP(S) servers it watches. */
export class HttpTraffic {
  #active = 0;

  constructor(private readonly log: LogSink) {}

  /** Responses not yet finished or aborted, over every watched server. */
  get active(): number {
    return this.#active;
  }

  /** Starts answering `server`'s client errors and counting its requests. */
  watch(server: HttpServer | HttpsServer): void {
    // Both server kinds are EventEmitters with the same 'clientError' and 'request' events, but
    // their typings share no overload: listen through the common base.
    const events: EventEmitter = server;
    // Malformed requests, oversized headers, resets: Node answers or drops them; note why.
    events.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
      this.log.debug('client connection error', { code: err.code, error: err.message });
      if (socket.writable && err.code !== 'ECONNRESET') {
        const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
        socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
      } else {
        socket.destroy();
      }
    });
    events.on('request', (_req: unknown, res: EventEmitter) => {
      this.#active++;
      res.once('close', () => this.#active--);
    });
  }
}
