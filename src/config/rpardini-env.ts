/**
 * Compatibility with rpardini/docker-registry-proxy's environment variables, so its users can
 * switch without rewriting their deployment. Each variable is translated into the YAML shape and
 * merged over the file's values.
 */

type Raw = Record<string, unknown>;
type Env = Readonly<Record<string, string | undefined>>;

// rpardini's own defaults for its manifest cache tiers (from its Dockerfile).
const PRIMARY_REGEX = '(stable|nightly|production|test)';
const SECONDARY_REGEX = '(.*)(\\d|\\.)+(.*)(\\d|\\.)+(.*)(\\d|\\.)+';

/** Applies the rpardini variables present in `env` to the raw config `raw` (mutated). Returns problems found. */
export function applyRpardiniEnv(raw: Raw, env: Env, registryNames: () => Set<string>, origin: Map<string, string>): string[] {
  const problems: string[] = [];
  const registries = ((raw.registries ??= {}) as Raw);

  if (env.REGISTRIES?.trim()) {
    for (const name of env.REGISTRIES.trim().split(/\s+/)) {
      if (!registryNames().has(name)) registries[name] = { upstream: `https://${name}` };
    }
  }

  if (env.AUTH_REGISTRIES?.trim()) {
    const between = env.AUTH_REGISTRIES_DELIMITER || ' ';
    const within = env.AUTH_REGISTRY_DELIMITER || ':';
    const entries = env.AUTH_REGISTRIES.split(between).map((e) => e.trim()).filter(Boolean);
    entries.forEach((entry, i) => {
      const a = entry.indexOf(within);
      const b = a < 0 ? -1 : entry.indexOf(within, a + within.length);
      if (a <= 0 || b < 0) {
        // Never echo the entry: it holds a password.
        problems.push(`AUTH_REGISTRIES entry ${i + 1}: expected hostname${within}username${within}password`);
        return;
      }
      const host = entry.slice(0, a);
      const username = entry.slice(a + within.length, b);
      const password = entry.slice(b + within.length);
      const known = registryNames();
      if (known.has(host)) {
        const cur = (registries[host] as Raw | null | undefined) ?? {};
        const chain = cur.upstreams;
        if (Array.isArray(chain) && chain.length > 0 && typeof chain[0] === 'object' && chain[0] !== null) {
          // A chain: the credentials are for the registry itself, its first entry (never a mirror's).
          registries[host] = { ...cur, upstreams: [{ ...(chain[0] as Raw), username, password }, ...chain.slice(1)] };
        } else {
          registries[host] = { ...cur, username, password };
        }
      } else {
        // auth.docker.io, a GitLab host, …: used when an upstream's token realm is on this host.
        const authHosts = ((raw.authHosts ??= {}) as Raw);
        authHosts[host] = { username, password };
      }
    });
  }

  if (env.ENABLE_MANIFEST_CACHE?.trim().toLowerCase() === 'true') {
    const cache = ((raw.cache ??= {}) as Raw);
    // nginx matched these right after /manifests/ with an open end; rules match whole tags, hence the .*
    cache.tags = [
      { match: `(?:${env.MANIFEST_CACHE_PRIMARY_REGEX || PRIMARY_REGEX}).*`, revalidate: env.MANIFEST_CACHE_PRIMARY_TIME || '10m' },
      { match: `(?:${env.MANIFEST_CACHE_SECONDARY_REGEX || SECONDARY_REGEX}).*`, revalidate: env.MANIFEST_CACHE_SECONDARY_TIME || '60d' },
      { match: '.*', revalidate: env.MANIFEST_CACHE_DEFAULT_TIME || '1h' },
    ];
    for (const [i, v] of ['PRIMARY', 'SECONDARY', 'DEFAULT'].entries()) {
      origin.set(`cache.tags.${i}.revalidate`, `MANIFEST_CACHE_${v}_TIME`);
      origin.set(`cache.tags.${i}.match`, `MANIFEST_CACHE_${v}_REGEX`);
    }
  }

  if (env.CACHE_MAX_SIZE?.trim()) {
    ((raw.cache ??= {}) as Raw).maxSize = env.CACHE_MAX_SIZE.trim();
    origin.set('cache.maxSize', 'CACHE_MAX_SIZE');
  }
  return problems;
}
