/**
 * Name resolution for pullthrough's own upstream connections. When a node's resolver is hijacked
 * to answer registry names with pullthrough's address, the system resolver would send pullthrough
 * to itself; this lookup asks `dns.forwarders` directly instead (dns.Resolver, no /etc/hosts), and
 * uses the system resolver only when no forwarders are configured.
 */
import { lookup as systemLookup, promises as dnsPromises, type LookupAddress } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import type { Config } from '../config/index.js';
import { formatDnsEndpoint, parseDnsEndpoint } from '../net/dns-endpoints.js';

/** Answers are kept at most this long, and at least this long, whatever their TTL says. */
const MAX_TTL_S = 300;
const MIN_TTL_S = 1;
const MAX_ENTRIES = 1000;

interface Cached {
  expires: number;
  addresses: LookupAddress[];
}

/** The `lookup` option of net.connect / tls.connect / undici's `connect`. */
export type UpstreamLookup = LookupFunction;

function notFound(hostname: string, code = 'ENOTFOUND'): NodeJS.ErrnoException {
  return Object.assign(new Error(`getaddrinfo ${code} ${hostname}`), { code, hostname, syscall: 'getaddrinfo' });
}

function wantedFamily(options: unknown): 0 | 4 | 6 {
  const f = typeof options === 'number' ? options : (options as { family?: unknown } | undefined)?.family;
  if (f === 4 || f === 'IPv4') return 4;
  if (f === 6 || f === 'IPv6') return 6;
  return 0;
}

/**
 * A lookup function resolving through `dns.forwarders` (cached by TTL, at most 300 s), or the
 * system's `dns.lookup` when none are set. `localhost` names resolve to loopback without asking.
 * Errors reach the callback with getaddrinfo-like codes (ENOTFOUND, ETIMEOUT, ECONNREFUSED, …).
 * @throws DnsEndpointError (synchronously) for a malformed dns.forwarders entry.
 */
export function createUpstreamLookup(config: Pick<Config, 'dns'>): UpstreamLookup {
  if (config.dns.forwarders.length === 0) return systemLookup as unknown as UpstreamLookup;
  const resolver = new dnsPromises.Resolver({ timeout: 2000, tries: 2 });
  resolver.setServers(config.dns.forwarders.map((f) => formatDnsEndpoint(parseDnsEndpoint(f))));
  const cache = new Map<string, Cached>();
  const inflight = new Map<string, Promise<LookupAddress[]>>();

  const resolveFamily = async (hostname: string, family: 4 | 6): Promise<{ list: LookupAddress[]; ttl: number }> => {
    const records = family === 4 ? await resolver.resolve4(hostname, { ttl: true }) : await resolver.resolve6(hostname, { ttl: true });
    return { list: records.map((r) => ({ address: r.address, family })), ttl: Math.min(...records.map((r) => r.ttl)) };
  };

  const resolve = async (hostname: string, family: 0 | 4 | 6): Promise<LookupAddress[]> => {
    const key = `${family}/${hostname}`;
    const hit = cache.get(key);
    if (hit && hit.expires > Date.now()) return hit.addresses;
    const families: Array<4 | 6> = family === 0 ? [4, 6] : [family];
    const results = await Promise.allSettled(families.map((f) => resolveFamily(hostname, f)));
    const ok = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const addresses = ok.flatMap((r) => r.list);
    if (addresses.length === 0) {
      const err = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')?.reason as NodeJS.ErrnoException | undefined;
      // No records of the asked family is "not found" to a connecting client.
      throw notFound(hostname, err?.code && err.code !== 'ENODATA' ? err.code : 'ENOTFOUND');
    }
    const ttl = Math.max(MIN_TTL_S, Math.min(MAX_TTL_S, ...ok.map((r) => r.ttl)));
    if (cache.size >= MAX_ENTRIES) cache.delete(cache.keys().next().value!);
    cache.set(key, { expires: Date.now() + ttl * 1000, addresses });
    return addresses;
  };

  const lookup = (hostname: string, options: unknown, callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void): void => {
    const family = wantedFamily(options);
    const all = typeof options === 'object' && options !== null && (options as { all?: boolean }).all === true;
    const reply = (list: LookupAddress[]): void => {
      if (all) callback(null, list);
      else callback(null, list[0]!.address, list[0]!.family);
    };
    const literal = isIP(hostname);
    if (literal) return process.nextTick(reply, [{ address: hostname, family: literal }]);
    const name = hostname.toLowerCase().replace(/\.$/, '');
    // RFC 6761: localhost is loopback, never a question for a resolver.
    if (name === 'localhost' || name.endsWith('.localhost')) {
      const loop: LookupAddress[] = [{ address: '127.0.0.1', family: 4 }, { address: '::1', family: 6 }];
      return process.nextTick(reply, loop.filter((a) => family === 0 || a.family === family));
    }
    const key = `${family}/${name}`;
    let p = inflight.get(key);
    if (!p) {
      p = resolve(name, family).finally(() => inflight.delete(key));
      inflight.set(key, p);
    }
    // Callbacks run outside the promise chain so a throwing caller is not turned into a rejection.
    p.then(
      (list) => process.nextTick(reply, list),
      (err: NodeJS.ErrnoException) => process.nextTick(callback, err, all ? [] : '', 0),
    );
  };
  return lookup as unknown as UpstreamLookup;
}
