/**
 * Which resolvers pullthrough asks: `dns.forwarders`, or the system's from /etc/resolv.conf.
 * Never pullthrough's own DNS door, which would loop a query back to itself.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Config } from '../config/index.js';
import { unmapIPv4 } from './ip-bytes.js';
import { PullthroughError } from '../util/errors.js';

/** A resolver's address. */
export interface DnsEndpoint {
  address: string;
  port: number;
  family: 4 | 6;
}

/** A bad resolver address in the configuration. */
export class DnsEndpointError extends PullthroughError {
  readonly code = 'ERR_DNS_ENDPOINT';
  constructor(message: string) {
    super(message);
    this.name = 'DnsEndpointError';
  }
}

/**
 * Parses `1.1.1.1`, `1.1.1.1:53`, `2606:4700::1111` or `[2606:4700::1111]:53` (port 53 by default).
 * @throws DnsEndpointError for a host name or anything else that is not an IP with an optional port.
 */
export function parseDnsEndpoint(s: string): DnsEndpoint {
  const text = s.trim();
  let address = text;
  let port = 53;
  const bracketed = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(text);
  const v4port = /^([\d.]+):(\d{1,5})$/.exec(text);
  if (bracketed) {
    address = bracketed[1]!;
    if (bracketed[2]) port = Number(bracketed[2]);
  } else if (v4port) {
    address = v4port[1]!;
    port = Number(v4port[2]);
  }
  const family = isIP(address);
  if (!family || port < 1 || port > 65535) throw new DnsEndpointError(`dns.forwarders: not an IP address with an optional port: ${JSON.stringify(s)}`);
  // The canonical IPv6 form, as sockets report peers, so answers can be matched to the resolver.
  if (family === 6) address = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  return { address, port, family: family as 4 | 6 };
}

/** `1.1.1.1:53` or `[::1]:53`, the form dns.Resolver#setServers takes. */
export function formatDnsEndpoint(e: DnsEndpoint): string {
  return e.family === 6 ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

/** The `nameserver` entries of a resolv.conf (missing file: none). */
export function systemNameservers(resolvConf = '/etc/resolv.conf'): DnsEndpoint[] {
  let text: string;
  try {
    text = readFileSync(resolvConf, 'utf8');
  } catch {
    return [];
  }
  const out: DnsEndpoint[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (!m) continue;
    const address = m[1]!.split('%')[0]!;
    const family = isIP(address);
    if (family) out.push({ address, port: 53, family: family as 4 | 6 });
  }
  return out;
}

/** Addresses of this machine's interfaces (what a wildcard listener answers on). */
function localAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) out.add(a.address);
  return out;
}

/**
 * Whether a resolver at `e` would be pullthrough's own DNS door: the door's address and port (any
 * local address when it listens on a wildcard), or an address from dns.answer (where clients
 * reach pullthrough) on port 53 or the door's port.
 */
export function isOwnDnsDoor(config: Pick<Config, 'listen' | 'dns'>, e: DnsEndpoint, locals: Set<string> = localAddresses()): boolean {
  const addr = unmapIPv4(e.address) ?? e.address;
  const listen = config.listen.dns;
  // Clients reach the door at an answer address on port 53 (or the door's port, without NAT).
  if (config.dns.answer.includes(addr) && (e.port === 53 || e.port === listen?.port)) return true;
  if (!listen || e.port !== listen.port) return false;
  const host = listen.host === 'localhost' ? '127.0.0.1' : listen.host;
  if (host === '0.0.0.0' || host === '::') return locals.has(addr) || addr.startsWith('127.');
  return addr === host;
}

/**
 * The resolvers the DNS door forwards to: dns.forwarders when set, else the system's minus
 * pullthrough's own door.
 * @throws DnsEndpointError for a malformed entry, or one that is pullthrough's own DNS door.
 */
export function doorForwarders(config: Pick<Config, 'listen' | 'dns'>, resolvConf?: string): DnsEndpoint[] {
  if (config.dns.forwarders.length > 0) {
    const list = config.dns.forwarders.map(parseDnsEndpoint);
    for (const e of list) {
      if (isOwnDnsDoor(config, e)) throw new DnsEndpointError(`dns.forwarders: ${formatDnsEndpoint(e)} is pullthrough's own DNS door; queries would loop`);
    }
    return list;
  }
  return systemNameservers(resolvConf).filter((e) => !isOwnDnsDoor(config, e));
}
