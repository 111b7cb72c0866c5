/**
 * Builds the repository's Dockerfile on a private dockerd without Docker Hub: the base images
 * come from test/setup/base-images.sh (Debian minbase + Node from the npm registry, cached under
 * /var/cache/pullthrough-test), the build uses the legacy builder with the host's network (npm
 * inside it reaches the registry as the host does). The daemon's data-root is kept in the same
 * cache, so a second run reuses the imported bases and the build's unchanged layers; what a build
 * leaves behind is removed by the next one (see buildImage), so the cache stays the size of one
 * build instead of growing by every run (it had reached 63 GB on a development machine).
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
  // Bases imported from earlier inputs (another Node.js version, another CA bundle) go, with
  // every image built on them; removing a tag does not remove an image still in use.
  for (const repoName of ['pullthrough-test/node', 'pullthrough-test/build']) {
    const listed = await docker.docker(['images', '--format', '{{.Repository}}:{{.Tag}}', repoName]);
    const stale = listed.stdout.split('\n').filter((ref) => ref && !Object.values(names).includes(ref));
    if (stale.length > 0) await docker.docker(['rmi', ...stale]);
  }
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
  if (b.code !== 0) throw new Error(`docker build failed:\n${b.stdout.slice(-6000)}\n${b.stderr.slice(-3000)}`);
  await dropEarlierBuilds(docker, b.stdout);
}

/**
 * Removes the untagged images earlier builds left: each build moves the tags to its own image, and
 * the one they left (with its layers: the dependencies and the compiled code, ~100 MB and more)
 * stays behind untagged, as do the tips of earlier build stages. This build's own images, cached
 * or new, are the ids the legacy builder printed (` ---> <id>` after each step); they are kept,
 * so the next run's unchanged steps still come from the cache.
 */
async function dropEarlierBuilds(docker: Dockerd, buildLog: string): Promise<void> {
  const ours = new Set([...buildLog.matchAll(/^ ---> ([0-9a-f]{12})\s*$/gm)].map((m) => m[1]));
  const dangling = await docker.docker(['images', '--quiet', '--filter', 'dangling=true']);
  const stale = [...new Set(dangling.stdout.split('\n').filter((id) => id && !ours.has(id)))];
  // An image another one still builds on is refused by rmi and kept: best effort, never a failure.
  if (stale.length > 0) await docker.docker(['rmi', ...stale]);
}

/** An image's size in bytes (its layers, base included). */
export async function imageSize(docker: Dockerd, ref: string): Promise<number> {
  const r = await docker.docker(['image', 'inspect', '--format', '{{.Size}}', ref]);
  if (r.code !== 0) throw new Error(`docker image inspect ${ref}: ${r.stderr}`);
  return Number(r.stdout.trim());
}
