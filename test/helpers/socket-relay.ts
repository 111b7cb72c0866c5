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
 * passes nothing on and answers nothing, on open (keep-alive) connections and new ones alike: what
 * a stuck server looks like to a client (no refusal, no reset, no status). What arrives meanwhile
 * is held, in order; `hang(false)` delivers it and forwards again, so a request sent during the
 * hang is answered late, as by a server that was stuck for a while.
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
  /** Hang (accept, pass nothing on, answer nothing; hold what arrives) or deliver what was held and forward again. */
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
  const gates = new Set<Transform>();
  const held = new Map<Transform, Buffer[]>();
  /** Ends that arrived while hanging: delivered after what was held. */
  const endings = new Map<Transform, () => void>();
  // Holds what passes while hanging; a Transform keeps the pipe's backpressure otherwise.
  const gate = (): Transform => {
    const g = new Transform({
      transform(chunk: Buffer, _enc, done) {
        if (hanging) {
          held.get(g)!.push(chunk);
          done();
        } else done(null, chunk);
      },
      flush(done) {
        if (hanging) endings.set(g, () => done());
        else done();
      },
    });
    gates.add(g);
    held.set(g, []);
    g.on('close', () => {
      gates.delete(g);
      held.delete(g);
      endings.delete(g);
    });
    return g;
  };
  const server = createServer((client) => {
    accepted++;
    const upstream = open(to);
    for (const sock of [client, upstream]) {
      open_.add(sock);
      sock.on('close', () => open_.delete(sock));
    }
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
      if (on) return;
      for (const g of gates) {
        const chunks = held.get(g) ?? [];
        held.set(g, []);
        for (const c of chunks) g.push(c);
        const end = endings.get(g);
        endings.delete(g);
        end?.();
      }
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
