/**
 * Public registries pullthrough answers for out of the box. Entries in the config file are merged
 * over these (`null` removes one); every one of them is reachable only as configured here, so
 * pullthrough never relays to an arbitrary host.
 */
export const BUILTIN_REGISTRIES: Readonly<Record<string, { upstream: string; aliases?: string[] }>> = {
  'docker.io': { upstream: 'https://registry-1.docker.io', aliases: ['registry-1.docker.io', 'index.docker.io'] },
  'quay.io': { upstream: 'https://quay.io' },
  'ghcr.io': { upstream: 'https://ghcr.io' },
  'registry.k8s.io': { upstream: 'https://registry.k8s.io' },
  'k8s.gcr.io': { upstream: 'https://k8s.gcr.io' },
  'gcr.io': { upstream: 'https://gcr.io' },
  'mcr.microsoft.com': { upstream: 'https://mcr.microsoft.com' },
  'public.ecr.aws': { upstream: 'https://public.ecr.aws' },
  'registry.gitlab.com': { upstream: 'https://registry.gitlab.com' },
};
