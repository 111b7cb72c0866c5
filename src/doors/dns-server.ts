/**
 * The DNS door (UDP and TCP on listen.dns). Registry names, their aliases and pullthrough's extra
 * names are answered with dns.answer (A from its IPv4 entries, AAAA from IPv6, NOERROR and no
 * records for other types), to any source: that is authoritative data about pullthrough itself,
 * a response barely larger than its query. Every other query is forwarded to dns.forwarders (or
 * the system's resolvers, never pullthrough's own door) only for sources in dns.allow; others get
 * REFUSED, so this is no open resolver. Malformed packets get FORMERR or nothing, never a crash.
 *
 * Answers for served names are precomputed and written straight into a buffer; the query is read
 * only as far as its question (dns-wire.ts). dns2's packet codec, which the design card names, is
 * not used here because it costs answers/s: in the same dgram server, dnsperf -c 4 -q 200 on
 * 2 cores measured 21 895 answers/s with dns-wire.ts against 6 408 with dns2's Packet.parse +
 * createResponseFromRequest + toBuffer (medians of 5 alternating 5 s runs, every dns2 run below
 * every dns-wire run; test/bench/dns-codec.ts, docs/performance.md). dns2 stays in the tests, as
 * the resolver forwarded to. Over UDP,
 * the native fast path (dns-fast-path.ts, dns.fastPath) answers served names itself, in batches,
 * and hands every other datagram to the same code as dgram would.
 */
import cluster from 'node:cluster';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, isIP, type Server, type Socket } from 'node:net';
import type { Config } from '../config/index.js';
import { hijackedNames, type NamesSettings } from '../config/served-names.js';
import { CidrList } from '../net/cidr-list.js';
import { doorForwarders, formatDnsEndpoint } from '../net/dns-endpoints.js';
import { ipToBytes } from '../net/ip-bytes.js';
import { silentLog, type LogSink } from '../util/log-sink.js';
import type { BoundAddress, Door } from './door.js';
import { DnsForwarder } from './dns-forwarder.js';
import { FastPathSocket, fastPathBinding, type FastPathBinding } from './dns-fast-path.js';
import { answerRecord, buildHeaderOnly, buildResponse, parseQuery, QCLASS_IN, QTYPE, RCODE } from './dns-wire.js';

/** Counters since start. */
export interface DnsStats {
  /** Answered from the served names. */
  answered: number;
  forwarded: number;
  refused: number;
  /** Forwarded but no resolver answered (SERVFAIL sent). */
  failed: number;
  /** FORMERR or NOTIMP sent. */
  malformed: number;
  /** Ignored: too short, or not a query; or dropped by the fast path with too many waiting for JavaScript. */
  dropped: number;
  /** Of `answered`, those the native fast path answered over UDP without JavaScript. */
  answeredByFastPath: number;
}

/** A running DNS door. */
export interface DnsDoor extends Door {
  readonly name: 'dns';
  readonly bound: BoundAddress;
  /** Whether the native fast path answers served names over UDP (dns.fastPath). */
  readonly fastPath: boolean;
  /** The resolvers forwarded to, as `ip:port`. */
  readonly forwarders: readonly string[];
  stats(): DnsStats;
  /** Closes at once, without waiting (DNS has nothing to drain: clients retry another resolver). */
  stopAccepting(): void;
  /** Stops both listeners and drops pending forwards. */
  close(): Promise<void>;
}

export interface DnsDoorOptions {
  log?: LogSink;
  /** The resolv.conf read when dns.forwarders is empty (default /etc/resolv.conf). */
  resolvConf?: string;
}

interface Answers {
  a: Buffer;
  aCount: number;
  aaaa: Buffer;
  aaaaCount: number;
}

const TCP_IDLE_MS = 10_000;
const TCP_MAX_CONNECTIONS = 512;
/** Pipelined TCP queries one connection may have in flight before reading pauses. */
const TCP_MAX_INFLIGHT = 32;

