import type { AddressInfo, Server, Socket } from 'node:net';
import type { ListenAddress } from '../config/index.js';
import { limitNotSent } from '../net/tcp-options.js';

/**
 * Starts `server` on `addr` and resolves with the bound address. Every socket it accepts gets the
 * doors' send cap, so a blob's bytes reach the client fresh from the cache, not megabytes behind
 * (net/tcp-options.ts); the CONNECT door's intercepted tunnels have it from the proxy's listener.
 * @throws the listen error (EADDRINUSE, EACCES for a low port without the capability, …).
 */
export function listenOn(server: Server, addr: ListenAddress): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(addr.port, addr.host, () => {
      server.off('error', onError);
      capAcceptedSockets(server);
      resolve(server.address() as AddressInfo);
    });
  });
}

/**
 * Gives the send cap to every socket `server` accepts. Linux copies a listening socket's TCP
 * options into each connection it accepts, so the cap is set once, on the listener: no system
 * call and no listener per connection, which a new TLS connection's CPU shows (docs/performance.md,
 * twenty-first round). A connection the kernel completed in the instant between listen() and
 * this call starts without it: correct, only slower. A listener without a descriptor of its own
 * (a node:cluster worker's, whose connections the primary accepts) caps each socket as it comes.
 */
function capAcceptedSockets(server: Server): void {
  if (limitNotSent(server)) return;
  server.on('connection', (s: Socket) => limitNotSent(s));
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
