/**
 * deploy/: the Kubernetes manifests and the docker-compose file parse, agree with each other, and
 * the pullthrough configuration they build (file plus environment) passes loadConfig.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { loadConfig } from '../src/config/index.js';
import { tempDir } from './helpers/process.js';

const ROOT = resolve(import.meta.dirname, '../..');
const K8S = join(ROOT, 'deploy/kubernetes');

// Loose shapes: only what the checks read.
type Obj = Record<string, any>;

function parseFile(path: string): Obj[] {
  const docs = parseAllDocuments(readFileSync(path, 'utf8'), { merge: true });
  const list = Array.isArray(docs) ? docs : [docs];
  for (const d of list) assert.deepEqual(d.errors.map((e) => e.message), [], `${path} parses`);
  return list.map((d) => d.toJS() as Obj).filter((o) => o !== null);
}

function k8sObjects(): Obj[] {
  return readdirSync(K8S)
    .filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
    .flatMap((f) => parseFile(join(K8S, f)));
}

function find(objs: Obj[], kind: string, name: string): Obj {
  const o = objs.find((x) => x.kind === kind && x.metadata?.name === name);
  assert.ok(o, `${kind}/${name} exists`);
  return o;
}

test('kubernetes: every file parses and kustomization lists them all', () => {
  const kust = parseFile(join(K8S, 'kustomization.yaml'))[0]!;
  const files = readdirSync(K8S).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').sort();
  assert.deepEqual([...(kust.resources as string[])].sort(), files);
  for (const o of k8sObjects()) {
    assert.equal(typeof o.apiVersion, 'string');
    assert.equal(typeof o.kind, 'string');
    assert.equal(typeof o.metadata?.name, 'string');
  }
});

test('kubernetes: the Deployment, Service, Secret and ConfigMap fit together and the config loads', async (t) => {
  const objs = k8sObjects();
  const deploy = find(objs, 'Deployment', 'pullthrough');
  const service = find(objs, 'Service', 'pullthrough');
  const secret = find(objs, 'Secret', 'pullthrough-credentials');
  const configMap = find(objs, 'ConfigMap', 'pullthrough-config');
  const pod = deploy.spec.template.spec;
  const c = pod.containers[0];

  assert.equal(deploy.spec.replicas, 3);
  assert.deepEqual(deploy.spec.selector.matchLabels, deploy.metadata.labels);
  assert.deepEqual(service.spec.selector, deploy.spec.selector.matchLabels);
  const port = c.ports.find((p: Obj) => p.name === 'registry');
  assert.equal(service.spec.ports[0].targetPort, port.name);
  assert.equal(c.readinessProbe.httpGet.path, '/readyz');
  assert.equal(c.livenessProbe.httpGet.path, '/healthz');
  assert.equal(c.readinessProbe.httpGet.port, port.name);
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.ok(pod.securityContext.runAsUser > 0);
  assert.equal(c.securityContext.allowPrivilegeEscalation, false);
  assert.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory);
  // The drain on SIGTERM takes up to 30 s.
  assert.ok(pod.terminationGracePeriodSeconds > 30);

  // The environment the container gets, secrets resolved from the example Secret.
  const env: Record<string, string> = {};
  for (const e of c.env as Obj[]) {
    if (e.value !== undefined) env[e.name] = String(e.value);
    else {
      const ref = e.valueFrom.secretKeyRef;
      assert.equal(ref.name, secret.metadata.name);
      // Kubernetes leaves an optional reference to a missing key unset; any other must exist.
      if (!(ref.key in secret.stringData) && ref.optional === true) continue;
      assert.ok(ref.key in secret.stringData, `secret key ${ref.key}`);
      env[e.name] = secret.stringData[ref.key];
    }
  }
  const mount = c.volumeMounts.find((m: Obj) => env.PULLTHROUGH_CONFIG!.startsWith(m.mountPath + '/'));
  assert.ok(mount, 'PULLTHROUGH_CONFIG is on a mounted volume');
  const vol = pod.volumes.find((v: Obj) => v.name === mount.name);
  assert.equal(vol.configMap.name, configMap.metadata.name);
  const fileName = env.PULLTHROUGH_CONFIG!.slice(mount.mountPath.length + 1);

  const dir = await tempDir('pullthrough-deploy-');
  t.after(() => dir.cleanup());
  const file = join(dir.path, fileName);
  await writeFile(file, configMap.data[fileName]);
  const config = loadConfig({ file, env });
  assert.equal(config.storage.driver, 's3');
  assert.equal(config.metadata.driver, 'redis');
  assert.equal(config.listen.mirror?.host, '0.0.0.0');
  assert.equal(config.listen.mirror?.port, port.containerPort);
  assert.ok(config.authHosts['auth.docker.io']?.password, 'AUTH_REGISTRIES gives Docker Hub credentials');
  // dataDir is a writable volume (the root filesystem is read-only).
  assert.ok(c.volumeMounts.some((m: Obj) => m.mountPath === config.dataDir && !m.readOnly));

  // The demo Redis answers at the URL the Secret names.
  const redisSvc = find(objs, 'Service', 'pullthrough-redis');
  const url = new URL(env.PULLTHROUGH_REDIS_URL!);
  assert.equal(url.hostname, redisSvc.metadata.name);
  assert.equal(Number(url.port), redisSvc.spec.ports[0].port);
});

test('docker-compose: parses, builds from the repository root, and every replica config loads', () => {
  const compose = parseFile(join(ROOT, 'deploy/docker-compose.yml'))[0]!;
  const services = compose.services as Record<string, Obj>;
  const replicas = Object.entries(services).filter(([name]) => name.startsWith('pullthrough'));
  assert.ok(replicas.length >= 2);
  for (const [name, svc] of replicas) {
    assert.ok(existsSync(join(ROOT, 'deploy', svc.build, 'package.json')), `${name} builds from the repository root`);
    for (const dep of Object.keys(svc.depends_on)) assert.ok(services[dep], `${name} depends on ${dep}, which exists`);
    const env = Object.fromEntries(Object.entries(svc.environment as Obj).map(([k, v]) => [k, String(v)]));
    const config = loadConfig({ env });
    assert.equal(config.storage.driver, 's3');
    assert.equal(config.metadata.driver, 'redis');
    assert.equal(config.listen.mirror?.port, Number(String(svc.ports[0]).split(':').pop()));
    const redisHost = new URL(env.PULLTHROUGH_REDIS_URL!).hostname;
    const s3Host = new URL(env.PULLTHROUGH_S3_ENDPOINT!).hostname;
    assert.ok(services[redisHost] && services[s3Host], 'Redis and MinIO are services of this file');
    assert.equal(env.AWS_ACCESS_KEY_ID, services[s3Host]!.environment.MINIO_ROOT_USER);
  }
});