/** The answer sections, the same for every served name, computed once. */
function answerSections(config: Pick<Config, 'dns'>): Answers {
  const v4 = config.dns.answer.filter((ip) => isIP(ip) === 4);
  const v6 = config.dns.answer.filter((ip) => isIP(ip) === 6);
  const ttl = config.dns.ttl;
  return {
    a: Buffer.concat(v4.map((ip) => answerRecord(QTYPE.A, ttl, ipToBytes(ip)))),
    aCount: v4.length,
    aaaa: Buffer.concat(v6.map((ip) => answerRecord(QTYPE.AAAA, ttl, ipToBytes(ip)))),
    aaaaCount: v6.length,
  };
}

/** Where UDP queries arrive and answers leave: Node's dgram, or the native fast path. */
interface UdpEndpoint {
  readonly port: number;
  send(answer: Buffer, address: string, port: number): void;
  /** What the native side did without JavaScript: queries answered, datagrams dropped (0 for dgram). */
  nativeStats(): { answered: number; dropped: number };
  close(): Promise<void>;
}

type OnDatagram = (msg: Buffer, address: string, port: number) => void;

/** The native fast path, when dns.fastPath and the build allow it; throws for `on` without it. */
function fastPathFor(config: Pick<Config, 'dns'>, log: LogSink): FastPathBinding | null {
  const mode = config.dns.fastPath;
  if (mode === 'off') return null;
  const native = fastPathBinding();
  if (typeof native !== 'string') return native;
  if (mode === 'on') throw new Error(`dns.fastPath is on, but the native DNS fast path ${native}; set dns.fastPath: auto to use Node's dgram`);
  log.warn(`the DNS door's native fast path ${native}: UDP answers go through Node's dgram, at about half the rate`);
  return null;
}

/** What the DNS door reads: `listen.dns`, `dns.*`, and the names it answers for. */
export type DnsDoorSettings = Pick<Config, 'listen' | 'dns'> & NamesSettings;

/**
 * Starts the DNS door on listen.dns, UDP and TCP on the same port (port 0: one the OS picks).
 * @throws Error when listen.dns is off; DnsEndpointError for a malformed dns.forwarders entry or one
 *   that is pullthrough's own door; TypeError for a malformed dns.allow entry; the bind error.
 */
