/**
 * What the CONNECT door does with a target: intercept it (a served name on its port, TLS ends in
 * pullthrough), tunnel it (matches proxy.tunnel and resolves only to public addresses, unless
 * proxy.allowPrivate), or refuse it. Never an open proxy: no glob, no tunnel.
 */
import { isIP, type LookupFunction } from 'node:net';
import type { LookupAddress } from 'node:dns';
import type { Config } from '../config/index.js';
import { servedNames, type NamesSettings, type ServedName } from '../config/served-names.js';
import { isSpecialAddress } from '../net/special-addresses.js';

export type TunnelDecision =
  | { action: 'intercept'; name: ServedName }
  | { action: 'tunnel'; address: string; family: number }
  | { action: 'refuse'; status: 403 | 502; reason: string };

interface Rule {
  host: RegExp;
  /** A port, or null for "any port". */
  port: number | null;
}

/**
 * proxy.tunnel entries: `host-glob` (port 443), `host-glob:port` or `host-glob:*`. `*` matches any
 * run of characters, dots included, so `*.example.com` covers every subdomain but not example.com.
 * @throws TypeError for a malformed port.
 */
export function compileTunnelRules(globs: readonly string[]): Rule[] {
  return globs.map((g) => {
    const m = /^(.*?)(?::(\d{1,5}|\*))?$/.exec(g.trim().toLowerCase())!;
    const hostGlob = m[1]!;
    const port = m[2] === undefined ? 443 : m[2] === '*' ? null : Number(m[2]);
    if (!hostGlob || (port !== null && (port < 1 || port > 65535))) throw new TypeError(`proxy.tunnel: not a host glob with an optional port: ${g}`);
    const source = hostGlob.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*');
    return { host: new RegExp(`^${source}$`), port };
  });
}

/** What {@link TunnelPolicy} reads: `proxy.*` and the served names. */
export type TunnelPolicySettings = Pick<Config, 'proxy'> & NamesSettings;

export class TunnelPolicy {
  private readonly served: Map<string, ServedName>;
  private readonly rules: Rule[];
  private readonly allowPrivate: boolean;

  /** @throws TypeError for a malformed proxy.tunnel entry. */
  constructor(config: TunnelPolicySettings, private readonly lookup: LookupFunction) {
    this.served = servedNames(config);
    this.rules = compileTunnelRules(config.proxy.tunnel);
    this.allowPrivate = config.proxy.allowPrivate;
  }

  /** Decides for a normalized host (lowercase, no brackets) and port. Never throws. */
  async decide(host: string, port: number): Promise<TunnelDecision> {
    const name = this.served.get(host);
    if (name) {
      if (port === name.port) return { action: 'intercept', name };
      return { action: 'refuse', status: 403, reason: `${host} is served by pullthrough on port ${name.port} only` };
    }
    if (!this.rules.some((r) => r.host.test(host) && (r.port === null || r.port === port))) {
      return { action: 'refuse', status: 403, reason: `tunnels to ${host}:${port} are not allowed (proxy.tunnel)` };
    }
    let addresses: LookupAddress[];
    const family = isIP(host);
    if (family) addresses = [{ address: host, family }];
    else {
      try {
        addresses = await new Promise<LookupAddress[]>((resolve, reject) => {
          this.lookup(host, { all: true }, (err, list) => (err ? reject(err) : resolve(list as unknown as LookupAddress[])));
        });
      } catch (err) {
        return { action: 'refuse', status: 502, reason: `cannot resolve ${host}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
      }
      if (addresses.length === 0) return { action: 'refuse', status: 502, reason: `cannot resolve ${host}` };
    }
    // Every address is checked, so a name that also resolves to a private address is refused
    // (DNS rebinding); the connection then goes to the checked address, never a fresh lookup.
    if (!this.allowPrivate && addresses.some((a) => isSpecialAddress(a.address))) {
      return { action: 'refuse', status: 403, reason: `${host} resolves to a private, loopback or link-local address` };
    }
    return { action: 'tunnel', address: addresses[0]!.address, family: addresses[0]!.family };
  }
}
