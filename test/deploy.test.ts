/**
 * deploy/ and the image's defaults: the Kubernetes manifests as `kubectl kustomize` renders them,
 * the docker-compose file as Compose itself reads it (`docker-compose config`), and the image's
 * own configuration agree with each other, meet the restricted Pod Security Standard, listen on
 * unprivileged ports only, and build configurations that pass loadConfig. test/image.test.ts runs
 * the image itself as these files say. The launchers (npm start, the image, the shebang) run Node.js
 * as the tests do.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { loadConfig } from '../src/config/index.js';
import { run, tempDir } from './helpers/process.js';
import { LAUNCH_ENV, NODE_FLAGS } from './helpers/pullthrough.js';
import { containerEnv, findObject, parseYamlDocuments, renderKustomization, type KubeObject } from './helpers/kube-pod.js';

const ROOT = resolve(import.meta.dirname, '../..');
const K8S = join(ROOT, 'deploy/kubernetes');
const IMAGE_CONFIG = join(ROOT, 'deploy/image/pullthrough.yml');

type Obj = KubeObject;

test('kubernetes: kustomization lists every file and kubectl renders them into one namespace', async () => {
  const kust = parseYamlDocuments(readFileSync(join(K8S, 'kustomization.yaml'), 'utf8'), 'kustomization.yaml')[0]!;
  const files = readdirSync(K8S).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').sort();
  assert.deepEqual([...(kust.resources as string[])].sort(), files);
  const objs = await renderKustomization(K8S);
  assert.ok(objs.length >= files.length);
  const ns = findObject(objs, 'Namespace', kust.namespace);
  for (const o of objs) {
    assert.equal(typeof o.apiVersion, 'string');
    if (o.kind !== 'Namespace') assert.equal(o.metadata.namespace, ns.metadata.name, `${o.kind}/${o.metadata.name} is in the namespace`);
  }
  // The namespace enforces what the pods below are checked for.
  assert.equal(ns.metadata.labels?.['pod-security.kubernetes.io/enforce'], 'restricted');
});

test('kubernetes: every pod meets the restricted Pod Security Standard', async () => {
  const objs = await renderKustomization(K8S);
  const workloads = objs.filter((o) => ['Deployment', 'StatefulSet', 'DaemonSet'].includes(o.kind));
  assert.ok(workloads.length >= 2);
  for (const w of workloads) {
    const pod = w.spec.template.spec as Obj;
    const where = `${w.kind}/${w.metadata.name}`;
    for (const k of ['hostNetwork', 'hostPID', 'hostIPC']) assert.ok(!pod[k], `${where}: no ${k}`);
    assert.equal(pod.securityContext?.runAsNonRoot, true, `${where}: runAsNonRoot`);
    assert.ok(pod.securityContext?.runAsUser > 0, `${where}: a non-root uid`);
    assert.equal(pod.securityContext?.seccompProfile?.type, 'RuntimeDefault', `${where}: seccomp RuntimeDefault`);
    for (const v of (pod.volumes ?? []) as Obj[]) {
      assert.ok(v.configMap || v.secret || v.emptyDir || v.persistentVolumeClaim || v.projected, `${where}: volume ${v.name} is of a restricted-safe type`);
    }
    for (const c of [...(pod.initContainers ?? []), ...pod.containers] as Obj[]) {
      const sc = (c.securityContext ?? {}) as Obj;
      assert.equal(sc.allowPrivilegeEscalation, false, `${where}/${c.name}: allowPrivilegeEscalation false`);
      assert.ok(!sc.privileged, `${where}/${c.name}: not privileged`);
      assert.deepEqual(sc.capabilities?.drop, ['ALL'], `${where}/${c.name}: drops ALL capabilities`);
      assert.deepEqual(sc.capabilities?.add ?? [], [], `${where}/${c.name}: adds none back`);
      assert.equal(sc.readOnlyRootFilesystem, true, `${where}/${c.name}: read-only root`);
      for (const p of (c.ports ?? []) as Obj[]) assert.ok(!p.hostPort, `${where}/${c.name}: no hostPort`);
    }
  }
});

test('kubernetes: the Deployment, Service, Secret and ConfigMap fit together and the config loads', async (t) => {
  const objs = await renderKustomization(K8S);
  const deploy = findObject(objs, 'Deployment', 'pullthrough');
  const service = findObject(objs, 'Service', 'pullthrough');
  const configMap = findObject(objs, 'ConfigMap', 'pullthrough-config');
  const pod = deploy.spec.template.spec;
  const c = pod.containers[0];
  const port = (name: string): Obj => {
    const p = (c.ports as Obj[]).find((x) => x.name === name);
    assert.ok(p, `container port ${name}`);
    return p;
  };

  assert.equal(deploy.spec.replicas, 3);
  assert.deepEqual(deploy.spec.selector.matchLabels, deploy.metadata.labels);
  assert.deepEqual(service.spec.selector, deploy.spec.selector.matchLabels);
  assert.equal(c.readinessProbe.httpGet.path, '/readyz');
  assert.equal(c.livenessProbe.httpGet.path, '/healthz');
  assert.equal(c.readinessProbe.httpGet.port, 'registry');
  assert.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory);
  // The drain on SIGTERM takes up to 30 s.
  assert.ok(pod.terminationGracePeriodSeconds > 30);
  // Every Service port leads to a named container port; clients reach the TLS door on 443.
  for (const sp of service.spec.ports as Obj[]) port(sp.targetPort);
  assert.equal((service.spec.ports as Obj[]).find((p) => p.port === 443)?.targetPort, 'https');

  const env = containerEnv(c, objs);
  const mount = c.volumeMounts.find((m: Obj) => env.PULLTHROUGH_CONFIG!.startsWith(m.mountPath + '/'));
  assert.ok(mount, 'PULLTHROUGH_CONFIG is on a mounted volume');
  const vol = pod.volumes.find((v: Obj) => v.name === mount.name);
  assert.equal(vol.configMap.name, configMap.metadata.name);
  const fileName = env.PULLTHROUGH_CONFIG!.slice(mount.mountPath.length + 1);

  const dir = await tempDir('pullthrough-deploy-');
  t.after(() => dir.cleanup());
  const file = join(dir.path, fileName);
  await writeFile(file, configMap.data[fileName]);
  // The image's defaults are a file the Deployment's PULLTHROUGH_CONFIG replaces: nothing of the
  // image's environment may override the ConfigMap (an image PULLTHROUGH_DATA_DIR once did).
  const config = loadConfig({ file, env });
  assert.equal(config.storage.driver, 's3');
  assert.equal(config.metadata.driver, 'redis');
  assert.equal(config.dataDir, parse(configMap.data[fileName]).dataDir);
  assert.equal(config.listen.mirror?.port, port('registry').containerPort);
  assert.equal(config.listen.tls?.port, port('https').containerPort);
  assert.equal(config.listen.proxy?.port, port('proxy').containerPort);
  for (const p of c.ports as Obj[]) assert.ok(p.containerPort >= 1024, `${p.name}: ${p.containerPort} is unprivileged`);
  assert.ok(config.authHosts['auth.docker.io']?.password, 'AUTH_REGISTRIES gives Docker Hub credentials');
  // dataDir and /tmp are writable volumes (the root filesystem is read-only).
  for (const path of [config.dataDir, '/tmp']) assert.ok(c.volumeMounts.some((m: Obj) => m.mountPath === path && !m.readOnly), `${path} is a writable volume`);

  // The demo Redis answers at the URL the Secret names.
  const redisSvc = findObject(objs, 'Service', 'pullthrough-redis');
  const url = new URL(env.PULLTHROUGH_REDIS_URL!);
  assert.equal(url.hostname, redisSvc.metadata.name);
  assert.equal(Number(url.port), redisSvc.spec.ports[0].port);
});

test('image: its defaults live in a config file, on unprivileged ports, with no file capability', () => {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  assert.doesNotMatch(dockerfile, /setcap|cap_net_bind_service/i);
  // Only PULLTHROUGH_CONFIG in the environment: any other PULLTHROUGH_* there would beat a user's file.
  const envKeys = [...dockerfile.matchAll(/\b(PULLTHROUGH_[A-Z_]+)=/g)].map((m) => m[1]);
  assert.deepEqual([...new Set(envKeys)], ['PULLTHROUGH_CONFIG']);
  const config = loadConfig({ file: IMAGE_CONFIG, env: {} });
  const ports = [config.listen.mirror, config.listen.tls, config.listen.proxy, config.listen.dns].filter((l) => l).map((l) => l!.port);
  assert.ok(ports.length >= 3);
  for (const p of ports) assert.ok(p >= 1024, `${p} is unprivileged`);
  const expose = /^EXPOSE (.+)$/m.exec(dockerfile)?.[1]?.split(/\s+/).map((p) => Number(p.split('/')[0]));
  assert.deepEqual(expose?.sort(), [...ports].sort());
  assert.match(dockerfile, new RegExp(`COPY deploy/image/pullthrough.yml ${/PULLTHROUGH_CONFIG=(\S+)/.exec(dockerfile)![1]}`));
});

test('docker-compose: Compose reads it, it builds from the repository root, and every replica config loads', async () => {
  const r = await run('docker-compose', ['-f', join(ROOT, 'deploy/docker-compose.yml'), 'config'], { timeoutMs: 60_000 });
  const compose = parse(r.stdout) as Obj;
  const services = compose.services as Record<string, Obj>;
  const replicas = Object.entries(services).filter(([name]) => name.startsWith('pullthrough'));
  assert.ok(replicas.length >= 2);
  const imageConfig = parse(readFileSync(IMAGE_CONFIG, 'utf8')) as Obj;
  for (const [name, svc] of replicas) {
    const context = typeof svc.build === 'string' ? svc.build : svc.build.context;
    assert.ok(existsSync(join(context, 'Dockerfile')) && existsSync(join(context, 'package.json')), `${name} builds from the repository root`);
    for (const dep of Object.keys(svc.depends_on)) assert.ok(services[dep], `${name} depends on ${dep}, which exists`);
    assert.equal(svc.read_only, true, `${name}: read-only root`);
    assert.deepEqual(svc.cap_drop, ['ALL'], `${name}: no capabilities`);
    const env = Object.fromEntries(Object.entries(svc.environment as Obj).map(([k, v]) => [k, String(v)]));
    const config = loadConfig({ env: { ...env, PULLTHROUGH_DATA_DIR: env.PULLTHROUGH_DATA_DIR ?? imageConfig.dataDir } });
    assert.equal(config.storage.driver, 's3');
    assert.equal(config.metadata.driver, 'redis');
    // The image's dataDir is a writable tmpfs volume here.
    assert.ok((svc.volumes as Obj[]).some((v) => v.type === 'tmpfs' && v.target === imageConfig.dataDir), `${name}: dataDir is writable`);
    // Every published port leads to a port the container listens on (the image's file, then env).
    const listening = new Set(
      Object.entries(imageConfig.listen as Record<string, string>).map(([door, addr]) => {
        const fromEnv = env[`PULLTHROUGH_LISTEN_${door.toUpperCase()}`];
        return Number(String(fromEnv ?? addr).split(':').pop());
      }),
    );
    for (const p of svc.ports as Obj[]) assert.ok(listening.has(Number(p.target)), `${name}: port ${p.published}→${p.target} is served`);
    assert.ok((svc.ports as Obj[]).some((p) => Number(p.target) === config.listen.mirror?.port));
    const redisHost = new URL(env.PULLTHROUGH_REDIS_URL!).hostname;
    const s3Host = new URL(env.PULLTHROUGH_S3_ENDPOINT!).hostname;
    assert.ok(services[redisHost] && services[s3Host], 'Redis and MinIO are services of this file');
    assert.equal(env.AWS_ACCESS_KEY_ID, services[s3Host]!.environment.MINIO_ROOT_USER);
  }
});

test('launchers: npm start, the image and the pullthrough command run Node.js with the flags and environment the tests use', () => {
  // The tests and the bench start dist/src/main.js with NODE_FLAGS and LAUNCH_ENV, so that what
  // they measure is what users run; each launcher must say the same (docs/operations.md, Memory).
  const flags = NODE_FLAGS.join(' ');
  const env = Object.entries(LAUNCH_ENV);
  assert.ok(env.length > 0);
  const start = readFileSync(join(ROOT, 'scripts/start.sh'), 'utf8');
  assert.match(start, new RegExp(`^exec node ${flags} dist/src/main.js serve "\\$@"$`, 'm'));
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)?.[1] ?? '[]') as string[];
  assert.deepEqual(cmd, ['node', ...NODE_FLAGS, 'dist/src/main.js', 'serve']);
  const shebang = readFileSync(join(ROOT, 'src/main.ts'), 'utf8').split('\n')[0];
  assert.equal(shebang, `#!/usr/bin/env -S ${env.map(([k, v]) => `${k}=${v}`).join(' ')} node ${flags}`);
  for (const [k, v] of env) {
    // start.sh keeps a value the user set.
    assert.match(start, new RegExp(`^${k}=\\$\\{${k}:-${v}\\}\\nexport ${k}$`, 'm'), `start.sh sets ${k}`);
    assert.match(dockerfile, new RegExp(`^ENV ${k}=${v}$`, 'm'), `the Dockerfile sets ${k}`);
  }
});
