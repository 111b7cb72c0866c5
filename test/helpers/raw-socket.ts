/** Raw TCP exchanges with a door, for what clients would never send; connected loopback pairs. */
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A connected loopback pair: `client` from connect(), `peer` as a server accepted it. The peer
 * ignores socket errors (a client a test destroys resets the connection).
 */
export async function socketPair(): Promise<{ client: Socket; peer: Socket; close(): void }> {
  const server: Server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = connect((server.address() as { port: number }).port, '127.0.0.1');
  const [[peer]] = await Promise.all([once(server, 'connection') as Promise<[Socket]>, once(client, 'connect')]);
  peer.on('error', () => {});
  return {
    client,
    peer,
    close() {
      client.destroy();
      peer.destroy();
      server.close();
    },
  };
}

/**
 * Connects to 127.0.0.1:port, writes `data`, and resolves with everything received until the
 * server closes or `waitMs` passes (then the socket is destroyed).
 */
export function exchange(port: number, data: string | Buffer, waitMs = 2000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = connect(port, '127.0.0.1', () => s.write(data));
    const done = (): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(Buffer.concat(chunks));
    };
    const timer = setTimeout(done, waitMs);
    s.on('data', (b) => chunks.push(b));
    s.on('end', done);
    s.on('close', done);
    s.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' ? done() : reject(err)));
  });
}

/** The status line of an HTTP response in `buf`. */
export const statusLine = (buf: Buffer): string => buf.toString('latin1').split('\r\n')[0] ?? '';
