/**
 * A tiny authoritative resolver on loopback (dns2, UDP and TCP on one port), standing in for the
 * resolvers pullthrough forwards to. It answers A/AAAA from a fixed zone, NXDOMAIN otherwise, and
 * counts the queries it saw.
 */
import dns2 from 'dns2';
import { freePort } from './process.js';

const { Packet } = dns2;

export interface TestResolver {
  port: number;
  /** Queries received, by lowercased name. */
  seen: Map<string, number>;
  close(): Promise<void>;
}

/** Starts a resolver for `zone` (name → addresses; IPv4 become A, IPv6 AAAA) on 127.0.0.1. */
export async function startTestResolver(zone: Record<string, string[]>, ttl = 30): Promise<TestResolver> {
  const seen = new Map<string, number>();
  const server = dns2.createServer({
    udp: true,
    tcp: true,
    handle: (request, send) => {
      const response = Packet.createResponseFromRequest(request);
      const [q] = request.questions;
      if (!q) return void send(response);
      const name = q.name.toLowerCase();
      seen.set(name, (seen.get(name) ?? 0) + 1);
      const addrs = zone[name];
      if (!addrs) response.header.rcode = 3; // NXDOMAIN
      for (const address of addrs ?? []) {
        const type = address.includes(':') ? Packet.TYPE.AAAA : Packet.TYPE.A;
        if (q.type === type) response.answers.push({ name: q.name, type, class: Packet.CLASS.IN, ttl, address } as never);
      }
      void send(response);
    },
  });
  server.on('requestError', () => {});
  const port = await freePort();
  // dns2's listen() never rejects; a bind error arrives as an 'error' event.
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ udp: { port, address: '127.0.0.1' }, tcp: { port, address: '127.0.0.1' } }).then(() => resolve(), reject);
  });
  // A production resolver reads with a big socket buffer (unbound's so-rcvbuf); dgram's default
  // holds ~250 small datagrams, and a burst of forwarded queries would overflow it.
  (server as unknown as { servers: { udp: { setRecvBufferSize(n: number): void } } }).servers.udp.setRecvBufferSize(4 << 20);
  return { port, seen, close: () => server.close() };
}
