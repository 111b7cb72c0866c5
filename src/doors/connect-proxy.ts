/**
 * The CONNECT door (rpardini's :3128): clients set HTTPS_PROXY to it. `CONNECT quay.io:443` for a
 * served name gets `200 Connection Established` and its TLS ends here, in-process, in the TLS
 * door's server with that name's certificate. Other targets are tunnelled only when proxy.tunnel
 * allows them and they resolve to public addresses; everything else is refused. Plain requests
 * with a path (`GET /ca.crt`, `/setup/...`) go to the handler; absolute-URI requests only for
 * served names, so this is never an open HTTP proxy.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type LookupFunction, type Socket } from 'node:net';
import type { Config } from '../config/index.js';
import { servedNames } from '../config/served-names.js';
import type { TunnelPolicySettings } from './tunnel-policy.js';
import { normalizeHost, parseHostPort } from '../net/host-port.js';
import { unmapIPv4 } from '../net/ip-bytes.js';
import { createUpstreamLookup } from '../upstream/dns-lookup.js';
import { silentLog } from '../util/log-sink.js';
import type { BoundAddress, Door } from './door.js';
import { closeServer, listenOn } from './listen.js';
import { callHandler, type RequestHandler } from './request-handler.js';
import type { DoorOptions, TlsDoor } from './tls-door.js';
import { TunnelPolicy } from './tunnel-policy.js';

/** A running CONNECT door. */
export interface ProxyDoor extends Door {
  readonly name: 'proxy';
  readonly server: Server;
  readonly bound: BoundAddress;
  /** Stops listening (and closes idle connections); requests and tunnels in progress go on. */
  stopAccepting(): void;
  /** Stops listening and drops open connections and tunnels. */
  close(): Promise<void>;
}

export interface ProxyDoorOptions extends DoorOptions {
  /** Resolves tunnel targets; default: {@link createUpstreamLookup} (dns.forwarders, else the system's). */
  lookup?: LookupFunction;
}

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 403: 'Forbidden', 502: 'Bad Gateway', 504: 'Gateway Timeout' };

