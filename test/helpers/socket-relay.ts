/**
 * Byte relays between TCP ports and Unix sockets, to join the host's loopback and a container's
 * own network namespace without any routed address: a container run with `--network none` has
 * only its loopback, as a pod's sandbox has its own. A relay run inside that namespace
 * (`nsenter --net=/proc/PID/ns/net node socket-relay.js SPEC…`) and one in this process meet at a
 * Unix socket on the shared filesystem.
 *
 * SPEC is `LISTEN=TARGET`, each side `tcp:HOST:PORT` or `unix:PATH`, e.g.
 * `tcp:127.0.0.1:6379=unix:/tmp/x/redis.sock` (listen on TCP, forward to the socket).
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

type End = { tcp: { host: string; port: number } } | { unix: string };

function parseEnd(s: string): End {
  if (s.startsWith('unix:')) return { unix: s.slice(5) };
  const m = /^tcp:(.+):(\d+)$/.exec(s);
  if (!m) throw new Error(`not a relay end (tcp:HOST:PORT or unix:PATH): ${s}`);
  return { tcp: { host: m[1]!, port: Number(m[2]) } };
}

function open(to: End): Socket {
  return 'unix' in to ? connect(to.unix) : connect(to.tcp.port, to.tcp.host);
}

/** A listening relay. */
export interface Relay {
  readonly server: Server;
  /** Stops listening and cuts every connection in progress. */
  close(): Promise<void>;
}

/** Listens on `from` and pipes every connection to a new connection to `to`; resolves when listening. */
export async function relay(spec: string): Promise<Relay> {
  const [fromS, toS] = spec.split('=');
  if (!fromS || !toS) throw new Error(`not a relay spec (LISTEN=TARGET): ${spec}`);
  const from = parseEnd(fromS);
  const to = parseEnd(toS);
  const open_ = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = open(to);
    for (const sock of [client, upstream]) {
      open_.add(sock);
      sock.on('close', () => open_.delete(sock));
    }
    client.pipe(upstream).pipe(client);
    // A refused or reset side closes the other: the peer sees what a dead server would show.
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  if ('unix' in from) rmSync(from.unix, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if ('unix' in from) server.listen(from.unix, resolve);
    else server.listen(from.tcp.port, from.tcp.host, resolve);
  });
  return {
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const sock of open_) sock.destroy();
      }),
  };
}

// As a program: start every relay given, say so on stdout, run until killed.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  Promise.all(process.argv.slice(2).map(relay)).then(
    () => console.log('relays ready'),
    (err: Error) => {
      console.error(err.message);
      process.exit(1);
    },
  );
}
