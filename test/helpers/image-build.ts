/**
 * Builds the repository's Dockerfile on a private dockerd without Docker Hub: the base images
 * come from test/setup/base-images.sh (Debian minbase + Node from the npm registry, cached under
 * /var/cache/pullthrough-test), the build uses the legacy builder with the host's network (npm
 * inside it reaches the registry as the host does). The daemon's data-root is kept in the same
 * cache, so a second run reuses the imported bases and the build's unchanged layers.
 */
import { mkdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { startDockerd, type Dockerd } from './clients.js';
import { run } from './process.js';

export const IMAGE_CACHE = process.env.PULLTHROUGH_IMAGE_CACHE ?? '/var/cache/pullthrough-test';

/** A dockerd whose data-root persists in {@link IMAGE_CACHE}. */
export async function startCachedDockerd(): Promise<Dockerd> {
  const dataRoot = join(IMAGE_CACHE, 'docker');
  await mkdir(dataRoot, { recursive: true });
  return startDockerd({ dataRoot });
}

/** The base images, imported into `docker` unless they are there already. */
export async function baseImages(repo: string, docker: Dockerd): Promise<{ node: string; build: string }> {
  const r = await run('bash', [join(repo, 'test/setup/base-images.sh')], { timeoutMs: 30 * 60_000 });
  const dir = r.stdout.trim().split('\n').pop()!;
  const key = basename(dir).replace(/^base-/, '');
  const names = { node: `pullthrough-test/node:${key}`, build: `pullthrough-test/build:${key}` };
  for (const [kind, name] of Object.entries(names)) {
    if ((await docker.docker(['image', 'inspect', name])).code === 0) continue;
    const tar = join(dir, kind === 'node' ? 'runtime.tar' : 'build.tar');
    const imp = await docker.docker(['import', '--change', 'CMD ["node"]', tar, name], { timeoutMs: 10 * 60_000 });
    if (imp.code !== 0) throw new Error(`docker import ${tar}: ${imp.stderr}`);
  }
  return names;
}

/** `docker build` of the repository's Dockerfile, tagged `tags`; throws with the build log. */
export async function buildImage(repo: string, docker: Dockerd, bases: { node: string; build: string }, tags: string[]): Promise<void> {
  const b = await docker.docker(
    ['build', '--network', 'host', '--build-arg', `NODE_IMAGE=${bases.node}`, '--build-arg', `BUILD_IMAGE=${bases.build}`, ...tags.flatMap((t) => ['-t', t]), repo],
    { timeoutMs: 40 * 60_000 },
  );
  // No prune afterwards: the untagged tips of the build stages are the layer cache of the next run.
  if (b.code !== 0) throw new Error(`docker build failed:\n${b.stdout.slice(-6000)}\n${b.stderr.slice(-3000)}`);
}

/** An image's size in bytes (its layers, base included). */
export async function imageSize(docker: Dockerd, ref: string): Promise<number> {
  const r = await docker.docker(['image', 'inspect', '--format', '{{.Size}}', ref]);
  if (r.code !== 0) throw new Error(`docker image inspect ${ref}: ${r.stderr}`);
  return Number(r.stdout.trim());
}
