import type { Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { ListenAddress } from '../config/index.js';

/**
 * Starts `server` on `addr` and resolves with the bound address.
 * @throws the listen error (EADDRINUSE, EACCES for a low port without the capability, …).
 */
export function listenOn(server: Server, addr: ListenAddress): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(addr.port, addr.host, () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}

/** Closes `server` and destroys `sockets` still open; resolves when it has closed. */
export function closeServer(server: Server, sockets: Iterable<{ destroy(): void }>): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      for (const s of sockets) s.destroy();
      resolve();
      return;
    }
    server.close(() => resolve());
    for (const s of sockets) s.destroy();
  });
}
