/**
 * Byte relays between TCP ports and Unix sockets, to join the host's loopback and a container's
 * own network namespace without any routed address: a container run with `--network none` has
 * only its loopback, as a pod's sandbox has its own. A relay run inside that namespace
 * (`nsenter --net=/proc/PID/ns/net node socket-relay.js SPEC…`) and one in this process meet at a
 * Unix socket on the shared filesystem.
 *
 * SPEC is `LISTEN=TARGET`, each side `tcp:HOST:PORT` or `unix:PATH`, e.g.
 * `tcp:127.0.0.1:6379=unix:/tmp/x/redis.sock` (listen on TCP, forward to the socket).
 *
 * `hang(true)` turns a relay into an upstream that hangs: it still accepts connections but
 * forwards nothing and answers nothing, on open (keep-alive) connections and new ones alike: what
 * a stuck server or a black-holing middlebox looks like to a client (no refusal, no reset, no
 * status). `hang(false)` forwards again on the connections opened before; bytes that arrived
 * meanwhile are dropped, never delivered late, and a connection accepted while hanging stays stuck
 * until its client gives up.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { Transform } from 'node:stream';
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
  /** Connections accepted so far, hanging or not. */
  accepted(): number;
  /** Hang (accept, forward nothing, answer nothing) or forward again. */
  hang(on: boolean): void;
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
  let hanging = false;
  let accepted = 0;
  // Drops what passes while hanging; a Transform keeps the pipe's backpressure otherwise.
  const gate = (): Transform =>
    new Transform({
      transform(chunk: Buffer, _enc, done) {
        done(null, hanging ? undefined : chunk);
      },
    });
  const server = createServer((client) => {
    accepted++;
    open_.add(client);
    client.on('close', () => open_.delete(client));
    // Accepted while hanging: never read, never forwarded (the client waits for nothing).
    if (hanging) {
      client.on('error', () => client.destroy());
      return;
    }
    const upstream = open(to);
    open_.add(upstream);
    upstream.on('close', () => open_.delete(upstream));
    client.pipe(gate()).pipe(upstream);
    upstream.pipe(gate()).pipe(client);
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
    accepted: () => accepted,
    hang: (on) => {
      hanging = on;
    },
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