export async function startDnsDoor(config: DnsDoorSettings, opts: DnsDoorOptions = {}): Promise<DnsDoor> {
  const listen = config.listen.dns;
  if (!listen) throw new Error('listen.dns is off');
  const log = opts.log ?? silentLog;
  const sections = answerSections(config);
  const names = hijackedNames(config);
  const table = new Map<string, Answers>(names.map((n) => [n, sections]));
  const native = fastPathFor(config, log);
  const allow = new CidrList(config.dns.allow);
  const endpoints = doorForwarders(config, opts.resolvConf);
  if (endpoints.length === 0) log.warn('DNS door has no resolver to forward to: names other than the registries get SERVFAIL (set dns.forwarders)');
  const forwarder = new DnsForwarder(endpoints);
  // What JavaScript counted; stats() adds what the native fast path did.
  const counters: Omit<DnsStats, 'answeredByFastPath'> = { answered: 0, forwarded: 0, refused: 0, failed: 0, malformed: 0, dropped: 0 };

  // The allow check runs per query (its result sets RA); remember it per source.
  const allowedCache = new Map<string, boolean>();
  const allowed = (addr: string): boolean => {
    let v = allowedCache.get(addr);
    if (v === undefined) {
      if (allowedCache.size >= 10_000) allowedCache.clear();
      v = allow.has(addr);
      allowedCache.set(addr, v);
    }
    return v;
  };

  /** The response to `msg` from `source`: now, later (forwarded), or never (null). */
  const respond = (msg: Buffer, source: string, tcp: boolean): Buffer | null | Promise<Buffer | null> => {
    const parsed = parseQuery(msg);
    if (parsed.kind === 'drop') {
      counters.dropped++;
      return null;
    }
    const ra = allowed(source);
    if (parsed.kind === 'error') {
      counters.malformed++;
      return buildHeaderOnly(parsed.id, parsed.opcode, parsed.rd, parsed.rcode, ra);
    }
    const q = parsed.query;
    const served = q.name === null || q.qclass !== QCLASS_IN ? undefined : table.get(q.name);
    if (served) {
      counters.answered++;
      if (q.qtype === QTYPE.A) return buildResponse(msg, q, RCODE.NOERROR, { aa: true, ra }, served.a, served.aCount);
      if (q.qtype === QTYPE.AAAA) return buildResponse(msg, q, RCODE.NOERROR, { aa: true, ra }, served.aaaa, served.aaaaCount);
      if (q.qtype === QTYPE.ANY) {
        return buildResponse(msg, q, RCODE.NOERROR, { aa: true, ra }, Buffer.concat([served.a, served.aaaa]), served.aCount + served.aaaaCount);
      }
      // Other types (HTTPS, SVCB, MX, …): the name exists, with no such records, so nothing points elsewhere.
      return buildResponse(msg, q, RCODE.NOERROR, { aa: true, ra });
    }
    if (!ra) {
      counters.refused++;
      return buildResponse(msg, q, RCODE.REFUSED, { aa: false, ra: false });
    }
    counters.forwarded++;
    const pending = tcp ? forwarder.forwardTcp(msg) : forwarder.forwardUdp(msg, q.questionEnd);
    return pending.then((answer) => {
      if (answer) return answer;
      counters.failed++;
      return buildResponse(msg, q, RCODE.SERVFAIL, { aa: false, ra: true });
    });
  };

  const host = bindableHost(listen.host);
  let udp: UdpEndpoint | undefined;
  const onDatagram: OnDatagram = (msg, address, port) => {
    let r: ReturnType<typeof respond>;
    try {
      r = respond(msg, address, false);
    } catch (err) {
      // Unreachable by design (the parser checks every bound); counted, never fatal.
      counters.dropped++;
      log.error('DNS query handling failed', { error: (err as Error).message });
      return;
    }
    if (r === null) return;
    const send = (b: Buffer | null): void => {
      if (b) udp?.send(b, address, port);
    };
    if (r instanceof Promise) r.then(send, () => {});
    else send(r);
  };
  const openUdp = native
    ? // Worker processes each bind their own socket to the port (SO_REUSEPORT), as a cluster
      // cannot share a socket it did not create.
      (port: number) => nativeUdp(FastPathSocket.open(native, host, port, { names, ...sections, allow: allow.ranges }, onDatagram, cluster.isWorker))
    : (port: number) => dgramUdp(host, port, onDatagram, log);
  const bound = await bindBoth(host, listen.port, openUdp);
  udp = bound.udp;
  const tcp = bound.tcp;

  const connections = new Set<Socket>();
  tcp.maxConnections = TCP_MAX_CONNECTIONS;
  tcp.on('connection', (socket) => {
    connections.add(socket);
    socket.once('close', () => connections.delete(socket));
    serveTcp(socket, (msg) => respond(msg, socket.remoteAddress ?? '', true), () => counters.dropped++);
  });
  tcp.on('error', (err) => log.error('DNS TCP server error', { error: err.message }));

  log.info('DNS door forwarding', { forwarders: endpoints.map(formatDnsEndpoint), fastPath: native !== null });
  const endpoint = udp;
  const close = async (): Promise<void> => {
    forwarder.close();
    for (const s of connections) s.destroy();
    await Promise.all([endpoint.close(), new Promise<void>((r) => tcp.close(() => r()))]);
  };
  return {
    name: 'dns',
    bound: { address: host, port: endpoint.port },
    fastPath: native !== null,
    forwarders: endpoints.map(formatDnsEndpoint),
    stats: () => {
      const fast = endpoint.nativeStats();
      return { ...counters, answered: counters.answered + fast.answered, dropped: counters.dropped + fast.dropped, answeredByFastPath: fast.answered };
    },
    stopAccepting: () => void close(),
    close,
  };
}

/**
 * A port free for both UDP and TCP on `host`, for workers that must agree on one before binding
 * it each. (Another process could take it in between; only port 0, a test's choice, asks.)
 */
export async function pickDnsPort(host: string): Promise<number> {
  const ip = bindableHost(host);
  const bound = await bindBoth(ip, 0, (port) => dgramUdp(ip, port, () => {}, silentLog));
  await Promise.all([bound.udp.close(), new Promise<void>((r) => bound.tcp.close(() => r()))]);
  return bound.udp.port;
}

