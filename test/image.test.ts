/**
 * The container image, run exactly as deploy/kubernetes says: build the repository's Dockerfile
 * (base images made offline from Debian packages and the npm registry), render the kustomization
 * with kubectl, and start the image with the rendered Deployment's user, groups, capabilities
 * (all dropped), no-new-privileges, read-only root, volumes, ports, environment and probes.
 * Then pull through it with skopeo on the mirror door and on the TLS door, and stop it with
 * SIGTERM within the pod's grace period.
 *
 * The pod's network is its own, as in a cluster: the container runs with `--network none` (only its
 * loopback), and relays over Unix sockets stand in for the cluster network: the Secret's Redis
 * Service name and an S3 endpoint lead to a real redis-server and s3rver on the host, the upstream
 * registry (Debian's docker-registry) keeps its 127.0.0.1 address, and the container's ports are
 * reached from the host through relays, as a Service would reach them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parse, stringify } from 'yaml';
import { startUpstreamRegistry } from './helpers/upstream-registry.js';
import { makeImage, pushImage } from './helpers/images.js';
import { readDirLayout, skopeoCopy } from './helpers/clients.js';
import { startRedis } from './helpers/redis-server.js';
import { startS3rver } from './helpers/s3-server.js';
import { freePort, startProcess, tempDir } from './helpers/process.js';
import { LAUNCH_ENV, NODE_FLAGS } from './helpers/pullthrough.js';
import { hijack, randomLoopback } from './helpers/hijack.js';
import { relay, type Relay } from './helpers/socket-relay.js';
import { baseImages, buildImage, imageSize, startCachedDockerd } from './helpers/image-build.js';
import { containerEnv, findObject, podRunArgs, renderKustomization, type KubeObject } from './helpers/kube-pod.js';

const ROOT = resolve(import.meta.dirname, '../..');
const RELAY_MAIN = join(import.meta.dirname, 'helpers/socket-relay.js');
// The registry the test adds to the ConfigMap's configuration: the upstream it caches.
const REGISTRY = 'registry.test';

async function until<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

test('the image runs as deploy/kubernetes says (restricted profile) and serves pulls on the mirror and TLS doors', { timeout: 45 * 60_000 }, async (t) => {
  // Render first: a manifest the image cannot honour fails here, before the slow build.
  const objs = await renderKustomization(join(ROOT, 'deploy/kubernetes'));
  const deploy = findObject(objs, 'Deployment', 'pullthrough');
  const service = findObject(objs, 'Service', 'pullthrough');
  const configMap = findObject(objs, 'ConfigMap', 'pullthrough-config');
  const pod = deploy.spec.template.spec as KubeObject;
  const c = pod.containers[0] as KubeObject;
  // Cleanups run last-in first-out: the container goes before its daemon, relays before servers.
  const cleanups: Array<() => Promise<unknown>> = [];
  const later = (fn: () => Promise<unknown>): void => {
    cleanups.push(fn);
  };
  t.after(async () => {
    for (const fn of cleanups.reverse()) await fn().catch((err: Error) => t.diagnostic(`cleanup: ${err.message}`));
  });

  const docker = await startCachedDockerd();
  later(() => docker.stop());
  const bases = await baseImages(ROOT, docker);
  // Tagged as the Deployment names it, so the run below uses `c.image` unchanged.
  await buildImage(ROOT, docker, bases, [c.image, 'pullthrough:test']);
  const size = await imageSize(docker, c.image);
  const baseSize = await imageSize(docker, bases.node);
  t.diagnostic(`image ${c.image}: ${(size / 1e6).toFixed(1)} MB, ${((size - baseSize) / 1e6).toFixed(1)} MB over its base (${(baseSize / 1e6).toFixed(1)} MB)`);
  // pullthrough adds its code and production dependencies; no second copy of the node binary
  // (a setcap layer copied all ~120 MB of it).
  assert.ok(size - baseSize < 100e6, `image adds ${size - baseSize} bytes over its base`);

  // The real parts the pod talks to.
  const up = await startUpstreamRegistry();
  later(() => up.stop());
  const pushed = await pushImage(up, 'library/app', 'v1', await makeImage({ format: 'oci', seed: 'image-test', layers: 3 }));
  const redis = await startRedis();
  later(() => redis.stop());
  const env = containerEnv(c, objs);
  const s3 = await startS3rver(env.PULLTHROUGH_S3_BUCKET);
  later(() => s3.stop());

  const work = await tempDir('pt-img-');
  later(() => work.cleanup());
  // The ConfigMap as rendered, plus the one thing a cluster's operator adds: the registry to cache.
  const cmFile = Object.keys(configMap.data)[0]!;
  const cfg = parse(configMap.data[cmFile]) as KubeObject;
  cfg.registries = { ...(cfg.registries ?? {}), [REGISTRY]: { upstream: up.url } };
  configMap.data[cmFile] = stringify(cfg);
  const podRun = await podRunArgs(pod, objs, work.path);
  assert.ok(podRun.args.includes('--read-only') && podRun.args.includes('no-new-privileges'));

  // The cluster network: Service names resolve to the pod's loopback, where relays lead to the host.
  const redisUrl = new URL(env.PULLTHROUGH_REDIS_URL!);
  const redisSvc = findObject(objs, 'Service', redisUrl.hostname);
  assert.equal(Number(redisUrl.port), redisSvc.spec.ports[0].port);
  // What deployment.yaml's comment says to add for MinIO and other S3-compatibles.
  env.PULLTHROUGH_S3_ENDPOINT = 'http://minio.storage:9000';
  env.PULLTHROUGH_S3_FORCE_PATH_STYLE = 'true';
  env.AWS_ACCESS_KEY_ID = s3.accessKeyId;
  env.AWS_SECRET_ACCESS_KEY = s3.secretAccessKey;
  const sock = (name: string): string => join(work.path, `${name}.sock`);
  const hostSide: Relay[] = [];
  later(() => Promise.all(hostSide.map((r) => r.close())));
  hostSide.push(await relay(`unix:${sock('redis')}=tcp:127.0.0.1:${redis.port}`));
  hostSide.push(await relay(`unix:${sock('s3')}=tcp:127.0.0.1:${s3.port}`));
  hostSide.push(await relay(`unix:${sock('upstream')}=tcp:127.0.0.1:${up.port}`));
  const inPod = [
    `tcp:127.0.0.1:${redisUrl.port}=unix:${sock('redis')}`,
    `tcp:127.0.0.1:9000=unix:${sock('s3')}`,
    `tcp:127.0.0.1:${up.port}=unix:${sock('upstream')}`,
  ];
  // Each container port, reachable from the host at a free loopback port (the Service's view).
  const hostPort: Record<string, number> = {};
  for (const p of c.ports as KubeObject[]) {
    inPod.push(`unix:${sock(`port-${p.containerPort}`)}=tcp:127.0.0.1:${p.containerPort}`);
    hostPort[p.name] = await freePort();
    hostSide.push(await relay(`tcp:127.0.0.1:${hostPort[p.name]}=unix:${sock(`port-${p.containerPort}`)}`));
  }
  const portOf = (nameOrNumber: string | number): number =>
    typeof nameOrNumber === 'number' ? hostPort[(c.ports as KubeObject[]).find((p) => p.containerPort === nameOrNumber)!.name]! : hostPort[nameOrNumber]!;

  const envFile = join(work.path, 'env');
  await writeFile(envFile, Object.entries(env).map(([k, v]) => `${k}=${v}`).join('\n') + '\n', { mode: 0o600 });
  const name = `pullthrough-test-${process.pid}`;
  const runArgs = [
    'run', '--detach', '--name', name, '--network', 'none',
    '--add-host', `${redisUrl.hostname}:127.0.0.1`, '--add-host', 'minio.storage:127.0.0.1',
    '--stop-timeout', String(podRun.graceSeconds),
    ...podRun.args, '--env-file', envFile, c.image, ...podRun.containerArgs,
  ];
  const started = await docker.docker(runArgs);
  assert.equal(started.code, 0, started.stderr);
  later(() => docker.docker(['rm', '--force', name]));
  const logs = async (): Promise<string> => {
    const l = await docker.docker(['logs', name]);
    return l.stdout + l.stderr;
  };
  const pid = (await docker.docker(['inspect', '--format', '{{.State.Pid}}', name])).stdout.trim();
  assert.ok(Number(pid) > 0, `the container is running: ${await logs()}`);
  // The image runs Node.js as the tests and the bench do (docs/operations.md, Memory).
  const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
  for (const flag of NODE_FLAGS) assert.ok(cmdline.includes(flag), `${flag} in ${cmdline.join(' ')}`);
  const environ = (await readFile(`/proc/${pid}/environ`, 'utf8')).split('\0');
  for (const [k, v] of Object.entries(LAUNCH_ENV)) assert.ok(environ.includes(`${k}=${v}`), `${k}=${v} in the container's environment`);
  const relays = startProcess('nsenter', [`--net=/proc/${pid}/ns/net`, process.execPath, RELAY_MAIN, ...inPod]);
  later(() => relays.stop());

  // The probes, as the kubelet sends them: readiness until it passes, then liveness.
  const probe = async (p: KubeObject): Promise<number> => {
    const res = await fetch(`http://127.0.0.1:${portOf(p.httpGet.port)}${p.httpGet.path}`, { signal: AbortSignal.timeout((p.timeoutSeconds ?? 1) * 1000) });
    await res.arrayBuffer();
    return res.status;
  };
  await until('readiness', 120_000, async () => ((await probe(c.readinessProbe)) === 200 ? true : undefined)).catch(async (err: Error) => {
    throw new Error(`${err.message}\n${await logs()}`);
  });
  assert.equal(await probe(c.livenessProbe), 200);

  // Mirror door: a pull by the registry's path prefix; every blob fetched once, stored in S3.
  const mirror = `127.0.0.1:${portOf('registry')}`;
  up.resetLog();
  const a = await skopeoCopy(`${mirror}/${REGISTRY}/library/app:v1`, 'dir', { tlsVerify: false });
  later(() => a.cleanup());
  assert.equal(a.code, 0, `${a.stderr}\n${await logs()}`);
  const layoutA = await readDirLayout(a.path);
  assert.equal(layoutA.manifestDigest, pushed.manifestDigest);
  assert.deepEqual(layoutA.blobs.map((b) => b.digest).sort(), pushed.blobs.map((b) => b.digest).sort());
  assert.equal(up.count({ kind: 'blob', method: 'GET' }), pushed.blobs.length);

  // TLS door: the registry's own name, certificate verified against pullthrough's CA, which the
  // image created in the data dir and serves at /ca.crt on the mirror door.
  const caRes = await fetch(`http://${mirror}/ca.crt`);
  assert.equal(caRes.status, 200);
  const caPem = await caRes.text();
  const svcHttps = (service.spec.ports as KubeObject[]).find((p) => p.port === 443);
  assert.ok(svcHttps, 'the Service offers 443');
  const ip = randomLoopback();
  hostSide.push(await relay(`tcp:${ip}:443=unix:${sock(`port-${(c.ports as KubeObject[]).find((p) => p.name === svcHttps.targetPort)!.containerPort}`)}`));
  const h = await hijack({ [REGISTRY]: ip }, [caPem]);
  later(() => h.cleanup());
  up.resetLog();
  const b = await skopeoCopy(`docker://${REGISTRY}/library/app:v1`, 'dir', { env: h.env });
  later(() => b.cleanup());
  assert.equal(b.code, 0, `${b.stderr}\n${await logs()}`);
  assert.equal((await readDirLayout(b.path)).manifestDigest, pushed.manifestDigest);
  // Served from the cache in S3: no blob fetched upstream again.
  assert.equal(up.count({ kind: 'blob', method: 'GET' }), 0);

  // Nothing was written outside the volumes (the root is read-only; `docker diff` would list it),
  // and the data dir's secrets are the pod user's alone.
  assert.equal((await docker.docker(['diff', name])).stdout.trim(), '');
  const dataDir = podRun.emptyDirs[cfg.dataDir]!;
  assert.ok(dataDir, 'dataDir is an emptyDir');
  const uid = Number(pod.securityContext.runAsUser);
  const caDir = join(dataDir, 'ca');
  const caStat = await stat(caDir);
  assert.equal(caStat.uid, uid);
  assert.equal(caStat.mode & 0o777, 0o700);
  const keys = (await readdir(caDir)).filter((f) => f.endsWith('.key') || f.includes('key'));
  assert.ok(keys.length > 0, `a CA key in ${(await readdir(caDir)).join(', ')}`);
  for (const k of keys) {
    const st = await stat(join(caDir, k));
    assert.equal(st.uid, uid, `${k} belongs to the pod's user`);
    assert.equal(st.mode & 0o777, 0o600, `${k} is owner-only`);
  }

  // SIGTERM, as the kubelet sends it; within the grace period it drains and exits 0 (a SIGKILL
  // after the grace period would show as 137).
  const stopped = await docker.docker(['stop', '--time', String(podRun.graceSeconds), name], { timeoutMs: (podRun.graceSeconds + 30) * 1000 });
  assert.equal(stopped.code, 0, stopped.stderr);
  const state = JSON.parse((await docker.docker(['inspect', '--format', '{{json .State}}', name])).stdout) as { ExitCode: number; OOMKilled: boolean };
  assert.equal(state.ExitCode, 0, await logs());
  assert.equal(state.OOMKilled, false);
  assert.match(await logs(), /shutting down/);
});
