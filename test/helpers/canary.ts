/**
 * A listening socket that counts the connections it accepts and never answers: the upstream of a
 * registry that must not be contacted (offline mode), so a test can assert it saw none.
 */
import { createServer, type Server, type Socket } from 'node:net';

export interface Canary {
  /** `http://host:port` to configure as an upstream. */
  readonly url: string;
  /** Connections accepted so far. */
  connections(): number;
  /** Drops open connections and stops listening. */
  close(): Promise<void>;
}

/** Starts a canary on `host`, port chosen by the OS. */
export async function startCanary(host = '127.0.0.1'): Promise<Canary> {
  const sockets = new Set<Socket>();
  let n = 0;
  const server: Server = createServer((s) => {
    n++;
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  const { port } = server.address() as { port: number };
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    connections: () => n,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
