import { isIP } from 'node:net';
import type { Config } from './schema.js';
import { normalizeHost } from '../net/host-port.js';

/** A name pullthrough answers for in place of the real host, and the port its clients use. */
export interface ServedName {
  /** Lowercase host name or IP, without port. */
  host: string;
  /** The registry this name belongs to; null for extra names (pullthrough's own). */
  registry: string | null;
  /** The port a client dials for this name: 443, or the port in a `host:port` registry name. */
  port: number;
}

/** What {@link servedNames} and {@link hijackedNames} read. */
export type NamesSettings = Pick<Config, 'registries' | 'tls' | 'publicUrl'>;

/**
 * Every name the doors stand in for: registry names and aliases (a `host:port` name counts as its
 * host, reached on that port), then `tls.extraNames` and the host of `publicUrl`. These and only
 * these get a certificate, a hijacked DNS answer, and CONNECT interception.
 */
export function servedNames(config: NamesSettings): Map<string, ServedName> {
  const out = new Map<string, ServedName>();
  const add = (raw: string, registry: string | null): void => {
    const m = /^(.*?)(?::(\d+))?$/.exec(raw)!;
    const host = normalizeHost(isIP(raw) === 6 ? raw : m[1]!);
    const port = isIP(raw) === 6 || m[2] === undefined ? 443 : Number(m[2]);
    if (host && !out.has(host)) out.set(host, { host, registry, port });
  };
  for (const r of Object.values(config.registries)) {
    add(r.name, r.name);
    for (const a of r.aliases) add(a, r.name);
  }
  for (const n of config.tls.extraNames ?? []) add(n, null);
  if (config.publicUrl) add(normalizeHost(new URL(config.publicUrl).hostname), null);
  return out;
}

/**
 * The DNS names a hijack (DNS door, CoreDNS, /etc/hosts) covers: registry names, aliases and extra
 * names that clients reach on 443, where the TLS door stands in for them. Never IPs, and never a
 * `host:port` registry (clients would dial that port, where nothing of pullthrough's listens; the
 * CONNECT door and mirror configuration serve those). Sorted for stable output.
 */
export function hijackedNames(config: NamesSettings): string[] {
  return [...servedNames(config).values()].filter((n) => !isIP(n.host) && n.port === 443).map((n) => n.host).sort();
}
