/**
 * The TLS door: HTTPS under the registries' own names (listen.tls, usually :443, reached through
 * DNS or /etc/hosts pointing those names here), and the in-process TLS end of the CONNECT door.
 * Each handshake gets the certificate of its SNI name; unknown names get a handshake_failure alert.
 * The core picks the registry from the Host header, so every request goes to one handler.
 */
import { constants as cryptoConstants, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { Socket } from 'node:net';
import { createSecureContext } from 'node:tls';
import type { Config } from '../config/index.js';
import type { CertificateAuthority } from '../pki/index.js';
import { DOOR_CIPHERS } from '../net/tls-ciphers.js';
import { silentLog, type LogSink } from '../util/log-sink.js';
import type { BoundAddress, Door } from './door.js';
import { closeServer, listenOn } from './listen.js';
import { callHandler, type RequestHandler } from './request-handler.js';

/** A running TLS door. */
export interface TlsDoor extends Door {
  readonly name: 'tls';
  readonly server: Server;
  /** The bound address; null when listen.tls is off and the server only serves CONNECT tunnels. */
  readonly bound: BoundAddress | null;
  /**
   * Runs TLS (and then HTTP) on an already-accepted TCP socket, as if it had connected to the door;
   * `head` holds bytes already read from it (the start of the ClientHello).
   */
  accept(socket: Socket, head?: Buffer): void;
  /** Stops listening (and closes idle connections); handshakes and requests in progress go on. */
  stopAccepting(): void;
  /** Stops listening and drops open connections. */
  close(): Promise<void>;
}

/** Options shared by the doors. */
export interface DoorOptions {
  log?: LogSink;
}

/** Options of the TLS door. */
export interface TlsDoorOptions extends DoorOptions {
  /**
   * Session ticket keys (48 bytes), used when `tls.sessionTickets` is on. Default: random for this
   * process. Workers get the same keys from the primary, so a session ticket issued by one worker
   * resumes on any other. (node:cluster copies the first worker's keys to the others for a
   * listening server, but not for the CONNECT door's TLS when listen.tls is off, nor after the
   * daily setSecureContext below.)
   */
  ticketKeys?: Buffer;
}

/** Docker and containerd keep idle connections 90 s; close ours a little earlier so they never reuse a closing one. */
const KEEP_ALIVE_TIMEOUT_MS = 75_000;
const DAY_MS = 86_400_000;

/** What the TLS door reads: `listen.tls`, `tls.sessionTickets` and `tls.ciphers`. */
export type TlsDoorSettings = Pick<Config, 'listen'> & { readonly tls: Pick<Config['tls'], 'sessionTickets' | 'ciphers'> };

/**
 * Creates the TLS server and, when listen.tls is set, starts it there.
 * @throws the listen error (EADDRINUSE, EACCES), or the CA's error when the certificate for
 *   handshakes without SNI (the first IP among the served names) cannot be issued.
 */
export async function startTlsDoor(config: TlsDoorSettings, handler: RequestHandler, ca: CertificateAuthority, opts: TlsDoorOptions = {}): Promise<TlsDoor> {
  const log = opts.log ?? silentLog;
  // One set of ticket keys for the server's lifetime, kept across setSecureContext, so sessions resume.
  const ticketKeys = opts.ticketKeys ?? randomBytes(48);
  // Without tickets (the default, see tls.sessionTickets in config/schema.ts) OpenSSL issues no
  // encrypted ticket after a handshake, ~7 % of the door's CPU per new connection; it still sends
  // TLS 1.3's short stateful ones, which resume nothing (Node keeps no session cache).
  // The suites in the server's order: AES-128-GCM first unless configured (net/tls-ciphers.ts).
  // Both stay the server's own whatever context the SNI callback picks, so the default context
  // set below (setSecureContext replaces all of them) gets them again.
  const contextOptions = {
    ticketKeys,
    secureOptions: config.tls.sessionTickets ? 0 : cryptoConstants.SSL_OP_NO_TICKET,
    ciphers: config.tls.ciphers ?? DOOR_CIPHERS,
    honorCipherOrder: true,
    minVersion: 'TLSv1.2',
  } as const;
  const noCertificate = createSecureContext({});
  const defaultName = ca.defaultName();
  const server = createServer(
    {
      ...contextOptions,
      ALPNProtocols: ['http/1.1'],
      // No TCP keepalive (Node's `keepAlive` option): at the kernel's default of two idle hours its
      // first probe never came before the idle (75 s) and request timeouts closed the connection,
      // and it cost a system call per connection. The plain-HTTP doors never had it.
      SNICallback: (servername, done) => {
        const hit = ca.cachedContext(servername);
        if (hit) return done(null, hit);
        // Called from a promise: a throw here must not become an unhandled rejection (a crash).
        const cb: typeof done = (err, ctx) => {
          try {
            done(err, ctx);
          } catch (e) {
            log.debug('TLS handshake ended during SNI', { error: (e as Error).message });
          }
        };
        ca.secureContextFor(servername).then(
          (ctx) => {
            if (ctx) return cb(null, ctx);
            log.debug('TLS handshake for a name pullthrough does not serve', { servername: servername.slice(0, 253) });
            // A context without a certificate makes OpenSSL send handshake_failure, but only while
            // the default context has none either: Node keeps the default certificate otherwise.
            // With a default certificate (for clients dialling an IP) the connection is dropped instead.
            if (defaultName) cb(new Error(`pullthrough does not serve ${servername.slice(0, 253)}`));
            else cb(null, noCertificate);
          },
          (err: Error) => {
            log.error('cannot issue a certificate', { servername, error: err.message });
            cb(err);
          },
        );
      },
    },
    (req, res) => callHandler(handler, req, res, (err) => log.error('request handler threw', { error: (err as Error).message })),
  );
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  server.on('tlsClientError', (err) => log.debug('TLS handshake failed', { error: err.message }));

  const sockets = new Set<Socket>();
  // The raw TCP socket, before TLS: also the CONNECT door's tunnels (accept below).
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });

  // Clients that dial an IP send no SNI: serve the first IP name's certificate to them, renewed daily.
  let renewTimer: NodeJS.Timeout | undefined;
  if (defaultName) {
    const setDefault = async (): Promise<void> => {
      const leaf = await ca.certificateFor(defaultName);
      if (leaf) server.setSecureContext({ ...contextOptions, key: leaf.keyPem, cert: leaf.certPem });
    };
    await setDefault();
    renewTimer = setInterval(() => setDefault().catch((err: Error) => log.error('cannot renew the default certificate', { error: err.message })), DAY_MS);
    renewTimer.unref();
  }

  const bound = config.listen.tls ? await listenOn(server, config.listen.tls) : null;

  return {
    name: 'tls',
    server,
    bound,
    stopAccepting() {
      server.close();
    },
    accept(socket, head) {
      if (head && head.length > 0) socket.unshift(head);
      server.emit('connection', socket);
    },
    close() {
      clearInterval(renewTimer);
      return closeServer(server, sockets);
    },
  };
}
