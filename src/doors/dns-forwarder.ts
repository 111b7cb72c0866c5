/**
 * Relays queries pullthrough does not answer itself to the configured resolvers, byte for byte
 * (EDNS, DNSSEC bits and all), and relays their answers back. UDP queries go out over UDP from a
 * few sockets with random ports and fresh random IDs; an answer is taken only from the resolver
 * asked, with the ID and question asked (spoofing an answer means guessing port, ID and source).
 * TCP queries go out over TCP. Resolvers are tried in turn; the last one that answered goes first.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect } from 'node:net';
import { randomInt } from 'node:crypto';
import type { DnsEndpoint } from '../net/dns-endpoints.js';
import { unmapIPv4 } from '../net/ip-bytes.js';

interface Pending {
  endpoint: DnsEndpoint;
  question: Buffer;
  originalId: number;
  resolve: (answer: Buffer | null) => void;
  timer: NodeJS.Timeout;
}

interface PoolSocket {
  socket: UdpSocket;
  pending: Map<number, Pending>;
}

const SOCKETS_PER_FAMILY = 4;

/** Byte-equal but for ASCII letter case (some resolvers do not keep a query's 0x20 mixed case). */
function sameQuestion(a: Buffer, b: Buffer): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x !== y && !((x | 0x20) === (y | 0x20) && (x | 0x20) >= 0x61 && (x | 0x20) <= 0x7a)) return false;
  }
  return true;
}
const MAX_PENDING_PER_SOCKET = 8192;

export class DnsForwarder {
  private readonly pools = new Map<4 | 6, PoolSocket[]>();
  private next = 0;
  private preferred = 0;
  private closed = false;

  constructor(
    readonly endpoints: readonly DnsEndpoint[],
    private readonly timeoutMs = 2000,
  ) {}

  /** The answer for a UDP query (its ID restored), or null when no resolver answered in time. */
  async forwardUdp(msg: Buffer, questionEnd: number): Promise<Buffer | null> {
    const n = this.endpoints.length;
    for (let i = 0; i < n && !this.closed; i++) {
      const idx = (this.preferred + i) % n;
      const answer = await this.udpOnce(this.endpoints[idx]!, msg, questionEnd);
      if (answer) {
        this.preferred = idx;
        return answer;
      }
    }
    return null;
  }

  /** The answer for a TCP query (same ID), or null when no resolver answered in time. */
  async forwardTcp(msg: Buffer): Promise<Buffer | null> {
    const n = this.endpoints.length;
    for (let i = 0; i < n && !this.closed; i++) {
      const idx = (this.preferred + i) % n;
      const answer = await this.tcpOnce(this.endpoints[idx]!, msg);
      if (answer) {
        this.preferred = idx;
        return answer;
      }
    }
    return null;
  }

  private pool(family: 4 | 6): PoolSocket[] {
    let pool = this.pools.get(family);
    if (!pool) {
      pool = [];
      for (let i = 0; i < SOCKETS_PER_FAMILY; i++) {
        const socket = createSocket(family === 4 ? 'udp4' : 'udp6');
        const entry: PoolSocket = { socket, pending: new Map() };
        socket.on('message', (answer, rinfo) => this.onAnswer(entry, answer, rinfo.address, rinfo.port));
        socket.on('error', () => {
          /* a send error surfaces as a timeout of that query */
        });
        // Exclusive: in a cluster worker a plain bind(0) is shared with the other workers (the
        // primary hands every worker's first such socket the same port), and answers to this
        // worker's queries would be read by another, which drops them as unknown.
        socket.bind({ port: 0, exclusive: true });
        socket.unref();
        pool.push(entry);
      }
      this.pools.set(family, pool);
    }
    return pool;
  }

  private udpOnce(endpoint: DnsEndpoint, msg: Buffer, questionEnd: number): Promise<Buffer | null> {
    const pool = this.pool(endpoint.family);
    const entry = pool[this.next++ % pool.length]!;
    if (entry.pending.size >= MAX_PENDING_PER_SOCKET) return Promise.resolve(null);
    let id: number;
    do id = randomInt(0x10000);
    while (entry.pending.has(id));
    const out = Buffer.from(msg);
    out.writeUInt16BE(id, 0);
    return new Promise((resolve) => {
      const done = (answer: Buffer | null): void => {
        clearTimeout(p.timer);
        entry.pending.delete(id);
        resolve(answer);
      };
      const p: Pending = {
        endpoint,
        question: msg.subarray(12, questionEnd),
        originalId: msg.readUInt16BE(0),
        resolve: done,
        timer: setTimeout(() => done(null), this.timeoutMs),
      };
      entry.pending.set(id, p);
      entry.socket.send(out, endpoint.port, endpoint.address, (err) => {
        if (err) done(null);
      });
    });
  }

  private onAnswer(entry: PoolSocket, answer: Buffer, address: string, port: number): void {
    if (answer.length < 12 || !(answer[2]! & 0x80)) return;
    const p = entry.pending.get(answer.readUInt16BE(0));
    if (!p) return;
    if (port !== p.endpoint.port || (unmapIPv4(address) ?? address) !== p.endpoint.address) return;
    const qd = answer.readUInt16BE(4);
    // Error answers (FORMERR, NOTIMP) may come without the question; anything else must echo ours.
    const echoes = qd === 1 && answer.length >= 12 + p.question.length && sameQuestion(answer.subarray(12, 12 + p.question.length), p.question);
    if (!echoes && !(qd === 0 && (answer[3]! & 0x0f) !== 0)) return;
    const relayed = Buffer.from(answer);
    relayed.writeUInt16BE(p.originalId, 0);
    p.resolve(relayed);
  }

  private tcpOnce(endpoint: DnsEndpoint, msg: Buffer): Promise<Buffer | null> {
    return new Promise((resolve) => {
      const socket = connect({ host: endpoint.address, port: endpoint.port });
      let buf = Buffer.alloc(0);
      const finish = (answer: Buffer | null): void => {
        clearTimeout(timer);
        socket.destroy();
        resolve(answer);
      };
      const timer = setTimeout(() => finish(null), this.timeoutMs * 2);
      socket.on('error', () => finish(null));
      socket.on('close', () => finish(null));
      socket.on('connect', () => {
        const len = Buffer.alloc(2);
        len.writeUInt16BE(msg.length);
        socket.write(Buffer.concat([len, msg]));
      });
      socket.on('data', (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) finish(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      });
    });
  }

  /** Ends every pending query (as unanswered) and closes the sockets. */
  close(): void {
    this.closed = true;
    for (const pool of this.pools.values()) {
      for (const entry of pool) {
        for (const p of entry.pending.values()) p.resolve(null);
        entry.socket.close();
      }
    }
    this.pools.clear();
  }
}
