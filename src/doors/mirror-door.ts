/**
 * The mirror door (listen.mirror): plain HTTP for clients configured with pullthrough as a
 * registry mirror (`registry-mirrors`, `hosts.toml`, `registries.conf`). Every request goes to the
 * handler; the core picks the registry from the path or `?ns=`.
 */
import { createServer, type Server } from 'node:http';
import type { Config } from '../config/index.js';
import type { BoundAddress, Door } from './door.js';
import { listenOn } from './listen.js';
import type { RequestHandler } from './request-handler.js';

/** Node's default header limit (16 KiB) made explicit: larger requests get 431, never a crash. */
const MAX_HEADER_BYTES = 16 * 1024;
/** How long an idle keep-alive connection stays open. */
const KEEP_ALIVE_TIMEOUT_MS = 65_000;

/** A running mirror door. */
export interface MirrorDoor extends Door {
  readonly name: 'mirror';
  readonly server: Server;
  readonly bound: BoundAddress;
}

/** What the mirror door reads: `listen.mirror`. */
export type MirrorDoorSettings = Pick<Config, 'listen'>;

/**
 * Starts the mirror door on listen.mirror.
 * @throws Error when listen.mirror is off; Error `listen.mirror: cannot listen on HOST:PORT: …`
 *   when it cannot bind (EADDRINUSE, EACCES for a low port without the capability, …).
 */
export async function startMirrorDoor(config: MirrorDoorSettings, handler: RequestHandler): Promise<MirrorDoor> {
  const listen = config.listen.mirror;
  if (!listen) throw new Error('listen.mirror is off');
  const server = createServer({ maxHeaderSize: MAX_HEADER_BYTES, keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS }, handler);
  const bound = await listenOn(server, listen).catch((err: Error) => {
    throw new Error(`listen.mirror: cannot listen on ${listen.host}:${listen.port}: ${err.message}`);
  });
  return {
    name: 'mirror',
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
