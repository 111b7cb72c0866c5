import type { Config, RegistryConfig } from '../config/index.js';
import { OciError } from '../oci/errors.js';
import { assertRepositoryName } from '../oci/reference.js';

const HOST = /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?$/;

/** Registry names and aliases → registry, built once per config. */
export class RegistryIndex {
  private readonly byHost = new Map<string, RegistryConfig>();

  constructor(readonly config: Config) {
    for (const r of Object.values(config.registries)) {
      for (const h of [r.name, ...r.aliases]) this.byHost.set(h.toLowerCase(), r);
    }
  }

  /** The registry a host name (with or without port) is a name or alias of. */
  lookup(host: string | undefined): RegistryConfig | undefined {
    if (!host) return undefined;
    const h = host.toLowerCase();
    return this.byHost.get(h) ?? this.byHost.get(h.replace(/:443$/, '')) ?? undefined;
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