/** Answers on a raw socket (after CONNECT there is no ServerResponse) and closes it. */
function refuseSocket(socket: Socket, status: number, reason: string): void {
  const body = `${reason}\n`;
  if (socket.writable) {
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  // Do not wait for the client to read: a refused client gets its answer and the door moves on.
  socket.setTimeout(5000, () => socket.destroy());
}

/** The door's own address as a client would write it (IPv4 without its ::ffff: mapping). */
function localHost(addr: string | undefined): string {
  return addr ? (unmapIPv4(addr) ?? normalizeHost(addr)) : '';
}

function refuseResponse(res: ServerResponse, status: number, reason: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close' });
  res.end(`${reason}\n`);
}

/** What the CONNECT door reads: `listen.proxy`, `upstream.connectTimeout`, the DNS forwarders of its lookup, the tunnel policy's settings. */
export type ProxyDoorSettings = Pick<Config, 'listen' | 'upstream' | 'dns'> & TunnelPolicySettings;

/**
 * Starts the CONNECT door on listen.proxy; intercepted TLS goes to `tlsDoor` (which need not
 * listen itself) and from there to `handler`.
 * @throws Error when listen.proxy is off; the listen error (EADDRINUSE, EACCES); TypeError for a
 *   malformed proxy.tunnel entry; DnsEndpointError for a malformed dns.forwarders entry.
 */
export async function startProxyDoor(config: ProxyDoorSettings, handler: RequestHandler, tlsDoor: TlsDoor, opts: ProxyDoorOptions = {}): Promise<ProxyDoor> {
  if (!config.listen.proxy) throw new Error('listen.proxy is off');
  const log = opts.log ?? silentLog;
  const policy = new TunnelPolicy(config, opts.lookup ?? createUpstreamLookup(config));
  const served = servedNames(config);
  const connectTimeout = config.upstream.connectTimeout;
  const sockets = new Set<Socket>();
  const track = (s: Socket): void => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const url = req.url ?? '';
    // Credentials for this proxy are none of the registry core's business.
    delete req.headers['proxy-authorization'];
    delete req.headers['proxy-connection'];
    if (url.startsWith('/')) return callHandler(handler, req, res, (err) => log.error('request handler threw', { error: (err as Error).message }));
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      return refuseResponse(res, 400, 'not a request target');
    }
    const host = normalizeHost(target.hostname);
    const port = Number(target.port || 80);
    // A client with HTTP_PROXY set fetching /ca.crt from this very door sends an absolute URI for it.
    const self = port === address?.port && (host === 'localhost' || host === localHost(req.socket.localAddress) || served.get(host)?.registry === null);
    if (self) {
      req.url = `${target.pathname}${target.search}`;
      return callHandler(handler, req, res, (err) => log.error('request handler threw', { error: (err as Error).message }));
    }
    if (target.protocol !== 'http:' || !served.has(host)) {
      log.debug('refused a proxy request', { host: host.slice(0, 253) });
      return refuseResponse(res, 403, `pullthrough proxies only the registries it serves; ${host} is not one of them`);
    }
    // Origin-form for the core, which routes on the Host header.
    req.url = `${target.pathname}${target.search}`;
    req.headers.host = target.host;
    callHandler(handler, req, res, (err) => log.error('request handler threw', { error: (err as Error).message }));
  };

  let address: AddressInfo | undefined;
  const server = createServer(onRequest);
  server.on('connection', track);
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    log.debug('malformed proxy request', { error: err.code ?? err.message });
    if (err.code === 'ECONNRESET' || !socket.writable) return socket.destroy();
    refuseSocket(socket, 400, 'malformed request');
  });

  server.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on('error', (err) => log.debug('proxy client socket error', { error: err.message }));
    const target = parseHostPort(req.url ?? '');
    if (!target || !/^[^/?#@\s]+$/.test(req.url ?? '')) return refuseSocket(socket, 400, 'CONNECT needs host:port');
    policy.decide(target.host, target.port).then(
      (decision) => {
        if (socket.destroyed) return;
        if (decision.action === 'refuse') {
          log.info('refused CONNECT', { target: `${target.host}:${target.port}`, reason: decision.reason });
          return refuseSocket(socket, decision.status, decision.reason);
        }
        if (decision.action === 'intercept') {
          socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
          tlsDoor.accept(socket, head);
          return;
        }
        const upstream = connect({ host: decision.address, port: target.port, family: decision.family });
        track(upstream);
        upstream.setTimeout(connectTimeout);
        let connected = false;
        upstream.once('timeout', () => {
          if (connected) return;
          upstream.destroy();
          refuseSocket(socket, 504, `connecting to ${target.host}:${target.port} timed out`);
        });
        upstream.on('error', (err: NodeJS.ErrnoException) => {
          if (!connected) refuseSocket(socket, 502, `cannot connect to ${target.host}:${target.port}: ${err.code ?? err.message}`);
          else socket.destroy();
        });
        upstream.once('connect', () => {
          connected = true;
          upstream.setTimeout(0);
          log.info('tunnel', { target: `${target.host}:${target.port}`, address: decision.address });
          socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
          if (head.length) upstream.write(head);
          socket.pipe(upstream);
          upstream.pipe(socket);
        });
        socket.once('close', () => upstream.destroy());
        // Before the tunnel is up, the client is waiting for the 502/504 written above: let it flush.
        upstream.once('close', () => connected && socket.destroy());
      },
      (err: Error) => {
        log.error('CONNECT failed', { error: err.message });
        refuseSocket(socket, 502, 'internal error');
      },
    ).catch((err: Error) => {
      // Whatever went wrong setting up this one connection ends it, not the process.
      log.error('CONNECT handling failed', { error: err.message });
      socket.destroy();
    });
  });

  address = await listenOn(server, config.listen.proxy);
  return {
    name: 'proxy',
    server,
    bound: address,
    stopAccepting: () => void server.close(),
    close: () => closeServer(server, sockets),
  };
}