/** listen.dns's host as the sockets bind it: `localhost` is 127.0.0.1. */
function bindableHost(host: string): string {
  return host === 'localhost' ? '127.0.0.1' : host;
}

/** UDP through Node's dgram: every datagram to `onDatagram`. */
async function dgramUdp(host: string, port: number, onDatagram: OnDatagram, log: LogSink): Promise<UdpEndpoint> {
  // Replies go to the source address, always an IP literal: dgram's default lookup would still
  // defer each send by a tick through dns.lookup.
  const type = isIP(host) === 6 ? 'udp6' : 'udp4';
  const udp: UdpSocket = createSocket({ type, lookup: (address, _family, cb) => cb(null, address, isIP(address)) });
  await new Promise<void>((resolve, reject) => {
    udp.once('error', reject);
    udp.bind(port, host, () => {
      udp.off('error', reject);
      resolve();
    });
  });
  // A bigger receive buffer rides out bursts; the kernel caps it at net.core.rmem_max.
  try {
    udp.setRecvBufferSize(4 << 20);
  } catch {
    /* keep the default */
  }
  udp.on('message', (msg, rinfo) => onDatagram(msg, rinfo.address, rinfo.port));
  udp.on('error', (err) => log.error('DNS UDP socket error', { error: err.message }));
  let closed = false;
  return {
    port: udp.address().port,
    send: (answer, address, to) => {
      // After close (an answer forwarded during shutdown) there is nothing to send on.
      if (closed) return;
      try {
        udp.send(answer, to, address);
      } catch {
        // A source dgram will not send to (port 0 from a forged packet): no answer, no crash.
      }
    },
    nativeStats: () => ({ answered: 0, dropped: 0 }),
    close: async () => {
      if (closed) return;
      closed = true;
      await new Promise<void>((r) => udp.close(() => r()));
    },
  };
}

/** UDP through the native fast path: served names answered there, the rest to `onDatagram`. */
function nativeUdp(socket: FastPathSocket): UdpEndpoint {
  return {
    port: socket.port,
    send: (answer, address, to) => void socket.send(answer, address, to),
    nativeStats: () => socket.stats(),
    close: async () => socket.close(),
  };
}

/** DNS over TCP: 2-byte length-prefixed messages, pipelined, answered in any order (RFC 7766). */
function serveTcp(socket: Socket, respond: (msg: Buffer) => Buffer | null | Promise<Buffer | null>, onError: () => void): void {
  let buf: Buffer = Buffer.alloc(0);
  let inflight = 0;
  socket.setTimeout(TCP_IDLE_MS, () => socket.destroy());
  socket.on('error', () => socket.destroy());
  const send = (answer: Buffer | null): void => {
    inflight--;
    if (inflight < TCP_MAX_INFLIGHT && socket.isPaused()) socket.resume();
    if (!answer || socket.destroyed) return;
    const len = Buffer.alloc(2);
    len.writeUInt16BE(answer.length);
    socket.write(Buffer.concat([len, answer]));
  };
  socket.on('data', (chunk: Buffer) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    while (buf.length >= 2) {
      const len = buf.readUInt16BE(0);
      if (buf.length < 2 + len) break;
      const msg = buf.subarray(2, 2 + len);
      buf = buf.subarray(2 + len);
      inflight++;
      let r: Buffer | null | Promise<Buffer | null>;
      try {
        r = respond(msg);
      } catch {
        onError();
        r = null;
      }
      if (r instanceof Promise) r.then(send, () => send(null));
      else send(r);
    }
    if (inflight >= TCP_MAX_INFLIGHT) socket.pause();
  });
}

/** Binds UDP, then TCP on the same port; with port 0, retries when TCP finds the UDP port taken. */
async function bindBoth(host: string, port: number, openUdp: (port: number) => UdpEndpoint | Promise<UdpEndpoint>): Promise<{ udp: UdpEndpoint; tcp: Server }> {
  for (let attempt = 0; ; attempt++) {
    const udp = await openUdp(port);
    const tcp = createServer();
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen(udp.port, host, () => {
          tcp.off('error', reject);
          resolve();
        });
      });
      return { udp, tcp };
    } catch (err) {
      await udp.close();
      if (port !== 0 || attempt >= 5 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    }
  }
}
