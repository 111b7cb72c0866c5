import type { Config, RegistryConfig } from '../config/index.js';
import { OciError } from '../oci/errors.js';
import { assertRepositoryName } from '../oci/reference.js';
import { servedNames, type NamesSettings, type ServedName } from '../config/served-names.js';
import { formatHostPort, parseHostPort } from '../net/host-port.js';

const HOST = /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?$/;

/** Registry names and aliases → registry, built once per config. */
export class RegistryIndex {
  private readonly byHost = new Map<string, RegistryConfig>();

  constructor(readonly config: Pick<Config, 'registries' | 'defaultRegistry'>) {
    for (const r of Object.values(config.registries)) {
      for (const h of [r.name, ...r.aliases]) this.byHost.set(h.toLowerCase(), r);
    }
  }

  /** The registry a host name (with or without port) is a name or alias of. */
  lookup(host: string | undefined): RegistryConfig | undefined {
    if (!host) return undefined;
    const h = host.toLowerCase();
    const direct = this.byHost.get(h) ?? this.byHost.get(h.replace(/:443$/, ''));
    if (direct) return direct;
    // `Quay.IO.:443` and the like: the name normalized, the port only when it is not 443.
    const hp = parseHostPort(host, 443);
    return hp ? this.byHost.get(hp.port === 443 ? hp.host : formatHostPort(hp.host, hp.port)) : undefined;
  }

  /** Every configured name and alias. */
  hosts(): string[] {
    return [...this.byHost.keys()];
  }
}

/** The upstream registry and repository a request is for. */
export interface ResolvedTarget {
  readonly registry: RegistryConfig;
  readonly repo: string;
}

/**
 * Picks the upstream for a /v2 request (README "Choosing the upstream"):
 * 1. the Host is a configured registry name (DNS-hijack and CONNECT doors);
 * 2. `?ns=<registry>` (containerd mirrors);
 * 3. a first path component naming a configured registry (`/v2/quay.io/org/app/…`);
 * 4. else `defaultRegistry`. One-part docker.io names get `library/`.
 * @throws OciError DENIED for a registry that is not configured (never an open relay),
 *   NAME_INVALID for a bad repository name.
 */
export function resolveTarget(index: RegistryIndex, host: string | undefined, ns: string | undefined, name: string): ResolvedTarget {
  let registry = index.lookup(host);
  let repo = name;
  if (!registry && ns !== undefined) {
    registry = index.lookup(ns);
    if (!registry) throw notConfigured(ns);
  }
  if (!registry) {
    const slash = name.indexOf('/');
    const first = slash > 0 ? name.slice(0, slash) : '';
    // Only something shaped like a host name is a registry prefix; anything else is part of the
    // repository name and gets the name check (so `..%2f` is NAME_INVALID, not a registry).
    if (HOST.test(first) && (first.includes('.') || first.includes(':') || first === 'localhost')) {
      registry = index.lookup(first);
      if (!registry) throw notConfigured(first);
      repo = name.slice(slash + 1);
    }
  }
  registry ??= index.lookup(index.config.defaultRegistry)!;
  assertRepositoryName(repo);
  if (registry.name === 'docker.io' && !repo.includes('/')) repo = `library/${repo}`;
  return { registry, repo };
}

function notConfigured(host: string): OciError {
  return new OciError('DENIED', `registry ${host.slice(0, 255)} is not configured in pullthrough`, { registry: host.slice(0, 255) });
}

/**
 * Which Hosts the TLS and CONNECT doors answer /v2 requests for (docs/upstream-policy.md): a
 * registry name or alias on the port it is served on (a Host without a port means 443, so
 * `quay.io` and `quay.io:443` are the same; `registry.local:5000` only with `:5000`), or one of
 * pullthrough's own names (`tls.extraNames`, the host of `publicUrl`) on any port, which route like
 * the mirror. On TLS the Host must also name what the client's SNI named, when it sent one: the
 * certificate it checked is the registry it meant. Anything else would otherwise fall through to
 * `defaultRegistry`.
 */
export class DoorHosts {
  private readonly served: Map<string, ServedName>;

  constructor(config: NamesSettings) {
    this.served = servedNames(config);
  }

  /**
   * @param sni the TLS server name the client sent (undefined: none, or not TLS)
   * @throws OciError DENIED naming the Host when pullthrough does not serve it.
   */
  check(host: string | undefined, sni: string | undefined): void {
    const raw = (host ?? '').slice(0, 300);
    const hp = parseHostPort(raw, 443);
    const name = hp ? this.served.get(hp.host) : undefined;
    if (!hp || !name) throw new OciError('DENIED', `pullthrough does not serve ${raw || 'requests without a Host'} here`, { host: raw });
    if (name.registry !== null && hp.port !== name.port) {
      throw new OciError('DENIED', `registry ${name.registry} is served on port ${name.port}, not ${hp.port}`, { host: raw, registry: name.registry });
    }
    if (sni && parseHostPort(sni, 443)?.host !== hp.host) {
      throw new OciError('DENIED', `Host ${raw} does not match the TLS server name ${sni.slice(0, 253)}`, { host: raw, servername: sni.slice(0, 253) });
    }
  }
}
