/**
 * A plain-HTTP door on one listen address: the mirror door (listen.mirror) and the admin door
 * (listen.admin) are this, with different handlers.
 */
import { createServer, type Server } from 'node:http';
import type { ListenAddress } from '../config/index.js';
import type { BoundAddress, Door, DoorName } from './door.js';
import { listenOn } from './listen.js';
import type { RequestHandler } from './request-handler.js';

/** Node's default header limit (16 KiB) made explicit: larger requests get 431, never a crash. */
const MAX_HEADER_BYTES = 16 * 1024;
/** How long an idle keep-alive connection stays open. */
const KEEP_ALIVE_TIMEOUT_MS = 65_000;

/** A running plain-HTTP door. */
export interface PlainHttpDoor<N extends DoorName> extends Door {
  readonly name: N;
  readonly server: Server;
  readonly bound: BoundAddress;
}

/**
 * Starts an HTTP server for door `name` on `listen`.
 * @throws Error `listen.<name>: cannot listen on HOST:PORT: …` when it cannot bind (EADDRINUSE,
 *   EACCES for a low port without the capability, …).
 */
export async function startPlainHttpDoor<N extends DoorName>(name: N, listen: ListenAddress, handler: RequestHandler): Promise<PlainHttpDoor<N>> {
  const server = createServer({ maxHeaderSize: MAX_HEADER_BYTES, keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS }, handler);
  const bound = await listenOn(server, listen).catch((err: Error) => {
    throw new Error(`listen.${name}: cannot listen on ${listen.host}:${listen.port}: ${err.message}`);
  });
  return {
    name,
    server,
    bound,
    stopAccepting() {
      server.close();
      server.closeIdleConnections();
    },
    async close() {
      // After stopAccepting the server no longer listens and this only cuts what the drain left.
      const closed = server.listening ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
      server.closeAllConnections();
      await closed;
    },
  };
}
